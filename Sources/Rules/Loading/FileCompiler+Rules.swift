import SIOCore
import SIOYAML

private let ruleKeys = ["id", "description", "enabled", "on", "every", "at", "cron", "when", "clear_when", "for", "cooldown", "key",
                        "absent", "max_keys", "window_samples", "then", "on_clear"]

extension FileCompiler {
    // MARK: Rules

    mutating func compileRule(_ n: YAMLNode) -> CompiledRule? {
        guard let m = mapping(n, "a rule", known: ruleKeys) else { return nil }
        let before = diagnostics.filter { $0.severity == .error }.count
        let rulePosition = position(n)
        var id = ""
        if let e = m["id"] {
            if let t = text(e.value, "id") {
                id = t
                if t.trimmingSpaces().isEmpty { error(e.value, "id must not be empty") }
                idsWritten.append((t, position(e.value)))
            }
        } else {
            error(n, "a rule needs an id: (unique across all loaded files)")
        }
        var environmentRead = Set<String>()
        var description: String?
        if let e = m["description"] { description = text(e.value, "description") }
        var enabled = true
        if let e = m["enabled"] {
            if case .bool(let b) = json(e.value), e.value.scalar?.style == .plain { enabled = b } else { error(e.value, "enabled must be true or false, not \(describe(e.value))") }
        }
        var triggers: [Trigger] = []
        if let e = m["on"] { triggers = compileTriggers(e.value) }
        var every: Double?
        if let e = m["every"] {
            every = duration(e.value, "every")
            // A shorter period would only flood the actions (and below about 1e-7 s the clock stops
            // moving at today's Unix times): the shortest is 1 s.
            if let v = every, v < shortestEvery {
                error(e.value, "every: \"\(e.value.scalar?.string ?? "")\" is shorter than \(formatSeconds(shortestEvery)), the shortest period")
                every = nil
            }
        }
        let timerKeys = ["every", "at", "cron"].filter { m[$0] != nil }
        if m["on"] == nil && timerKeys.isEmpty {
            error(n, "a rule needs on: (the events it handles) or every:, at: or cron: (a timer)")
        }
        if let on = m["on"], let timer = timerKeys.first {
            error(on.keyNode, "a rule has either on: (events) or \(timer): (a timer), not both")
        }
        if timerKeys.count > 1, let second = m[timerKeys[1]] {
            error(second.keyNode, "a rule has one timer: \(timerKeys[0]): or \(timerKeys[1]):, not both")
        }
        if let timer = timerKeys.first {
            for key in ["for", "clear_when", "key", "on_clear", "cooldown", "absent"] {
                if let e = m[key] { error(e.keyNode, "\(key): does not apply to an \(timer): timer rule") }
            }
        }
        let time = compileTimeKeys(m)
        ruleScope = RuleScope(allowKey: m["key"] != nil, allowWindows: m["on"] != nil)
        defer { ruleScope = RuleScope() }
        let when = m["when"].flatMap { condition($0.value, "when", needsBool: true, environmentRead: &environmentRead) }
        let clearWhen = m["clear_when"].flatMap { condition($0.value, "clear_when", needsBool: true, environmentRead: &environmentRead) }
        let key = m["key"].flatMap { condition($0.value, "key", needsBool: false, environmentRead: &environmentRead) }
        var forSeconds = m["for"].flatMap { duration($0.value, "for") }
        if let f = forSeconds, f <= 0 { forSeconds = nil }
        let cooldown = m["cooldown"].flatMap { duration($0.value, "cooldown") }
        var then: [ActionTemplate] = []
        if let e = m["then"] {
            then = compileActions(e.value, "then", isTimer: !timerKeys.isEmpty, environmentRead: &environmentRead)
            if then.isEmpty, case .sequence(let s) = e.value, s.isEmpty { error(e.value, "then: has no actions") }
        } else {
            error(n, "a rule needs then: (the actions to take)")
        }
        var onClear: [ActionTemplate] = []
        if let e = m["on_clear"] {
            if m["for"] == nil && m["clear_when"] == nil && m["absent"] == nil && timerKeys.isEmpty {
                error(e.keyNode, "on_clear: needs clear_when:, for: or absent: (without them a rule never clears)")
            }
            onClear = compileActions(e.value, "on_clear", isTimer: false, environmentRead: &environmentRead)
        }
        guard diagnostics.filter({ $0.severity == .error }).count == before, enabled else { return nil }
        let envText = environmentRead.sorted().map { "\($0)=\(environment[$0] ?? "<unset>")" }.joined(separator: ",")
        let fingerprint = json(n).jsonString() + "|vars:" + varsText + "|env:" + envText
        return CompiledRule(id: id, description: description, file: source.path, line: rulePosition.line, column: rulePosition.column,
                            triggers: triggers, every: every, when: when, clearWhen: clearWhen, key: key, forSeconds: forSeconds,
                            cooldown: cooldown, then: then, onClear: onClear, fingerprint: fingerprint,
                            absent: time.absent, schedule: time.schedule, maxKeys: time.maxKeys, windowSamples: time.windowSamples)
    }

    mutating func compileTriggers(_ n: YAMLNode) -> [Trigger] {
        switch n {
        case .scalar:
            guard let name = eventName(n) else { return [] }
            return [Trigger(namespace: "/", event: name)]
        case .sequence(let seq):
            if seq.isEmpty { error(n, "on: lists no events") }
            return seq.flatMap { item -> [Trigger] in
                if case .sequence = item { error(item, "on: items are event names or {event:, namespace:} mappings, not lists"); return [] }
                return compileTriggers(item)
            }
        case .mapping:
            guard let m = mapping(n, "on:", known: ["event", "namespace"]) else { return [] }
            var namespace = "/"
            if let e = m["namespace"], let ns = text(e.value, "namespace") {
                if ns != "*" && !ns.hasPrefix("/") { error(e.value, "a namespace starts with \"/\" (or is \"*\" for any), not \"\(ns)\"") }
                namespace = ns
            }
            guard let e = m["event"] else {
                error(n, "on: needs event: (a name, a list of names, or \"*\")")
                return []
            }
            var names: [String] = []
            if case .sequence(let seq) = e.value {
                names = seq.compactMap { eventName($0) }
            } else if let name = eventName(e.value) {
                names = [name]
            }
            return names.map { Trigger(namespace: namespace, event: $0) }
        }
    }

    mutating func eventName(_ n: YAMLNode) -> String? {
        guard let name = text(n, "an event name") else { return nil }
        if name.isEmpty { error(n, "an event name must not be empty"); return nil }
        return name
    }
}
