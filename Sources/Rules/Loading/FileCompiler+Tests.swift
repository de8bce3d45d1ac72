import SIOCore
import SIOYAML

extension FileCompiler {
    // MARK: Tests

    mutating func compileTest(_ n: YAMLNode) -> RuleTest? {
        guard let m = mapping(n, "a test", known: ["name", "clock", "state", "events", "expect", "until"]) else { return nil }
        let before = diagnostics.filter { $0.severity == .error }.count
        let p = position(n)
        var name = "test at line \(p.line)"
        if let e = m["name"] { name = text(e.value, "name") ?? name } else { error(n, "a test needs a name:") }
        var events: [RuleTest.Event] = []
        var lastAt = -Double.infinity
        if let e = m["events"] {
            if case .sequence(let seq) = e.value {
                for item in seq {
                    guard let event = compileTestEvent(item) else { continue }
                    if event.at < lastAt { error(item, "events must be in time order: this one is at \(formatSeconds(event.at)), before the previous one") }
                    lastAt = max(lastAt, event.at)
                    events.append(event)
                }
            } else {
                error(e.value, "events: must be a list of events like {at: 1s, event: batery, args: [15]}")
            }
        } else {
            error(n, "a test needs events:")
        }
        var expect: [RuleTest.Expectation] = []
        if let e = m["expect"] {
            if case .sequence(let seq) = e.value {
                for item in seq { if let x = compileExpectation(item) { expect.append(x) } }
            } else if !isNull(e.value) {
                error(e.value, "expect: must be a list of actions like {at: 1s, rule: battery-low, action: emit} (or [] for none)")
            }
        } else {
            error(n, "a test needs expect: (use expect: [] when nothing should happen)")
        }
        let until = m["until"].flatMap { testTime($0.value, "until") }
        let clock = m["clock"].flatMap { compileClock($0.value) }
        let initialState = m["state"].flatMap { compileInitialState($0.value) } ?? [:]
        guard diagnostics.filter({ $0.severity == .error }).count == before else { return nil }
        var test = RuleTest(name: name, file: source.path, line: p.line, column: p.column, rulesFile: source.path,
                            events: events, expect: expect, until: until)
        test.clockStart = clock?.start ?? 0
        test.timeZone = clock?.timeZone ?? "UTC"
        test.initialState = initialState
        return test
    }

    /// A test time: a duration (`1s`, `2m`) or a number of seconds.
    mutating func testTime(_ n: YAMLNode, _ what: String) -> Double? {
        if case .scalar(let s) = n, case .number(let v) = s.value {
            if v < 0 { error(n, "\(what) cannot be negative"); return nil }
            if v > longestDuration { error(n, tooLong(what, s.string)); return nil }
            return v
        }
        guard case .scalar(let s) = n, let v = parseDurationSeconds(s.string) else {
            error(n, "\(what) must be a time like 0s, 1.5s, 2m (or a number of seconds), not \(describe(n))")
            return nil
        }
        if v > longestDuration { error(n, tooLong(what, s.string)); return nil }
        return v
    }

    mutating func compileTestEvent(_ n: YAMLNode) -> RuleTest.Event? {
        guard let m = mapping(n, "a test event", known: ["at", "event", "namespace", "args", "data", "ack"]) else { return nil }
        guard let atEntry = m["at"] else { error(n, "a test event needs at: (its time, like 1s)"); return nil }
        guard let at = testTime(atEntry.value, "at") else { return nil }
        guard let e = m["event"] else { error(n, "a test event needs event: (its name)"); return nil }
        guard let name = eventName(e.value) else { return nil }
        var namespace = "/"
        if let ns = m["namespace"] {
            guard let t = text(ns.value, "namespace") else { return nil }
            if !t.hasPrefix("/") { error(ns.value, "a namespace starts with \"/\""); return nil }
            namespace = t
        }
        var args: [JSONValue] = []
        if m["args"] != nil, let d = m["data"] {
            error(d.keyNode, "give args: (a list) or data: (one value), not both")
            return nil
        }
        if let a = m["args"] {
            guard case .array(let list) = json(a.value) else { error(a.value, "args: must be a list (for one value use data:)"); return nil }
            args = list
        }
        if let d = m["data"] { args = [json(d.value)] }
        var ack = false
        if let a = m["ack"] {
            guard case .bool(let b) = json(a.value) else { error(a.value, "ack: is true or false"); return nil }
            ack = b
        }
        return RuleTest.Event(at: at, event: RuleEvent(namespace: namespace, name: name, args: args, canReply: ack), line: position(n).line)
    }

    mutating func compileExpectation(_ n: YAMLNode) -> RuleTest.Expectation? {
        guard case .mapping = n else {
            error(n, "an expected action is a mapping like {at: 1s, rule: battery-low, action: emit}, not \(describe(n))")
            return nil
        }
        guard let m = mapping(n, "an expected action", known: expectationKeys) else { return nil }
        let p = position(n)
        var fields: [(String, JSONValue)] = []
        var ok = true
        for key in expectationKeys {
            guard let e = m[key] else { continue }
            switch key {
            case "at", "ack", "timeout", "ttl":
                guard let v = testTime(e.value, key) else { ok = false; continue }
                fields.append((key, .number(v)))
            case "phase":
                let v = json(e.value)
                guard case .string(let s) = v, ["then", "on_clear"].contains(s) else {
                    error(e.value, "phase is then or on_clear"); ok = false; continue
                }
                fields.append((key, v))
            case "action":
                let v = json(e.value)
                guard case .string(let s) = v, actionKinds.contains(s) else {
                    error(e.value, "action is one of \(actionKinds.joined(separator: ", "))" + suggestion(e.value.scalar?.string ?? "", actionKinds)); ok = false; continue
                }
                fields.append((key, v))
            case "rule":
                guard let t = text(e.value, "rule") else { ok = false; continue }
                expectationRulePositions["\(p.line):\(p.column)"] = position(e.value)
                fields.append((key, .string(t)))
            case "args", "argv":
                guard case .array = json(e.value) else { error(e.value, "\(key): must be a list"); ok = false; continue }
                fields.append((key, json(e.value)))
            case "value":
                // Any value, compared as the JSON `set` gave the state.
                fields.append((key, json(e.value)))
            case "env":
                guard case .object(let o) = json(e.value) else { error(e.value, "env: must be a mapping"); ok = false; continue }
                fields.append((key, .object(o.mapValues { .string(plainText($0)) })))
            default:
                guard case .scalar(let s) = e.value else { error(e.value, "\(key): must be text"); ok = false; continue }
                fields.append((key, .string(s.string)))
            }
        }
        guard ok else { return nil }
        return RuleTest.Expectation(fields: fields, line: p.line, column: p.column)
    }
}
