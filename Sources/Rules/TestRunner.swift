import SIOCore

/// The result of running one `tests:` entry.
public struct TestOutcome: Sendable {
    public var test: RuleTest
    public var passed: Bool
    /// The actions the rules planned.
    public var actual: [PlannedAction]
    /// For a failure: the readable expected/actual comparison (several lines); empty when passed.
    public var report: String
}

/// Runs rule tests on a virtual clock: `for`, `cooldown` and `every` take no real time.
public enum RuleTestRunner {
    /// Runs every test of the set (each against the rules of its own rule file).
    public static func runAll(_ ruleSet: RuleSet) -> [TestOutcome] {
        ruleSet.tests.map { run($0, in: ruleSet) }
    }

    /// Runs one test: feeds its events at their times (firing timers due in between at their own
    /// times), runs the clock on to `until`, then compares the planned actions with the expected
    /// ones in order and number, each by the fields it gives.
    public static func run(_ test: RuleTest, in ruleSet: RuleSet) -> TestOutcome {
        let start = test.clockStart
        var engine = RuleEngine(ruleSet: ruleSet.restricted(toFile: test.rulesFile), startTime: start, timeZone: test.timeZone,
                                state: test.initialState)
        var actual: [PlannedAction] = []
        var last = 0.0
        for e in test.events {
            actual += engine.run(until: start + e.at)
            actual += engine.handle(e.event, at: start + e.at)
            last = e.at
        }
        actual += engine.run(until: start + max(last, test.until ?? last))
        // Times in the test are offsets from the clock's start.
        if start != 0 { for i in actual.indices { actual[i].at -= start } }
        let report = compare(test, actual)
        return TestOutcome(test: test, passed: report.isEmpty, actual: actual, report: report)
    }

    /// The fields of `expectation` that `action` does not match, as `(key, expected, actual)`.
    static func mismatches(_ expectation: RuleTest.Expectation, _ action: PlannedAction) -> [(String, JSONValue, JSONValue?)] {
        guard case .object(let fields) = action.replayJSON() else { return [] }
        var out: [(String, JSONValue, JSONValue?)] = []
        for (key, expected) in expectation.fields {
            let got = fields[key]
            switch (key, expected, got) {
            case (_, .number(let x), .number(let y)?) where abs(x - y) < 1e-9:
                continue
            case ("env", .object(let want), .object(let have)?):
                // Only the variables the test names are compared.
                if want.allSatisfy({ have[$0.key] == $0.value }) { continue }
            default:
                if got == expected { continue }
            }
            out.append((key, expected, got))
        }
        return out
    }

    static func compare(_ test: RuleTest, _ actual: [PlannedAction]) -> String {
        let expected = test.expect
        var lines: [String] = []
        var failed = expected.count != actual.count
        for i in 0..<max(expected.count, actual.count) {
            if i < expected.count, i < actual.count {
                let bad = mismatches(expected[i], actual[i])
                if bad.isEmpty {
                    lines.append("    ✓ #\(i + 1) \(summary(actual[i]))")
                } else {
                    failed = true
                    lines.append("    ✗ #\(i + 1) expected (\(test.file):\(expected[i].line):\(expected[i].column)): \(summary(expected[i]))")
                    lines.append("         actual: \(summary(actual[i]))")
                    for (key, want, got) in bad {
                        lines.append("         \(key): expected \(show(key, want)), got \(got.map { show(key, $0) } ?? "nothing")")
                    }
                }
            } else if i < expected.count {
                lines.append("    - #\(i + 1) missing (\(test.file):\(expected[i].line):\(expected[i].column)): \(summary(expected[i]))")
            } else {
                lines.append("    + #\(i + 1) unexpected: \(summary(actual[i]))")
            }
        }
        guard failed else { return "" }
        var head = "  expected \(expected.count) action\(expected.count == 1 ? "" : "s"), got \(actual.count)"
        if expected.count == actual.count { head += ", but they differ" }
        return ([head + ":"] + lines).joined(separator: "\n")
    }

    static func show(_ key: String, _ v: JSONValue) -> String {
        if key == "at" || key == "ack" || key == "timeout" || key == "ttl", case .number(let n) = v { return formatSeconds(n) }
        return v.jsonString()
    }

    /// One line for an action: `1s battery-low then emit / alert ["battery low: 15%"]`.
    public static func summary(_ action: PlannedAction) -> String {
        var s = "\(formatSeconds(action.at)) \(action.rule) \(action.phase.rawValue) \(action.kind.name)"
        switch action.kind {
        case .emit(let ns, let event, let args, _):
            s += " \(ns == "/" ? "" : ns + " ")\(event) \(JSONValue.array(args).jsonString())"
        case .run(let argv, _, _, _):
            s += " \(JSONValue.array(argv.map { .string($0) }).jsonString())"
        case .shell(let script, _, _, _, _):
            s += " \(JSONValue.string(script).jsonString())"
        case .log(let target, let message):
            s += " \(target.name) \(JSONValue.string(message).jsonString())"
        case .reply(let args):
            s += " \(JSONValue.array(args).jsonString())"
        case .set(let name, let value, let ttl):
            s += " \(name) = \(value.jsonString())" + (ttl.map { " ttl \(formatSeconds($0.secondsValue))" } ?? "")
        case .unset(let name):
            s += " \(name)"
        }
        return s
    }

    static func summary(_ e: RuleTest.Expectation) -> String {
        e.fields.map { "\($0.0)=\(show($0.0, $0.1))" }.joined(separator: " ")
    }
}
