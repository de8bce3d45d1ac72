import OrderedCollections
import SIOCore

/// Why a rule that handles an event did not fire (`sioagent replay --explain`).
public struct Explanation: Sendable, Equatable {
    public var at: Double
    public var rule: String
    public var event: String
    public var namespace: String
    public var reason: String

    /// `{"at":…, "rule":…, "explain":"not fired", "event":…, "namespace":…, "reason":…}`
    public func replayJSON() -> JSONValue {
        .object(.init(uniqueKeysWithValues: [
            ("at", .number(at)), ("rule", .string(rule)), ("explain", .string("not fired")), ("event", .string(event)),
            ("namespace", .string(namespace)), ("reason", .string(reason)),
        ]))
    }
}

/// What `RuleEngine.reload` changed.
public struct ReloadSummary: Sendable, Equatable {
    public var added: [String] = []
    public var changed: [String] = []
    public var removed: [String] = []
    /// Rules whose definition did not change: they kept their state (pending `for`, firing,
    /// cooldown, windows, absence timers).
    public var kept: [String] = []
}

/// The state of one rule for one key value.
struct KeyState: Sendable {
    /// For `absent` rules: idle = watching, firing = the silence fired and waits for an event.
    enum Phase: Sendable { case idle, pending, firing }
    var phase: Phase = .idle
    /// When `when` started holding (pending).
    var since = 0.0
    /// When a pending key fires.
    var due = 0.0
    /// What the rule's `then` reads of the last event seen while pending (for `absent`: the last
    /// matching event), kept for the timer that fires it (``CompiledRule/lastProjection``).
    private(set) var last: RuleEvent?
    /// Bytes counted against `limits.key_bytes`: the key value plus a fixed overhead, and `last`.
    var baseBytes = 0
    private(set) var lastBytes = 0
    var bytes: Int { baseBytes + lastBytes }
    var lastFire: Double?
    /// The last time an event touched the key: the start of its absence window, and the order of eviction.
    var lastSeen = 0.0
    /// Tells a key from an older one of the same value that was evicted (timer entries carry it).
    var generation: UInt32 = 0
    /// Whether a timer entry for this key is in the engine's heap (at most one at a time).
    var queued = false
    var windows: KeyWindows?

    init(lastSeen: Double, generation: UInt32, key: JSONValue) {
        self.lastSeen = lastSeen
        self.generation = generation
        self.baseBytes = keyOverheadBytes + approximateBytes(key)
    }

    /// Keeps what `projection` keeps of `event` as the last event.
    mutating func remember(_ event: RuleEvent, _ projection: EventProjection) {
        last = projection.keep(event)
        lastBytes = last.map(approximateBytes) ?? 0
    }

    mutating func forget() {
        last = nil
        lastBytes = 0
    }
}

/// What a key costs beyond its value and last event (its state, the map entry, a timer entry).
let keyOverheadBytes = 160

struct RuleState: Sendable {
    var keys: [JSONValue: KeyState] = [:]
    /// Keys pending or firing.
    var active = 0
    /// Keys pending.
    var pending = 0
    /// The next firing of an `every`, `at` or `cron` rule.
    var nextEvery: Double?
    /// `absent` rules: whether their namespace is down (their windows do not run), and when it last came up.
    var paused = false
    var windowStart = -Double.infinity
}

/// A deadline in the engine's timer heap. Entries are checked when they come due: one whose key
/// changed meanwhile is dropped or pushed again for the key's current deadline, so each key has at
/// most one entry and an event never scans other keys.
struct TimerEntry: Sendable {
    enum Kind: UInt8, Sendable { case key, every }
    var due: Double
    var rule: Int32
    var kind: Kind
    var generation: UInt32
    var key: JSONValue
}

/// A binary min-heap of deadlines.
struct TimerHeap: Sendable {
    private(set) var items: [TimerEntry] = []

    var top: TimerEntry? { items.first }
    var count: Int { items.count }

    mutating func push(_ e: TimerEntry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if items[p].due <= items[i].due { break }
            items.swapAt(p, i)
            i = p
        }
    }

    mutating func pop() -> TimerEntry? {
        guard !items.isEmpty else { return nil }
        let first = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l].due < items[m].due { m = l }
                if r < items.count && items[r].due < items[m].due { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return first
    }

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    /// Keeps only the entries `keep` accepts (a sorted array is a min-heap).
    mutating func retain(where keep: (TimerEntry) -> Bool) {
        items = items.filter(keep)
        items.sort { $0.due < $1.due }
    }
}

/// At most this many timers fire in one call of `advance(to:)`; the rest wait for the next call
/// (the agent's loop gets a turn in between), and an error is reported.
public let maxTimerStepsPerAdvance = 100_000

/// At most this many shared state names; a `set` of a new name beyond it is skipped with a warning.
let maxStateNames = 10_000
/// The default bound on window samples across every rule and key (`limits.window_samples`): at
/// most 48 bytes each (time, value, and the min/max queues), 12 MB in all.
public let defaultMaxWindowSamples = 250_000
/// The default bound on what rule keys hold, all rules together (`limits.key_bytes`): each key's
/// value, what its rule reads of its last event, and ``keyOverheadBytes``.
public let defaultMaxKeyBytes = 8 << 20

