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
    /// `when` and `clear_when` compiled for the hot path.
    let fastWhen: FastCondition?
    let fastClearWhen: FastCondition?
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
        self.fastWhen = when.map { FastCondition($0.root) }
        self.fastClearWhen = clearWhen.map { FastCondition($0.root) }
        self.forSeconds = forSeconds
        self.cooldown = cooldown
        self.then = then
        self.onClear = onClear
        self.fingerprint = fingerprint
        self.stateful = forSeconds != nil || clearWhen != nil
    }
}
