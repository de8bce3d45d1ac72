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
    /// Rules whose definition did not change: they kept their state (pending `for`, firing, cooldown).
    public var kept: [String] = []
}

/// The state of one rule for one key value.
struct KeyState: Sendable {
    enum Phase: Sendable { case idle, pending, firing }
    var phase: Phase = .idle
    /// When `when` started holding (pending).
    var since = 0.0
    /// When a pending key fires.
    var due = 0.0
    /// The last event seen while pending or firing.
    var last: RuleEvent?
    var lastFire: Double?
}

struct RuleState: Sendable {
    var keys: [JSONValue: KeyState] = [:]
    /// Keys pending or firing.
    var active = 0
    /// Keys pending.
    var pending = 0
    var nextEvery: Double?
}

/// Evaluates events against a `RuleSet` and plans actions. A value: the rules plus each rule's
/// per-key state, which survives `reload` for rules whose definition did not change.
///
/// Semantics:
/// - A rule without `for` and `clear_when` fires on every matching event where `when` holds.
/// - A rule with `for` or `clear_when` keeps a state per `key` value: it fires once on entering
///   (after `for` has elapsed with `when` true on every event in between, on time even if no
///   event arrives), stays firing until `clear_when` holds (or, without `clear_when`, until `when`
///   does not), then runs `on_clear` and re-arms.
/// - `cooldown` is the least time between two firings of a rule for one key.
/// - `every` rules fire on their period from `startTime`.
public struct RuleEngine: Sendable {
    public private(set) var ruleSet: RuleSet
    var states: [RuleState]
    /// No timer is due before this (a lower bound).
    var earliest = Double.infinity
    /// The index in ``RuleSet/eventLabels`` of the last event handled: resolved by the same
    /// lookup that finds the event's rules, so counting events by name costs no extra lookup.
    public private(set) var lastEventLabel = 0
    /// How often each rule fired (`then` planned), by index in ``RuleSet/ruleIDs``; kept across
    /// reloads for rules that keep their id.
    public private(set) var firingCounts: [UInt64]