/// Evaluates events against a `RuleSet` and plans actions. A value: the rules plus each rule's
/// per-key state, which survives `reload` for rules whose definition did not change.
///
/// Semantics:
/// - A rule without `for` and `clear_when` fires on every matching event where `when` holds.
/// - A rule with `for` or `clear_when` keeps a state per `key` value: it fires once on entering
///   (after `for` has elapsed with `when` true on every event in between, on time even if no
///   event arrives), stays firing until `clear_when` holds (or, without `clear_when`, until `when`
///   does not), then runs `on_clear` and re-arms.
/// - `absent` rules fire when no matching event arrived for the duration (per key), once, and
///   clear on the next one. Their windows do not run while their namespace is down.
/// - `cooldown` is the least time between two firings of a rule for one key.
/// - `every` rules fire on their period from `startTime`; `at`/`cron` rules on local time.
/// - Keys are bounded per rule (`max_keys`): beyond it the idle keys seen longest ago are dropped.
public struct RuleEngine: Sendable {
    public private(set) var ruleSet: RuleSet
    var states: [RuleState]
    /// The index in ``RuleSet/eventLabels`` of the last event handled: resolved by the same
    /// lookup that finds the event's rules, so counting events by name costs no extra lookup.
    public private(set) var lastEventLabel = 0
    /// How often each rule fired (`then` planned), by index in ``RuleSet/ruleIDs``; kept across
    /// reloads for rules that keep their id.
    public private(set) var firingCounts: [UInt64]
    var timers = TimerHeap()
    /// Heap entries whose key was dropped (a budget, `max_keys`): they would otherwise stay until
    /// they come due, an hour later for `absent: 1h`, outside every bound on keys.
    var staleTimers = 0
    var generation: UInt32 = 0
    /// Shared state (`set`/`unset`, read as `state.NAME`).
    public private(set) var sharedState: [String: StateEntry]
    /// Changes each time the shared state changes (so the agent knows when to persist it).
    public private(set) var stateVersion: UInt64 = 0
    /// Namespaces whose status a lifecycle event gave; others are `namespacesUp`.
    var namespaceStatus: [String: Bool] = [:]
    let namespacesUp: Bool
    /// The time zone of `at`/`cron` schedules (a TZ name); nil: the system's.
    public let timeZone: String?
    /// Whether a rule has `absent:` (the engine then follows connects and disconnects).
    var hasAbsence: Bool
    /// Problems met while running (keys evicted, state full), for the caller to log.
    public private(set) var warnings: [String] = []
    /// The bound on window samples across every rule and key (`limits.window_samples`).
    let windowBudget: WindowBudget
    /// Samples dropped to stay within the window budget, since the engine started.
    public var windowSamplesDropped: UInt64 { windowBudget.dropped }
    /// Window samples held now.
    public var windowSamplesHeld: Int { windowBudget.held }
    /// The bound on bytes held by rule keys (`limits.key_bytes`).
    public let keyBytesLimit: Int
    /// Bytes held by rule keys now (see ``KeyState/bytes``).
    public private(set) var keyBytesHeld = 0
    /// Keys dropped to stay within `limits.key_bytes`, since the engine started.
    public private(set) var keysDroppedForBytes: UInt64 = 0
    /// Faults the caller logs as errors (the timer step bound was reached).
    public private(set) var errors: [String] = []
    /// How often `advance(to:)` stopped at ``maxTimerStepsPerAdvance``.
    public private(set) var timerStepLimitHits: UInt64 = 0
    /// ``maxTimerStepsPerAdvance``; tests lower it.
    var timerStepLimit = maxTimerStepsPerAdvance

    /// - Parameters:
    ///   - startTime: when `every` timers start.
    ///   - namespacesConnected: whether namespaces count as connected before a `connect` event says
    ///     so (tests and replays: yes; the agent: no, it waits for the real connection).
    ///   - timeZone: the local time of schedules (nil: the system's).
    ///   - state: the shared state to start from.
    ///   - maxWindowSamples: the bound on window samples across every rule and key.
    ///   - maxKeyBytes: the bound on bytes held by the keys of every rule.
    public init(ruleSet: RuleSet, startTime: Double, namespacesConnected: Bool = true, timeZone: String? = nil,
                state: [String: StateEntry] = [:], maxWindowSamples: Int = defaultMaxWindowSamples,
                maxKeyBytes: Int = defaultMaxKeyBytes) {
        self.windowBudget = WindowBudget(limit: maxWindowSamples)
        self.keyBytesLimit = max(1, maxKeyBytes)
        self.ruleSet = ruleSet
        self.firingCounts = [UInt64](repeating: 0, count: ruleSet.rules.count)
        self.namespacesUp = namespacesConnected
        self.timeZone = timeZone
        self.sharedState = state
        self.hasAbsence = ruleSet.rules.contains { $0.absent != nil }
        self.states = []
        self.states = ruleSet.rules.map { freshState($0, at: startTime) }
        recountKeyBytes()
        rebuildTimers()
    }

    private mutating func freshState(_ rule: CompiledRule, at time: Double) -> RuleState {
        var s = RuleState()
        if let every = rule.every { s.nextEvery = time + every }
        if let schedule = rule.schedule { s.nextEvery = schedule.next(after: time, timeZone: timeZone) }
        if rule.absent != nil {
            s.paused = !isUp(rule)
            s.windowStart = time
            if rule.key == nil && !s.paused {
                generation &+= 1
                s.keys[.null] = KeyState(lastSeen: time, generation: generation, key: .null)
            }
        }
        return s
    }

