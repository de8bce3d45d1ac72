import SIOCore

/// A set of loaded rules (and the tests written beside them), ready for a `RuleEngine`.
public struct RuleSet: Sendable {
    let rules: [CompiledRule]
    let index: EventIndex
    /// Indices of rules with `every:`.
    let everyRules: [Int]
    /// The `tests:` blocks found while loading.
    public let tests: [RuleTest]
    /// The files read, in order.
    public let files: [String]

    init(rules: [CompiledRule], tests: [RuleTest], files: [String]) {
        self.rules = rules
        self.index = EventIndex(rules: rules)
        self.everyRules = rules.indices.filter { rules[$0].every != nil }
        self.tests = tests
        self.files = files
    }

    /// An empty rule set.
    public init() {
        self.init(rules: [], tests: [], files: [])
    }

    /// The ids of the rules, in load order.
    public var ruleIDs: [String] { rules.map(\.id) }

    /// The (namespace, event) pairs that ``RuleEngine/lastEventLabel`` indexes: nil namespace
    /// for a namespace no rule names, nil event for a name no rule of that namespace uses.
    public var eventLabels: [(namespace: String?, event: String?)] { index.labels }

    public var count: Int { rules.count }

    /// Each rule's definition fingerprint (its YAML, the file's vars and the environment values it
    /// reads), so a reload can tell unchanged rules from changed ones.
    public var fingerprints: [String: String] {
        Dictionary(rules.map { ($0.id, $0.fingerprint) }, uniquingKeysWith: { a, _ in a })
    }

    public func fingerprint(of id: String) -> String? {
        rules.first { $0.id == id }?.fingerprint
    }

    /// Where a rule is defined.
    public func location(of id: String) -> (file: String, line: Int, column: Int)? {
        rules.first { $0.id == id }.map { ($0.file, $0.line, $0.column) }
    }

    /// The rules defined in `file` only (what the tests of that file run against).
    public func restricted(toFile file: String) -> RuleSet {
        RuleSet(rules: rules.filter { $0.file == file }, tests: tests.filter { $0.rulesFile == file }, files: [file])
    }
}
