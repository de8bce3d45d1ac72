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

/// Rules indexed by (namespace, event), so an event costs only the rules that name it.
///
/// Built once at load: for each namespace rules name (plus one slot for "any other namespace"),
/// a table from event name to the final list of rules, already merged in load order (exact match,
/// `"*"` event, `"*"` namespace, both; `"*"` events skipping the lifecycle ones). An event then
/// costs two lookups in open-addressing tables keyed by a cheap hash of the name's UTF-8 bytes
/// (no `Hasher`, no allocation), and the engine walks a slice of one flat array.
struct EventIndex: Sendable {
    /// Namespace name → slot (`range.lowerBound`); unknown namespaces use `otherSlot`.
    private let namespaces: NameTable
    private let otherSlot: Int32
    /// Per slot: event name → range of `rules`.
    private let tables: [NameTable]
    /// The merged lists, one after another.
    let rules: [Int32]

    init(rules compiled: [CompiledRule]) {
        var byNamespace: [String: [String: Set<Int>]] = [:]
        for (i, rule) in compiled.enumerated() {
            for t in rule.triggers { byNamespace[t.namespace, default: [:]][t.event, default: []].insert(i) }
        }
        let any = byNamespace["*"] ?? [:]
        // Event names that can have a list of their own; every other name gets the slot's fallback.
        var names = RuleEvent.lifecycleNames
        for (_, events) in byNamespace { for e in events.keys where e != "*" { names.insert(e) } }
        let slots: [String?] = byNamespace.keys.filter { $0 != "*" }.sorted() + [nil]
        var flat: [Int32] = []
        func append(_ list: Set<Int>) -> Range<Int32> {
            let lo = Int32(flat.count)
            flat += list.sorted().map { Int32($0) }
            return lo..<Int32(flat.count)
        }
        var tables: [NameTable] = []
        var nsEntries: [(String, Range<Int32>)] = []
        for (slot, ns) in slots.enumerated() {
            let own = ns.flatMap { byNamespace[$0] } ?? [:]
            /// What a name that is not a lifecycle event and that no rule names gets.
            let fallback = (own["*"] ?? []).union(any["*"] ?? [])
            var entries: [(String, Range<Int32>)] = []
            for name in names.sorted() {
                let lifecycle = RuleEvent.lifecycleNames.contains(name)
                var list = (own[name] ?? []).union(any[name] ?? [])
                if !lifecycle { list.formUnion(fallback) }
                if list != fallback { entries.append((name, append(list))) }
            }
            tables.append(NameTable(entries, fallback: append(fallback)))
            if let ns { nsEntries.append((ns, Int32(slot)..<Int32(slot))) }
        }
        self.otherSlot = Int32(slots.count - 1)
        self.namespaces = NameTable(nsEntries, fallback: otherSlot..<otherSlot)
        self.tables = tables
        self.rules = flat
    }

    /// The rules for an event, in load order, as a range of `rules`.
    @inline(__always)
    func range(namespace: String, event: String) -> Range<Int> {
        let slot = Int(namespaces.lookup(namespace).lowerBound)
        let r = tables[slot].lookup(event)
        return Int(r.lowerBound)..<Int(r.upperBound)
    }

    /// The rules for an event, in load order.
    func rules(namespace: String, event: String) -> [Int] {
        rules[range(namespace: namespace, event: event)].map { Int($0) }
    }
}

/// An immutable open-addressing hash table from names to ranges, with a value for names it does
/// not hold. Hashes are FNV-1a over the UTF-8 bytes: far cheaper than `Hasher` for short names.
struct NameTable: Sendable {
    private struct Slot: Sendable {
        /// 0: empty.
        var hash: UInt64 = 0
        var name = ""
        var range: Range<Int32> = 0..<0
    }

    private let slots: [Slot]
    private let mask: Int
    private let fallback: Range<Int32>

    init(_ entries: [(String, Range<Int32>)], fallback: Range<Int32>) {
        var capacity = 4
        while capacity < entries.count * 2 { capacity *= 2 }
        var slots = [Slot](repeating: Slot(), count: capacity)
        for (name, range) in entries {
            let h = NameTable.hash(name)
            var i = Int(truncatingIfNeeded: h) & (capacity - 1)
            while slots[i].hash != 0 { i = (i + 1) & (capacity - 1) }
            slots[i] = Slot(hash: h, name: name, range: range)
        }
        self.slots = slots
        self.mask = capacity - 1
        self.fallback = fallback
    }

    @inline(__always)
    static func hash(_ name: String) -> UInt64 {
        @inline(__always)
        func fnv(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
            return h
        }
        var name = name
        let h = name.withUTF8(fnv)
        return (h ^ (h >> 29)) | 1
    }

    @inline(__always)
    func lookup(_ name: String) -> Range<Int32> {
        let h = NameTable.hash(name)
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let slotHash = slots[i].hash
            if slotHash == 0 { return fallback }
            if slotHash == h && slots[i].name == name { return slots[i].range }
            i = (i + 1) & mask
        }
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