    /// Hands over (and forgets) the warnings collected since the last call.
    public mutating func takeWarnings() -> [String] {
        defer { warnings.removeAll() }
        return warnings
    }

    /// Hands over (and forgets) the errors collected since the last call.
    public mutating func takeErrors() -> [String] {
        defer { errors.removeAll() }
        return errors
    }

    private mutating func warn(_ message: String) {
        if warnings.count < 100 { warnings.append(message) }
    }

    /// How many keys the rules hold (all rules together).
    public var keyCount: Int { states.reduce(0) { $0 + $1.keys.count } }

    // MARK: Events

    /// Plans the actions an event causes at `time` (after firing the timers due by then).
    public mutating func handle(_ event: RuleEvent, at time: Double) -> [PlannedAction] {
        var ignored: [Explanation] = []
        return handle(event, at: time, explaining: false, into: &ignored)
    }

    /// Like `handle(_:at:)`, and appends to `explain` why each rule that handles the event did not fire.
    public mutating func handle(_ event: RuleEvent, at time: Double, explain: inout [Explanation]) -> [PlannedAction] {
        handle(event, at: time, explaining: true, into: &explain)
    }

    @inline(__always)
    private mutating func handle(_ event: RuleEvent, at time: Double, explaining: Bool, into explain: inout [Explanation]) -> [PlannedAction] {
        var out: [PlannedAction] = time >= earliest ? advance(to: time) : []
        if hasAbsence, event.name == "connect" || event.name == "disconnect" {
            namespaceChanged(event.namespace, up: event.name == "connect", at: time)
        }
        let (range, label) = ruleSet.index.lookup(namespace: event.namespace, event: event.name)
        lastEventLabel = label
        for k in range {
            process(Int(ruleSet.index.rules[k]), event, time, explaining, &explain, &out)
        }
        if windowBudget.isOver { trimWindows() }
        if keyBytesHeld > keyBytesLimit { trimKeys() }
        return out
    }

    /// The sum of every key's bytes, counted again (at start and on reload).
    private mutating func recountKeyBytes() {
        keyBytesHeld = states.reduce(0) { sum, s in s.keys.values.reduce(sum) { $0 + $1.bytes } }
    }

    /// Removes a key, keeping the counts of pending and firing keys and of bytes.
    @discardableResult
    private mutating func removeKey(_ i: Int, _ key: JSONValue) -> KeyState? {
        guard let s = states[i].keys.removeValue(forKey: key) else { return nil }
        if s.queued {
            staleTimers += 1
            if staleTimers > 256 && staleTimers * 2 > timers.count { dropStaleTimers() }
        }
        if s.phase != .idle { states[i].active -= 1 }
        if s.phase == .pending { states[i].pending -= 1 }
        keyBytesHeld -= s.bytes
        return s
    }

    /// Back within `limits.key_bytes`: drops the keys seen longest ago (all rules together) down
    /// to fifteen sixteenths of the bound, with a warning. The one key of a rule without `key`
    /// (an `absent` rule watching for silence) is kept: dropping it would stop the watch.
    private mutating func trimKeys() {
        var candidates: [(seen: Double, rule: Int, key: JSONValue)] = []
        for i in states.indices where ruleSet.rules[i].key != nil {
            for (k, s) in states[i].keys { candidates.append((s.lastSeen, i, k)) }
        }
        candidates.sort { $0.seen < $1.seen }
        let target = keyBytesLimit - keyBytesLimit / 16
        var dropped = 0
        for c in candidates {
            guard keyBytesHeld > target else { break }
            removeKey(c.rule, c.key)
            dropped += 1
        }
        guard dropped > 0 else { return }
        keysDroppedForBytes &+= UInt64(dropped)
        warn("limits.key_bytes (\(keyBytesLimit)) reached; dropped the \(dropped) key(s) seen longest ago")
    }

    /// Back within `limits.window_samples`: drops the keys with windows seen longest ago (all
    /// rules together), with a warning. Only a new key's first sample can take the engine over
    /// the budget; a key that has samples gives up its own oldest one instead.
    private mutating func trimWindows() {
        var candidates: [(seen: Double, rule: Int, key: JSONValue)] = []
        for i in states.indices {
            for (k, s) in states[i].keys where s.windows != nil { candidates.append((s.lastSeen, i, k)) }
        }
        candidates.sort { $0.seen < $1.seen }
        var dropped = 0
        for c in candidates {
            guard windowBudget.isOver else { break }
            removeKey(c.rule, c.key)
            dropped += 1
        }
        warn("limits.window_samples (\(windowBudget.limit)) reached; dropped the windows of the \(dropped) key(s) seen longest ago")
    }

    /// No timer is due before this (the heap's top, kept in a stored property for the hot path).
    var earliest = Double.infinity

    @inline(__always)
    private mutating func pushTimer(_ e: TimerEntry) {
        timers.push(e)
        if e.due < earliest { earliest = e.due }
    }

    private func isUp(_ namespace: String) -> Bool {
        if namespace == "*" { return namespacesUp || namespaceStatus.values.contains(true) }
        return namespaceStatus[namespace] ?? namespacesUp
    }

    private func isUp(_ rule: CompiledRule) -> Bool {
        rule.triggers.allSatisfy { isUp($0.namespace) }
    }

