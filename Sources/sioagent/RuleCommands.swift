import Agent
import Rules

/// The logic of `sioagent check`, `test` and `replay`; the command files only parse arguments.
enum RuleCommands {
    /// `sioagent check`: every diagnostic, then a summary. Exit 0 when valid (warnings allowed), 1 on errors.
    static func check(paths: [String], environment: [String: String], json: Bool, output: (String) -> Void) -> Int32 {
        let (set, diagnostics) = RuleSet.load(paths: paths, environment: environment)
        let errors = diagnostics.filter { $0.severity == .error }.count
        let warnings = diagnostics.count - errors
        if json {
            let report: JSONValue = .object(.init(uniqueKeysWithValues: [
                ("valid", .bool(set != nil)),
                ("errors", .number(Double(errors))),
                ("warnings", .number(Double(warnings))),
                ("rules", .number(Double(set?.count ?? 0))),
                ("tests", .number(Double(set?.tests.count ?? 0))),
                ("diagnostics", .array(diagnostics.map { $0.jsonValue() })),
            ]))
            output(report.jsonString())
            return set == nil ? 1 : 0
        }
        for d in diagnostics { output(d.description) }
        if let set {
            let files = set.files.count
            output("ok: \(files) file\(files == 1 ? "" : "s"), \(set.count) rule\(set.count == 1 ? "" : "s"), \(set.tests.count) test\(set.tests.count == 1 ? "" : "s")"
                   + (warnings > 0 ? ", \(warnings) warning\(warnings == 1 ? "" : "s")" : ""))
            return 0
        }
        output("\(errors) error\(errors == 1 ? "" : "s")" + (warnings > 0 ? ", \(warnings) warning\(warnings == 1 ? "" : "s")" : ""))
        return 1
    }

    /// `sioagent test`: runs every test, reports each failure with its diff; last line
    /// `N passed, N failed`. Exit 0 only when all pass (and there was at least one test).
    static func test(paths: [String], environment: [String: String], output: (String) -> Void) -> Int32 {
        let (set, diagnostics) = RuleSet.load(paths: paths, environment: environment)
        for d in diagnostics { output(d.description) }
        guard let set else {
            let errors = diagnostics.filter { $0.severity == .error }.count
            output("the rules did not load (\(errors) error\(errors == 1 ? "" : "s")); no test ran")
            output("0 passed, 0 failed")
            return 1
        }
        var passed = 0, failed = 0
        for outcome in RuleTestRunner.runAll(set) {
            let t = outcome.test
            if outcome.passed {
                passed += 1
                output("PASS \(t.file):\(t.line): \(t.name)")
            } else {
                failed += 1
                output("FAIL \(t.file):\(t.line):\(t.column): \(t.name)\n\(outcome.report)")
            }
        }
        if passed + failed == 0 {
            output("no tests found (write tests: in a rule file or in NAME.test.yaml beside it)")
            output("0 passed, 0 failed")
            return 1
        }
        output("\(passed) passed, \(failed) failed")
        return failed == 0 ? 0 : 1
    }

    /// `sioagent replay`: evaluates recorded events on a virtual clock and writes one JSON line per
    /// planned action (and, with `explain`, one per rule that handled an event but did not fire).
    /// Malformed lines go to `errors` with their line number and are skipped.
    /// Exit 0, or 1 when the rules did not load or a line was malformed.
    static func replay(rulePaths: [String], environment: [String: String], eventsName: String,
                              lines: some Sequence<String>, explain: Bool, timeZone: String? = nil,
                              output: (String) -> Void, errors: (String) -> Void) -> Int32 {
        let (loaded, diagnostics) = RuleSet.load(paths: rulePaths, environment: environment)
        for d in diagnostics { errors(d.description) }
        guard let set = loaded else { return 1 }
        var engine: RuleEngine?
        var previous: Double?
        var malformed = 0
        var lineNumber = 0
        for line in lines {
            lineNumber += 1
            if line.trimmingSpaces().isEmpty { continue }
            switch ReplayInput.parse(line: line, previousTime: previous) {
            case .failure(let e):
                malformed += 1
                errors("\(eventsName):\(lineNumber): error: \(e.message); line skipped")
            case .success(let (at, event)):
                if engine == nil { engine = RuleEngine(ruleSet: set, startTime: at, timeZone: timeZone) }
                previous = at
                for action in engine!.run(until: at) { output(action.replayJSON().jsonString()) }
                var explanations: [Explanation] = []
                let actions = explain ? engine!.handle(event, at: at, explain: &explanations) : engine!.handle(event, at: at)
                for action in actions { output(action.replayJSON().jsonString()) }
                for e in explanations { output(e.replayJSON().jsonString()) }
            }
        }
        return malformed == 0 ? 0 : 1
    }
}
