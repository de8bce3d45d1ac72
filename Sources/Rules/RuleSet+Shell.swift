extension RuleSet {
    /// The ids of the rules that have a `shell` action (in `then` or `on_clear`), so that an
    /// agent configured without shell access can refuse them at load time.
    public var rulesUsingShell: [String] {
        rules.filter { rule in
            (rule.then + rule.onClear).contains { action in
                if case .shell = action { return true }
                return false
            }
        }.map(\.id)
    }
}