    /// A namespace connected or disconnected: pauses or restarts the absence windows that depend on it.
    private mutating func namespaceChanged(_ namespace: String, up: Bool, at time: Double) {
        namespaceStatus[namespace] = up
        for i in ruleSet.rules.indices {
            let rule = ruleSet.rules[i]
            guard let d = rule.absent, rule.triggers.contains(where: { $0.namespace == namespace || $0.namespace == "*" }) else { continue }
            let running = isUp(rule)
            if !running {
                states[i].paused = true
                continue
            }
            // (Re)connected: every window restarts now.
            states[i].paused = false
            states[i].windowStart = time
            if rule.key == nil && states[i].keys[.null] == nil {
                generation &+= 1
                let s = KeyState(lastSeen: time, generation: generation, key: .null)
                keyBytesHeld += s.bytes
                states[i].keys[.null] = s
            }
            for key in Array(states[i].keys.keys) {
                guard var s = states[i].keys[key], s.phase == .idle, !s.queued else { continue }
                s.queued = true
                states[i].keys[key] = s
                pushTimer(TimerEntry(due: max(s.lastSeen, time) + d, rule: Int32(i), kind: .key, generation: s.generation, key: key))
            }
        }
    }

    @inline(__always)
    private mutating func process(_ i: Int, _ event: RuleEvent, _ time: Double, _ explaining: Bool,
                                  _ explain: inout [Explanation], _ out: inout [PlannedAction]) {
        let rule = ruleSet.rules[i]
        if !rule.plain {
            processFull(i, rule, event, time, explaining, &explain, &out)
            return
        }
        var holds = true
        if let when = rule.fastWhen { holds = when.truth(event, time) == .yes }
        if !holds && (!rule.stateful || states[i].active == 0) {
            if explaining { note(&explain, rule, event, time, "when: " + rule.when!.explainNotTrue(EvalContext(event: event, now: time))) }
            return
        }
        processMatched(i, rule, holds, event, time, explaining, &explain, &out)
    }

    /// A plain rule whose `when` holds, or that has keys pending or firing: out of line, so the
    /// common path (a false `when`) stays small.
    @inline(never)
    private mutating func processMatched(_ i: Int, _ rule: CompiledRule, _ holds: Bool, _ event: RuleEvent, _ time: Double,
                                         _ explaining: Bool, _ explain: inout [Explanation], _ out: inout [PlannedAction]) {
        let context = EvalContext(event: event, now: time)
        var key = JSONValue.null
        if let k = rule.keyRoot {
            guard let v = evaluate(k, context) else {
                if explaining { note(&explain, rule, event, time, "key: " + rule.key!.missing(k, context)) }
                return
            }
            key = v
        }
        if !rule.stateful {
            if let cooldown = rule.cooldown {
                if let last = states[i].keys[key]?.lastFire, time < last + cooldown {
                    if explaining { note(&explain, rule, event, time, "cooldown: fired at \(JSONValue.number(last)), \(formatSeconds(last + cooldown - time)) left") }
                    return
                }
                var s = states[i].keys[key] ?? newKey(key, time)
                s.lastFire = time
                s.lastSeen = time
                if let old = states[i].keys.updateValue(s, forKey: key) {
                    keyBytesHeld += s.bytes - old.bytes
                } else {
                    keyBytesHeld += s.bytes
                    pruneCooldowns(i, time)
                    bound(i, keeping: key, time)
                }
            }
            firingCounts[i] &+= 1
            plan(rule, rule.then, .then, event, time, key, nil, explaining, &explain, &out)
            return
        }
        var state = states[i].keys[key] ?? newKey(key, time)
        step(i, rule, &state, key, holds, event, context, time, explaining, &explain, &out)
        store(i, rule, key, state, time)
    }

    private mutating func newKey(_ key: JSONValue, _ time: Double) -> KeyState {
        generation &+= 1
        return KeyState(lastSeen: time, generation: generation, key: key)
    }

    /// Writes a key's state back (dropping keys that hold nothing), and bounds the rule's keys.
    @inline(__always)
    private mutating func store(_ i: Int, _ rule: CompiledRule, _ key: JSONValue, _ state: KeyState, _ time: Double) {
        if state.phase == .idle && rule.cooldown == nil && state.windows == nil && rule.absent == nil && !state.queued {
            if let old = states[i].keys.removeValue(forKey: key) { keyBytesHeld -= old.bytes }
        } else if let old = states[i].keys.updateValue(state, forKey: key) {
            keyBytesHeld += state.bytes - old.bytes
        } else {
            keyBytesHeld += state.bytes
            bound(i, keeping: key, time)
        }
    }