    public init(ruleSet: RuleSet, startTime: Double) {
        self.ruleSet = ruleSet
        self.firingCounts = [UInt64](repeating: 0, count: ruleSet.rules.count)
        self.states = ruleSet.rules.map { rule in
            var s = RuleState()
            if let every = rule.every { s.nextEvery = startTime + every }
            return s
        }
        recomputeEarliest()
    }

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
        let (range, label) = ruleSet.index.lookup(namespace: event.namespace, event: event.name)
        lastEventLabel = label
        for k in range {
            process(Int(ruleSet.index.rules[k]), event, time, explaining, &explain, &out)
        }
        return out
    }

    @inline(__always)
    private mutating func process(_ i: Int, _ event: RuleEvent, _ time: Double, _ explaining: Bool,
                                  _ explain: inout [Explanation], _ out: inout [PlannedAction]) {
        let rule = ruleSet.rules[i]
        var holds = true
        if let when = rule.fastWhen { holds = when.truth(event, time) == .yes }
        if !holds && (!rule.stateful || states[i].active == 0) {
            if explaining { note(&explain, rule, event, time, "when: " + rule.when!.explainNotTrue(EvalContext(event: event, now: time))) }
            return
        }
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
                states[i].keys[key, default: KeyState()].lastFire = time
                pruneCooldowns(i, time)
            }
            firingCounts[i] &+= 1
            plan(rule, rule.then, .then, event, time, explaining, &explain, &out)
            return
        }
        var state = states[i].keys[key] ?? KeyState()
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
                state.last = event
                states[i].active += 1
                states[i].pending += 1
                earliest = min(earliest, state.due)
                if explaining { note(&explain, rule, event, time, "pending: fires at \(JSONValue.number(state.due)) if when holds until then (for: \(formatSeconds(f)))") }
            } else if time < cooldownEnd {
                if explaining { note(&explain, rule, event, time, "cooldown: fired at \(JSONValue.number(state.lastFire!)), \(formatSeconds(cooldownEnd - time)) left") }
                return
            } else {
                state.phase = .firing
                state.lastFire = time
                state.last = event
                states[i].active += 1
                firingCounts[i] &+= 1
                plan(rule, rule.then, .then, event, time, explaining, &explain, &out)
            }
        case .pending:
            if holds {
                state.last = event
                if explaining { note(&explain, rule, event, time, "pending: fires at \(JSONValue.number(state.due)) if when holds until then") }
            } else {
                state.phase = .idle
                state.last = nil
                states[i].active -= 1
                states[i].pending -= 1
                if explaining { note(&explain, rule, event, time, "pending reset: when stopped holding before for: elapsed (" + rule.when!.explainNotTrue(context) + ")") }
            }
        case .firing:
            let clears: Bool
            if let clearWhen = rule.fastClearWhen {
                clears = clearWhen.truth(event, time) == .yes
            } else {
                clears = !holds
            }
            if clears {
                state.phase = .idle
                state.last = nil
                states[i].active -= 1
                plan(rule, rule.onClear, .onClear, event, time, explaining, &explain, &out)
            } else {
                state.last = event
                if explaining {
                    let why = rule.clearWhen.map { "clear_when: " + $0.explainNotTrue(context) } ?? "when still holds"
                    note(&explain, rule, event, time, "already firing, waiting to clear (\(why))")
                }
            }
        }
        if state.phase == .idle && rule.cooldown == nil {
            states[i].keys[key] = nil
        } else {
            states[i].keys[key] = state
        }
    }

    /// Drops idle keys whose cooldown is over, so keys that come and go do not pile up.
    private mutating func pruneCooldowns(_ i: Int, _ time: Double) {
        guard states[i].keys.count > 64, let cooldown = ruleSet.rules[i].cooldown else { return }
        states[i].keys = states[i].keys.filter { _, s in s.phase != .idle || (s.lastFire.map { time < $0 + cooldown } ?? false) }
    }

    private func note(_ explain: inout [Explanation], _ rule: CompiledRule, _ event: RuleEvent?, _ time: Double, _ reason: String) {
        explain.append(Explanation(at: time, rule: rule.id, event: event?.name ?? "", namespace: event?.namespace ?? "", reason: reason))
    }

    // MARK: Timers

    /// Fires what is due by `time`: `for` timers that elapsed (each at its own due time, with the
    /// last event it saw) and `every:` timers. An `every:` timer that is several periods behind
    /// (the agent was suspended) fires once, not once per missed period; `run(until:)` steps
    /// through every period on a virtual clock.
    public mutating func advance(to time: Double) -> [PlannedAction] {
        guard time >= earliest else { return [] }
        var firings: [(at: Double, rule: Int, actions: [PlannedAction])] = []
        var ignored: [Explanation] = []
        for i in ruleSet.everyRules {
            guard let next = states[i].nextEvery, next <= time, let period = ruleSet.rules[i].every else { continue }
            let rule = ruleSet.rules[i]
            var out: [PlannedAction] = []
            let context = EvalContext(event: nil, now: next)
            var holds = true
            if let when = rule.when { if case .bool(true)? = evaluate(when.root, context) {} else { holds = false } }
            if holds {
                firingCounts[i] &+= 1
                plan(rule, rule.then, .then, nil, next, false, &ignored, &out)
            }
            firings.append((next, i, out))
            var following = next + period
            if following <= time { following = next + period * ((time - next) / period).rounded(.down) + period }
            states[i].nextEvery = following
        }
        for i in ruleSet.rules.indices where states[i].pending > 0 {
            let rule = ruleSet.rules[i]
            for (key, var state) in states[i].keys where state.phase == .pending && state.due <= time {
                state.phase = .firing
                state.lastFire = state.due
                states[i].pending -= 1
                var out: [PlannedAction] = []
                firingCounts[i] &+= 1
                plan(rule, rule.then, .then, state.last, state.due, false, &ignored, &out)
                firings.append((state.due, i, out))
                states[i].keys[key] = state
            }
        }
        recomputeEarliest()
        firings.sort { ($0.at, $0.rule) < ($1.at, $1.rule) }
        return firings.flatMap(\.actions)
    }

    /// Steps a virtual clock to `time`, firing every timer at its own due time, every period of
    /// every `every:` timer included. After `maxSteps` deadlines (a recording that jumps years
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

    /// The earliest time at which `advance(to:)` would do something, or nil.
    public var nextDeadline: Double? {
        var best = Double.infinity
        for i in ruleSet.everyRules { if let n = states[i].nextEvery { best = min(best, n) } }
        for i in states.indices where states[i].pending > 0 {
            for (_, s) in states[i].keys where s.phase == .pending { best = min(best, s.due) }
        }
        return best.isFinite ? best : nil
    }

    private mutating func recomputeEarliest() {
        earliest = nextDeadline ?? .infinity
    }

    // MARK: Reload

    /// Swaps in new rules, keeping the state (pending `for`, firing, cooldown, `every` phase) of
    /// each rule whose definition did not change. New and changed rules start fresh at `time`.
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
            var s = RuleState()
            if let every = rule.every { s.nextEvery = time + every }
            newStates.append(s)
        }
        let newIDs = Set(newSet.rules.map(\.id))
        summary.removed = ruleSet.rules.map(\.id).filter { !newIDs.contains($0) }
        ruleSet = newSet
        states = newStates
        firingCounts = newCounts
        lastEventLabel = 0
        recomputeEarliest()
        return summary
    }

    // MARK: Planning actions

    private func plan(_ rule: CompiledRule, _ actions: [ActionTemplate], _ phase: PlannedAction.Phase, _ trigger: RuleEvent?,
                      _ time: Double, _ explaining: Bool, _ explain: inout [Explanation], _ out: inout [PlannedAction]) {
        let c = EvalContext(event: trigger, now: time)
        for action in actions {
            let kind: PlannedAction.Kind
            switch action {
            case .emit(let namespace, let event, let args, let ack):
                let ns = namespace.map { $0.renderText(c) } ?? trigger?.namespace ?? "/"
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
