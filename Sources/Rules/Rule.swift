import SIOCore

/// An action of a rule, with its templates compiled.
enum ActionTemplate: Sendable {
    case emit(namespace: ValueTemplate?, event: ValueTemplate, args: [ValueTemplate], ack: Duration?)
    case run(argv: [ValueTemplate], env: [(String, ValueTemplate)], cwd: String?, timeout: Duration?)
    case shell(script: String, env: [(String, ValueTemplate)], cwd: String?, timeout: Duration?)
    /// `message` nil: a JSON line with time, rule, event, namespace and args.
    case log(target: PlannedAction.LogTarget, message: ValueTemplate?)
    case reply(args: [ValueTemplate])
    /// `set: NAME` with `value:` and an optional `ttl` (seconds): shared state, applied by the engine.
    case set(name: String, value: ValueTemplate, ttl: Double?)
    case unset(name: String)

    /// The templates of the action.
    var templates: [ValueTemplate] {
        switch self {
        case .emit(let ns, let event, let args, _): return (ns.map { [$0] } ?? []) + [event] + args
        case .run(let argv, let env, _, _): return argv + env.map(\.1)
        case .shell(_, let env, _, _): return env.map(\.1)
        case .log(_, let message): return message.map { [$0] } ?? []
        case .reply(let args): return args
        case .set(_, let value, _): return [value]
        case .unset: return []
        }
    }
}

extension ValueTemplate {
    /// The expressions in the template.
    var expressions: [CompiledExpression] {
        switch self {
        case .constant: return []
        case .whole(let e): return [e]
        case .text(let parts): return parts.compactMap { if case .expression(let e) = $0 { return e } else { return nil } }
        case .array(let items): return items.flatMap(\.expressions)
        case .object(let pairs): return pairs.flatMap(\.1.expressions)
        }
    }
}

/// The default bound on keys per rule (`max_keys`).
let defaultMaxKeys = 10_000
/// The default bound on samples per key and window (`window_samples`).
let defaultWindowSamples = 1_000

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
    /// `absent: DURATION`: fires when no matching event arrived for this long (per key).
    let absent: Double?
    /// `at:` / `cron:`: fires on a local-time schedule.
    let schedule: Schedule?
    /// At most this many keys are kept; the idle ones seen longest ago are dropped first.
    let maxKeys: Int
    /// At most this many samples per key and window; the oldest are dropped.
    let windowSamples: Int
    /// The distinct windows the rule's expressions read, by slot.
    let windowSpecs: [WindowSpec]
    /// Whether expressions read `state.NAME` (the context then carries the state).
    let readsState: Bool
    /// Whether the rule keeps a state per key (`for`, `clear_when`, `cooldown`, windows or `absent`).
    let keepsKeys: Bool
    /// Whether the rule has `set`/`unset` actions.
    let setsState: Bool
    let conditionsReadKey: Bool
    /// Rules whose conditions read only the event and the clock take the fast path.
    let plain: Bool
    /// What a key keeps of the last event it saw (for the `then` of a `for` or `absent` timer).
    let lastProjection: EventProjection

    init(id: String, description: String?, file: String, line: Int, column: Int, triggers: [Trigger], every: Double?,
         when: CompiledExpression?, clearWhen: CompiledExpression?, key: CompiledExpression?, forSeconds: Double?,
         cooldown: Double?, then: [ActionTemplate], onClear: [ActionTemplate], fingerprint: String,
         absent: Double? = nil, schedule: Schedule? = nil, maxKeys: Int = defaultMaxKeys, windowSamples: Int = defaultWindowSamples) {
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
        self.absent = absent
        self.schedule = schedule
        self.maxKeys = max(1, maxKeys)
        self.windowSamples = max(1, windowSamples)
        // Every expression of the rule: assign each window call its sample buffer (equal calls share one).
        var roots: [Expr] = [when?.root, clearWhen?.root, key?.root].compactMap { $0 }
        for action in then + onClear { for t in action.templates { roots += t.expressions.map(\.root) } }
        var specs: [WindowSpec] = []
        var readsState = false
        for root in roots {
            root.walk { e in
                switch e.kind {
                case .window(let w):
                    let spec = WindowSpec(argumentText: w.function == .count ? nil : w.argumentText, seconds: w.seconds)
                    if let i = specs.firstIndex(of: spec) { w.slot = i } else { w.slot = specs.count; specs.append(spec) }
                case .state:
                    readsState = true
                default:
                    break
                }
            }
        }
        self.windowSpecs = specs
        self.readsState = readsState
        var conditionsReadKey = false
        for root in [when?.root, clearWhen?.root].compactMap({ $0 }) {
            root.walk { if case .key = $0.kind { conditionsReadKey = true } }
        }
        self.conditionsReadKey = conditionsReadKey
        self.plain = specs.isEmpty && !readsState && absent == nil && !conditionsReadKey
        self.keepsKeys = stateful || cooldown != nil || !specs.isEmpty || absent != nil
        self.setsState = (then + onClear).contains { if case .set = $0 { return true }; if case .unset = $0 { return true }; return false }
        // The argument of each window, by slot (sampled on every matching event).
        var arguments = [Expr?](repeating: nil, count: specs.count)
        for root in roots {
            root.walk { e in if case .window(let w) = e.kind, w.slot >= 0, arguments[w.slot] == nil { arguments[w.slot] = w.argument } }
        }
        self.windowArguments = arguments
        self.lastProjection = EventProjection(forSeconds: forSeconds, absent: absent, then: then)
    }

    /// The sampled expression of each window slot (nil for `count_over`).
    let windowArguments: [Expr?]


    /// The namespace of actions that have no event to take it from.
    var defaultNamespace: String {
        triggers.first.map { $0.namespace == "*" ? "/" : $0.namespace } ?? "/"
    }

    /// A timer rule: `every`, `at` or `cron`.
    var isTimer: Bool { every != nil || schedule != nil }
}