    /// The state machine of `for` / `clear_when` rules for one key, once `when` is known.
    @inline(__always)
    private mutating func step(_ i: Int, _ rule: CompiledRule, _ state: inout KeyState, _ key: JSONValue, _ holds: Bool,
                               _ event: RuleEvent, _ context: EvalContext, _ time: Double, _ explaining: Bool,
                               _ explain: inout [Explanation], _ out: inout [PlannedAction]) {
        state.lastSeen = time
        switch state.phase {
        case .idle:
            guard holds else {
                if explaining { note(&explain, rule, event, time, "when: " + rule.when!.explainNotTrue(context)) }
                return
            }
            let cooldownEnd = rule.cooldown.flatMap { c in state.lastFire.map { $0 + c } } ?? -Double.infinity
            if let f = rule.forSeconds {
                state.phase = .pending
                state.since = time
                state.due = max(time + f, cooldownEnd)
                state.remember(event, rule.lastProjection)
                states[i].active += 1
                states[i].pending += 1
                if !state.queued {
                    state.queued = true
                    pushTimer(TimerEntry(due: state.due, rule: Int32(i), kind: .key, generation: state.generation, key: key))
                }
                if explaining { note(&explain, rule, event, time, "pending: fires at \(JSONValue.number(state.due)) if when holds until then (for: \(formatSeconds(f)))") }
            } else if time < cooldownEnd {
                if explaining { note(&explain, rule, event, time, "cooldown: fired at \(JSONValue.number(state.lastFire!)), \(formatSeconds(cooldownEnd - time)) left") }
                return
            } else if !rule.stateful {
                state.lastFire = time
                firingCounts[i] &+= 1
                plan(rule, rule.then, .then, event, time, key, state.windows, explaining, &explain, &out)
            } else {
                state.phase = .firing
                state.lastFire = time
                states[i].active += 1
                firingCounts[i] &+= 1
                plan(rule, rule.then, .then, event, time, key, state.windows, explaining, &explain, &out)
            }
        case .pending:
            if holds {
                state.remember(event, rule.lastProjection)
                if explaining { note(&explain, rule, event, time, "pending: fires at \(JSONValue.number(state.due)) if when holds until then") }
            } else {
                state.phase = .idle
                state.forget()
                states[i].active -= 1
                states[i].pending -= 1
                if explaining { note(&explain, rule, event, time, "pending reset: when stopped holding before for: elapsed (" + rule.when!.explainNotTrue(context) + ")") }
            }
        case .firing:
            let clears: Bool
            if let clearWhen = rule.clearWhen {
                if rule.plain, let fast = rule.fastClearWhen {
                    clears = fast.truth(event, time) == .yes
                } else {
                    clears = evaluate(clearWhen.root, context) == .bool(true)
                }
            } else {
                clears = !holds
            }
            if clears {
                state.phase = .idle
                state.forget()
                states[i].active -= 1
                plan(rule, rule.onClear, .onClear, event, time, key, state.windows, explaining, &explain, &out)
            } else {
                // Firing: no timer reads the event again.
                state.forget()
                if explaining {
                    let why = rule.clearWhen.map { "clear_when: " + $0.explainNotTrue(context) } ?? "when still holds"
                    note(&explain, rule, event, time, "already firing, waiting to clear (\(why))")
                }
            }
        }
    }

    /// Rules with windows, `absent`, or expressions reading `state.`/`key`: the key first, then
    /// the samples, then the conditions with all of it in the context.
    @inline(never)
    private mutating func processFull(_ i: Int, _ rule: CompiledRule, _ event: RuleEvent, _ time: Double, _ explaining: Bool,
                                      _ explain: inout [Explanation], _ out: inout [PlannedAction]) {
        var context = EvalContext(event: event, now: time)
        if rule.readsState { context.state = sharedState }
        var key = JSONValue.null
        if let k = rule.keyRoot {
            guard let v = evaluate(k, context) else {
                if explaining { note(&explain, rule, event, time, "key: " + rule.key!.missing(k, context)) }
                return
            }
            key = v
        }
        context.key = key
        let index = states[i].keys.index(forKey: key)
        if index == nil && rule.windowSpecs.isEmpty && rule.absent == nil {
            // Nothing to remember unless `when` holds.
            if let when = rule.when, evaluate(when.root, context) != .bool(true) {
                if explaining { note(&explain, rule, event, time, "when: " + when.explainNotTrue(context)) }
                return
            }
        }
        var created: KeyState?
        var windows: KeyWindows?
        var phase = KeyState.Phase.idle
        var queued = false
        if let index {
            // Read in place (the getter would copy the whole state).
            (windows, phase, queued) = RuleEngine.peek(&states[i].keys.values[index])
        } else {
            created = newKey(key, time)
        }
        if !rule.windowSpecs.isEmpty {
            let w = windows ?? KeyWindows(specs: rule.windowSpecs, capacity: rule.windowSamples, budget: windowBudget)
            windows = w
            if created != nil { created!.windows = w }
            let arguments = rule.windowArguments
            for slot in arguments.indices {
                if let argument = arguments[slot] {
                    if case .number(let v)? = evaluate(argument, context), v.isFinite { w.append(slot, time, v) }
                } else {
                    w.append(slot, time, 0)
                }
            }
            context.windows = w
        }
        var holds = true
        if let when = rule.whenRoot { holds = evaluate(when, context) == .bool(true) }
        // The common cases change nothing but the time seen: done in place, without copying the key's state.
        if let index {
            if let d = rule.absent {
                if holds && phase == .idle && (queued || states[i].paused) {
                    states[i].keys.values[index].lastSeen = time
                    let before = states[i].keys.values[index].lastBytes
                    states[i].keys.values[index].remember(event, rule.lastProjection)
                    keyBytesHeld += states[i].keys.values[index].lastBytes - before
                    if explaining { note(&explain, rule, event, time, "absent: seen; fires at \(JSONValue.number(max(time, states[i].windowStart) + d)) if nothing matches until then") }
                    return
                }
            } else if !holds && phase == .idle {
                states[i].keys.values[index].lastSeen = time
                if explaining { note(&explain, rule, event, time, "when: " + (rule.when?.explainNotTrue(context) ?? "")) }
                return
            }
        }
        let existing = index.map { states[i].keys.values[$0] }
        var state = existing ?? created!
        if let d = rule.absent {
            guard holds else {
                if explaining { note(&explain, rule, event, time, "when: " + rule.when!.explainNotTrue(context) + " (not counted as a sign of life)") }
                if existing != nil || state.windows != nil { store(i, rule, key, state, time) }
                return
            }
            if state.phase == .firing {
                state.phase = .idle
                states[i].active -= 1
                plan(rule, rule.onClear, .onClear, event, time, key, state.windows, explaining, &explain, &out)
            } else if explaining {
                note(&explain, rule, event, time, "absent: seen; fires at \(JSONValue.number(time + d)) if nothing matches until then")
            }
            state.lastSeen = time
            state.remember(event, rule.lastProjection)
            if !state.queued && !states[i].paused {
                state.queued = true
                pushTimer(TimerEntry(due: max(time, states[i].windowStart) + d, rule: Int32(i), kind: .key, generation: state.generation, key: key))
            }
            store(i, rule, key, state, time)
            return
        }
        step(i, rule, &state, key, holds, event, context, time, explaining, &explain, &out)
        store(i, rule, key, state, time)
    }

