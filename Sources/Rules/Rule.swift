import SIOCore

/// An action of a rule, with its templates compiled.
enum ActionTemplate: Sendable {
    case emit(namespace: ValueTemplate?, event: ValueTemplate, args: [ValueTemplate], ack: Duration?)
    case run(argv: [ValueTemplate], env: [(String, ValueTemplate)], cwd: String?, timeout: Duration?)
    case shell(script: String, env: [(String, ValueTemplate)], cwd: String?, timeout: Duration?)
    /// `message` nil: a JSON line with time, rule, event, namespace and args.
    case log(target: PlannedAction.LogTarget, message: ValueTemplate?)
    case reply(args: [ValueTemplate])
}

/// What a rule listens to.
struct Trigger: Sendable, Hashable {
    /// `"*"` for any namespace.
    var namespace: String
    /// `"*"` for any event except the lifecycle ones.
    var event: String
}

/// A rule after loading: validated, with expressions and templates compiled.
final class CompiledRule: Sendable {
    let id: String
    let description: String?
    let file: String
    let line: Int
    let column: Int
    let triggers: [Trigger]
    let every: Double?
    let when: CompiledExpression?
    let clearWhen: CompiledExpression?
    let key: CompiledExpression?
    /// The roots of `when`, `clear_when` and `key`, read on the hot path without copying the sources.
    let whenRoot: Expr?
    let clearWhenRoot: Expr?
    let keyRoot: Expr?
    let forSeconds: Double?
    let cooldown: Double?
    let then: [ActionTemplate]
    let onClear: [ActionTemplate]
    let fingerprint: String
    /// True for rules with `for` or `clear_when`: they fire once on entering and re-arm on clearing.
    let stateful: Bool

    init(id: String, description: String?, file: String, line: Int, column: Int, triggers: [Trigger], every: Double?,
         when: CompiledExpression?, clearWhen: CompiledExpression?, key: CompiledExpression?, forSeconds: Double?,
         cooldown: Double?, then: [ActionTemplate], onClear: [ActionTemplate], fingerprint: String) {
        self.id = id
        self.description = description
        self.file = file
        self.line = line
        self.column = column
        self.triggers = triggers
        self.every = every
        self.when = when
        self.clearWhen = clearWhen
        self.key = key
        self.whenRoot = when?.root
        self.clearWhenRoot = clearWhen?.root
        self.keyRoot = key?.root
        self.forSeconds = forSeconds
        self.cooldown = cooldown
        self.then = then
        self.onClear = onClear
        self.fingerprint = fingerprint
        self.stateful = forSeconds != nil || clearWhen != nil
    }
}

/// Rules indexed by (namespace, event), so an event costs only the rules that name it.
struct EventIndex: Sendable {
    private(set) var byNamespace: [String: [String: [Int]]] = [:]
    private(set) var hasWildcards = false

    init(rules: [CompiledRule]) {
        for (i, rule) in rules.enumerated() {
            for t in Set(rule.triggers) {
                byNamespace[t.namespace, default: [:]][t.event, default: []].append(i)
                if t.namespace == "*" || t.event == "*" { hasWildcards = true }
            }
        }
    }

    static let empty: [Int] = []

    /// The rules for an event, in load order: exact match, `"*"` event, `"*"` namespace, both.
    @inline(__always)
    func lists(namespace: String, event: String) -> ([Int], [Int], [Int], [Int]) {
        let ns = byNamespace[namespace]
        let exact = ns?[event] ?? EventIndex.empty
        guard hasWildcards else { return (exact, EventIndex.empty, EventIndex.empty, EventIndex.empty) }
        let lifecycle = RuleEvent.lifecycleNames.contains(event)
        let any = byNamespace["*"]
        return (exact,
                lifecycle ? EventIndex.empty : ns?["*"] ?? EventIndex.empty,
                any?[event] ?? EventIndex.empty,
                lifecycle ? EventIndex.empty : any?["*"] ?? EventIndex.empty)
    }
}

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