    @inline(__always)
    private static func peek(_ s: inout KeyState) -> (KeyWindows?, KeyState.Phase, Bool) {
        (s.windows, s.phase, s.queued)
    }

    /// Keeps a rule's keys within `max_keys`: drops the idle keys seen longest ago (then, if all
    /// are busy, the busy ones seen longest ago), a sixteenth of the bound at a time, with a warning.
    private mutating func bound(_ i: Int, keeping current: JSONValue, _ time: Double) {
        let rule = ruleSet.rules[i]
        guard states[i].keys.count > rule.maxKeys else { return }
        let target = max(1, rule.maxKeys - max(1, rule.maxKeys / 16))
        var idle: [(Double, JSONValue)] = [], busy: [(Double, JSONValue)] = []
        for (k, s) in states[i].keys where k != current {
            if s.phase == .idle { idle.append((s.lastSeen, k)) } else { busy.append((s.lastSeen, k)) }
        }
        idle.sort { $0.0 < $1.0 }
        busy.sort { $0.0 < $1.0 }
        var drop = states[i].keys.count - target
        var dropped = 0
        for (_, k) in idle + busy {
            if drop <= 0 { break }
            removeKey(i, k)
            drop -= 1
            dropped += 1
        }
        warn("rule \(rule.id): more than max_keys (\(rule.maxKeys)) keys; dropped the \(dropped) seen longest ago")
    }

    /// Drops idle keys whose cooldown is over, so keys that come and go do not pile up.
    private mutating func pruneCooldowns(_ i: Int, _ time: Double) {
        guard states[i].keys.count > 64, states[i].keys.count.nonzeroBitCount == 1, let cooldown = ruleSet.rules[i].cooldown,
              ruleSet.rules[i].plain, !ruleSet.rules[i].stateful else { return }
        states[i].keys = states[i].keys.filter { _, s in
            let keep = s.phase != .idle || (s.lastFire.map { time < $0 + cooldown } ?? false)
            if !keep { keyBytesHeld -= s.bytes }
            return keep
        }
    }

    private func note(_ explain: inout [Explanation], _ rule: CompiledRule, _ event: RuleEvent?, _ time: Double, _ reason: String) {
        explain.append(Explanation(at: time, rule: rule.id, event: event?.name ?? "", namespace: event?.namespace ?? "", reason: reason))
    }

    // MARK: Timers

    /// Fires what is due by `time`: `for` timers that elapsed and silences that reached their
    /// `absent` duration (each at its own due time, with the last event seen), and `every`/`at`/
    /// `cron` timers. A timer that is several periods behind (the machine was suspended) fires
    /// once, not once per missed period; `run(until:)` steps through every period on a virtual clock.
    public mutating func advance(to time: Double) -> [PlannedAction] {
        guard time >= earliest else { return [] }
        var firings: [(at: Double, rule: Int, actions: [PlannedAction])] = []
        var ignored: [Explanation] = []
        var steps = 0
        while let top = timers.top, top.due <= time {
            // Bounded work per call, whatever the timers hold: the rest is due on the next call.
            steps += 1
            if steps > timerStepLimit {
                timerStepLimitHits &+= 1
                if errors.count < 100 {
                    errors.append("more than \(timerStepLimit) timers were due at one instant; the rest run on the next turn")
                }
                break
            }
            _ = timers.pop()
            let i = Int(top.rule)
            guard i < states.count else { continue }
            let rule = ruleSet.rules[i]
            if top.kind == .every {
                guard states[i].nextEvery == top.due else { continue }
                let next = top.due
                var out: [PlannedAction] = []
                var context = EvalContext(event: nil, now: next)
                if rule.readsState { context.state = sharedState }
                var holds = true
                if let when = rule.when { holds = evaluate(when.root, context) == .bool(true) }
                if holds {
                    firingCounts[i] &+= 1
                    plan(rule, rule.then, .then, nil, next, .null, nil, false, &ignored, &out)
                }
                firings.append((next, i, out))
                var following: Double?
                if let period = rule.every {
                    following = Self.nextPeriod(after: next, period: period, now: time)
                } else if let schedule = rule.schedule {
                    following = schedule.next(after: max(next, time), timeZone: timeZone)
                }
                states[i].nextEvery = following
                if let following { pushTimer(TimerEntry(due: following, rule: top.rule, kind: .every, generation: 0, key: .null)) }
                continue
            }
            guard var s = states[i].keys[top.key], s.generation == top.generation, s.queued else { continue }
            let bytesBefore = s.bytes
            s.queued = false
            if let d = rule.absent {
                if s.phase == .idle && !states[i].paused {
                    let deadline = max(s.lastSeen, states[i].windowStart) + d
                    if deadline > top.due {
                        s.queued = true
                        pushTimer(TimerEntry(due: deadline, rule: top.rule, kind: .key, generation: s.generation, key: top.key))
                    } else {
                        s.phase = .firing
                        s.lastFire = deadline
                        states[i].active += 1
                        var out: [PlannedAction] = []
                        firingCounts[i] &+= 1
                        plan(rule, rule.then, .then, s.last, deadline, top.key, s.windows, false, &ignored, &out)
                        firings.append((deadline, i, out))
                        s.forget()
                    }
                }
            } else if s.phase == .pending {
                if s.due > top.due {
                    s.queued = true
                    pushTimer(TimerEntry(due: s.due, rule: top.rule, kind: .key, generation: s.generation, key: top.key))
                } else {
                    s.phase = .firing
                    s.lastFire = s.due
                    states[i].pending -= 1
                    var out: [PlannedAction] = []
                    firingCounts[i] &+= 1
                    plan(rule, rule.then, .then, s.last, s.due, top.key, s.windows, false, &ignored, &out)
                    firings.append((s.due, i, out))
                    s.forget()
                }
            }
            if s.phase == .idle && rule.cooldown == nil && s.windows == nil && rule.absent == nil && !s.queued {
                states[i].keys[top.key] = nil
                keyBytesHeld -= bytesBefore
            } else {
                states[i].keys[top.key] = s
                keyBytesHeld += s.bytes - bytesBefore
            }
        }
        earliest = timers.top?.due ?? .infinity
        if firings.count > 1 {
            firings = firings.enumerated().sorted { ($0.element.at, $0.element.rule, $0.offset) < ($1.element.at, $1.element.rule, $1.offset) }.map(\.element)
        }
        return firings.flatMap(\.actions)
    }

    /// The firing after `next` of an `every:` timer with `period`, later than `now` (one firing
    /// for many missed periods). Always later than both, whatever `period` is: a period too small
    /// to move a clock of this magnitude (rule files refuse those) never gives the same instant
    /// again, so the timer loop cannot spin on it.
    static func nextPeriod(after next: Double, period: Double, now: Double) -> Double {
        let step = period.isFinite && period >= shortestEvery ? period : shortestEvery
        var f = next + step
        if f <= now { f = next + step * ((now - next) / step).rounded(.down) + step }
        if !(f > now) || !(f > next) { f = max(now, next) + step }
        if !(f > now) || !(f > next) { f = max(now, next).nextUp }
        return f
    }

    /// Steps a virtual clock to `time`, firing every timer at its own due time, every period of
    /// every timer included. After `maxSteps` deadlines (a recording that jumps years
    /// ahead), the rest is coalesced as `advance(to:)` does.
    public mutating func run(until time: Double, maxSteps: Int = 10_000) -> [PlannedAction] {
        var out: [PlannedAction] = []
        var steps = 0
        while let deadline = nextDeadline, deadline <= time {
            steps += 1
            if steps > maxSteps { return out + advance(to: time) }
            out += advance(to: deadline)
        }
        return out
    }

    /// The earliest time at which `advance(to:)` may do something, or nil. (A deadline whose key
    /// changed since may do nothing: the timer is then set again for the next one.)
    public var nextDeadline: Double? {
        timers.top?.due
    }

    /// Removes the heap entries of keys that were dropped: the heap holds at most one entry per
    /// key that has a deadline, plus fewer stale ones than live ones.
    private mutating func dropStaleTimers() {
        let states = self.states
        timers.retain { e in
            guard e.kind == .key else { return true }
            let i = Int(e.rule)
            guard i < states.count, let s = states[i].keys[e.key] else { return false }
            return s.generation == e.generation && s.queued
        }
        staleTimers = 0
        earliest = timers.top?.due ?? .infinity
    }

    /// Rebuilds the heap from the rules' states (at start and on reload).
    private mutating func rebuildTimers() {
        staleTimers = 0
        timers.removeAll()
        earliest = .infinity
        for i in states.indices {
            let rule = ruleSet.rules[i]
            if let n = states[i].nextEvery { pushTimer(TimerEntry(due: n, rule: Int32(i), kind: .every, generation: 0, key: .null)) }
            for key in Array(states[i].keys.keys) {
                guard var s = states[i].keys[key] else { continue }
                var due: Double?
                if let d = rule.absent {
                    if s.phase == .idle && !states[i].paused { due = max(s.lastSeen, states[i].windowStart) + d }
                } else if s.phase == .pending {
                    due = s.due
                }
                s.queued = due != nil
                states[i].keys[key] = s
                if let due { pushTimer(TimerEntry(due: due, rule: Int32(i), kind: .key, generation: s.generation, key: key)) }
            }
        }
    }

    // MARK: Reload

    /// Swaps in new rules, keeping the state (pending `for`, firing, cooldown, windows, absence
    /// timers, `every` phase) of each rule whose definition did not change. New and changed rules
    /// start fresh at `time`. The shared state is kept whole.
    public mutating func reload(_ newSet: RuleSet, at time: Double) -> ReloadSummary {
        var old: [String: Int] = [:]
        for (i, r) in ruleSet.rules.enumerated() { old[r.id] = i }
        var summary = ReloadSummary()
        var newStates: [RuleState] = []
        let newCounts = newSet.rules.map { old[$0.id].map { firingCounts[$0] } ?? 0 }
        for rule in newSet.rules {
            if let i = old[rule.id] {
                if ruleSet.rules[i].fingerprint == rule.fingerprint {
                    newStates.append(states[i])
                    summary.kept.append(rule.id)
                    continue
                }
                summary.changed.append(rule.id)
            } else {
                summary.added.append(rule.id)
            }
            newStates.append(freshState(rule, at: time))
        }
        let newIDs = Set(newSet.rules.map(\.id))
        summary.removed = ruleSet.rules.map(\.id).filter { !newIDs.contains($0) }
        ruleSet = newSet
        states = newStates
        firingCounts = newCounts
        lastEventLabel = 0
        hasAbsence = newSet.rules.contains { $0.absent != nil }
        recountKeyBytes()
        rebuildTimers()
        return summary
    }

    // MARK: Shared state

    /// Sets (or, with nil, removes) a shared state value, as `set`/`unset` actions do.
    public mutating func setState(_ name: String, _ entry: StateEntry?) {
        if let entry {
            if sharedState[name] == nil && sharedState.count >= maxStateNames {
                warn("state is full (\(maxStateNames) names); \"set: \(name)\" skipped")
                return
            }
            sharedState[name] = entry
        } else {
            guard sharedState.removeValue(forKey: name) != nil else { return }
        }
        stateVersion &+= 1
    }

    /// Drops state values whose ttl ran out by `time`.
    public mutating func expireState(at time: Double) {
        let before = sharedState.count
        sharedState = sharedState.filter { $0.value.expires > time }
        if sharedState.count != before { stateVersion &+= 1 }
    }

    // MARK: Planning actions

    private mutating func plan(_ rule: CompiledRule, _ actions: [ActionTemplate], _ phase: PlannedAction.Phase, _ trigger: RuleEvent?,
                               _ time: Double, _ key: JSONValue, _ windows: KeyWindows?, _ explaining: Bool,
                               _ explain: inout [Explanation], _ out: inout [PlannedAction]) {
        var c = EvalContext(event: trigger, now: time, key: key, state: rule.readsState ? sharedState : nil, windows: windows)
        for action in actions {
            let kind: PlannedAction.Kind
            switch action {
            case .emit(let namespace, let event, let args, let ack):
                let ns = namespace.map { $0.renderText(c) } ?? trigger?.namespace ?? rule.defaultNamespace
                kind = .emit(namespace: ns, event: event.renderText(c), args: args.map { $0.render(c) }, ack: ack)
            case .run(let argv, let env, let cwd, let timeout):
                kind = .run(argv: argv.map { $0.renderText(c) }, env: renderEnv(env, c), cwd: cwd, timeout: timeout)
            case .shell(let script, let env, let cwd, let timeout):
                var e = renderEnv(env, c)
                e["SIOAGENT_EVENT"] = trigger?.name ?? ""
                e["SIOAGENT_NAMESPACE"] = trigger?.namespace ?? ""
                e["SIOAGENT_RULE"] = rule.id
                e["SIOAGENT_PAYLOAD"] = trigger.map { ($0.args.first ?? .null).jsonString() } ?? "null"
                e["SIOAGENT_ARGS"] = JSONValue.array(trigger?.args ?? []).jsonString()
                kind = .shell(script: script, env: e, stdin: trigger.map { $0.jsonValue().jsonString() } ?? "", cwd: cwd, timeout: timeout)
            case .log(let target, let message):
                let text = message.map { $0.renderText(c) } ?? JSONValue.object(.init(uniqueKeysWithValues: [
                    ("time", .number(time)), ("rule", .string(rule.id)), ("event", trigger.map { .string($0.name) } ?? .null),
                    ("namespace", trigger.map { .string($0.namespace) } ?? .null), ("args", .array(trigger?.args ?? [])),
                ])).jsonString()
                kind = .log(target: target, message: text)
            case .reply(let args):
                guard let trigger, trigger.canReply else {
                    if explaining { note(&explain, rule, trigger, time, "reply skipped: the event did not ask for an acknowledgement") }
                    continue
                }
                kind = .reply(args: args.map { $0.render(c) })
            case .set(let name, let value, let ttl):
                // Applied here (the rule's next actions read it), and reported like any action.
                let v = value.render(c)
                setState(name, StateEntry(value: v, expires: ttl.map { time + $0 } ?? .infinity))
                if rule.readsState { c.state = sharedState }
                kind = .set(name: name, value: v, ttl: ttl.map(durationFromSeconds))
            case .unset(let name):
                setState(name, nil)
                if rule.readsState { c.state = sharedState }
                kind = .unset(name: name)
            }
            out.append(PlannedAction(at: time, rule: rule.id, phase: phase, kind: kind, trigger: trigger))
        }
    }

    private func renderEnv(_ env: [(String, ValueTemplate)], _ c: EvalContext) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in env { out[k] = v.renderText(c) }
        return out
    }
}
