import Rules
import SIOCore
import Testing

/// Every diagnostic the loader gives, with its exact position.
struct LoaderDiagnosticTests {
    static let cases: [(String, String)] = [
        // Unknown keys, with did-you-mean.
        ("rules:\n  - id: a\n    on: x\n    wehn: payload < 1\n    then: [{log: stdout}]\n", "4:5: unknown key \"wehn\" in a rule; did you mean \"when\"?"),
        ("rule:\n  - id: a\n", "1:1: unknown key \"rule\" in the file; did you mean \"rules\"?"),
        ("rules:\n  - id: a\n    on: x\n    then:\n      - emitt: alert\n", "5:9: unknown action \"emitt\"; did you mean \"emit\"? (actions: emit, run, shell, log, reply, set, unset)"),
        ("rules:\n  - id: a\n    on: x\n    then:\n      - emit: alert\n        arg: [1]\n", "6:9: unknown key \"arg\" in a emit action; did you mean \"args\"?"),
        // Expression errors at the exact column inside the file.
        ("rules:\n  - id: a\n    on: x\n    when: payload <\n    then: [{log: stdout}]\n", "4:20: in when: expression ends too early: expected a value"),
        ("rules:\n  - id: a\n    on: x\n    when: payload = 3\n    then: [{log: stdout}]\n", "4:19: in when: \"=\" is not an operator; use \"==\" to compare"),
        ("rules:\n  - id: a\n    on: x\n    when: \"payload.level > 3 && true\"\n    then: [{log: stdout}]\n", "4:30: in when: unexpected \"&\"; write \"and\""),
        ("rules:\n  - id: a\n    on: x\n    when: 'payload[\"odd key\"] < vars.nope'\n    then: [{log: stdout}]\n", "4:38: unknown variable \"nope\" (this file has no vars:)"),
        ("vars: {low: 20}\nrules:\n  - id: a\n    on: x\n    when: payload < vars.lwo\n    then: [{log: stdout}]\n", "5:26: unknown variable \"lwo\"; did you mean \"low\"?"),
        ("rules:\n  - id: a\n    on: x\n    when: |\n      payload.a > 1 and\n      lenn(args) > 2\n    then: [{log: stdout}]\n", "6:7: in when: unknown function \"lenn\"; did you mean \"len\"?"),
        ("rules:\n  - id: a\n    on: x\n    when: paylod > 1\n    then: [{log: stdout}]\n", "4:11: in when: unknown name \"paylod\"; did you mean \"payload\"? (names: event, namespace, args, payload, vars, env, now, key, state)"),
        ("rules:\n  - id: a\n    on: x\n    when: payload matches \"([\"\n    then: [{log: stdout}]\n", ""),  // quoted inside a plain scalar: see regexCase
        // Types known at load.
        ("rules:\n  - id: a\n    on: x\n    when: '\"a\" < 3'\n    then: [{log: stdout}]\n", "4:16: \"<\" between a string and a number never holds: values are not converted (use number() or string())"),
        ("rules:\n  - id: a\n    on: x\n    when: payload + 1\n    then: [{log: stdout}]\n", "4:11: when must give true or false, but this gives a number"),
        ("rules:\n  - id: a\n    on: x\n    when: payload > 1 and 5\n    then: [{log: stdout}]\n", "4:27: \"and\" needs true or false, but this is a number"),
        ("rules:\n  - id: a\n    on: x\n    when: len(3) > 1\n    then: [{log: stdout}]\n", "4:15: len() needs a string, list or object, but this is a number"),
        ("rules:\n  - id: a\n    on: x\n    when: a < b < c\n    then: [{log: stdout}]\n", "4:11: in when: unknown name \"a\" (names: event, namespace, args, payload, vars, env, now, key, state)"),
        ("rules:\n  - id: a\n    on: x\n    when: payload < 1 < 2\n    then: [{log: stdout}]\n", "4:23: in when: comparisons do not chain; join them with \"and\""),
        // Durations.
        ("rules:\n  - id: a\n    on: x\n    for: 2\n    then: [{log: stdout}]\n", "4:10: for needs a unit: 2s, 2m… (500ms, 10s, 5m, 1h, 1d)"),
        ("rules:\n  - id: a\n    on: x\n    cooldown: 10 minutes\n    then: [{log: stdout}]\n", "4:15: cooldown: \"10 minutes\" is not a duration (500ms, 10s, 5m, 1h, 1d)"),
        // Templates.
        ("rules:\n  - id: a\n    on: x\n    then:\n      - shell: echo {{ payload }}\n", "5:21: templates are not allowed in shell: scripts (event data would run as code); read $SIOAGENT_PAYLOAD, $SIOAGENT_ARGS or standard input, or use run: with a list"),
        ("rules:\n  - id: a\n    on: x\n    then:\n      - log: stdout\n        message: \"level {{ payload.level }\"\n", "6:25: \"{{\" is not closed with \"}}\""),
        ("rules:\n  - id: a\n    on: x\n    then:\n      - log: stdout\n        message: \"level {{ payload. }}\"\n", "6:37: in template: expected a field name after \".\", found end of expression (use [\"odd key\"] for other names)"),
        ("rules:\n  - id: a\n    on: x\n    then:\n      - run: [\"{{ payload }}\"]\n", "5:15: the program to run (the first element) cannot come from a template"),
        ("rules:\n  - id: a\n    on: x\n    then:\n      - emit: alert\n        args: [{{ payload }}]\n", "6:16: YAML read \"{{ … }}\" as a mapping: quote a value that starts with {{, e.g. \"{{ payload }}\""),
        // Wrong types and missing keys.
        ("rules:\n  - id: [a]\n    on: x\n    then: [{log: stdout}]\n", "2:9: id must be text, not a list"),
        ("rules:\n  - on: x\n    then: [{log: stdout}]\n", "2:5: a rule needs an id: (unique across all loaded files)"),
        ("rules:\n  - id: a\n    then: [{log: stdout}]\n", "2:5: a rule needs on: (the events it handles) or every:, at: or cron: (a timer)"),
        ("rules:\n  - id: a\n    on: x\n", "2:5: a rule needs then: (the actions to take)"),
        ("rules:\n  - id: a\n    on: x\n    then: {emit: x}\n", "4:11: then: must be a list of actions (each starting with \"- emit:\", \"- run:\", \"- shell:\", \"- log:\" or \"- reply:\"), not a mapping"),
        ("rules:\n  - id: a\n    on: x\n    then:\n      - emit: x\n        args: 5\n", "6:15: args: must be a list, not a number 5 (for one value use data:)"),
        ("rules:\n  - id: a\n    on: {event: x, namespace: devices}\n    then: [{log: stdout}]\n", "3:31: a namespace starts with \"/\" (or is \"*\" for any), not \"devices\""),
        ("rules:\n  - id: a\n    on: x\n    on_clear: [{log: stdout}]\n    then: [{log: stdout}]\n", "4:5: on_clear: needs clear_when:, for: or absent: (without them a rule never clears)"),
        ("rules:\n  - id: a\n    every: 1m\n    key: payload\n    then: [{log: stdout}]\n", "4:5: key: does not apply to an every: timer rule"),
        ("rules:\n  - id: a\n    on: x\n    enabled: yes\n    then: [{log: stdout}]\n", "4:14: enabled must be true or false, not the text \"yes\""),
        ("rules:\n  - id: a\n    on: x\n    then:\n      - emit: x\n        log: stdout\n", "5:9: one action per list item: found emit and log; start each with \"- \""),
        // Duplicate ids, pointing at the second.
        ("rules:\n  - id: a\n    on: x\n    then: [{log: stdout}]\n  - id: a\n    on: y\n    then: [{log: stdout}]\n", "5:9: duplicate rule id \"a\": already defined at t.yaml:2:9"),
        // Malformed YAML.
        ("rules:\n  - id: a\n    on: [x\n", "4:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence that starts at line 3, column 9)"),
        ("rules:\n  - id: a\n    id: b\n", "2:5: invalid YAML: duplicate key \"id\" in this mapping"),
        ("rules:\n\t- id: a\n", "2:1: invalid YAML: found character that cannot start any token (while scanning for the next token that starts at line 2, column 1)"),
        ("- just a list\n", "1:1: the file must be a mapping (key: value), not a list"),
        // Tests blocks.
        ("rules:\n  - id: a\n    on: x\n    then: [{log: stdout}]\ntests:\n  - name: t\n    events: [{at: 1s, event: x}]\n    expect: [{at: 1s, rule: b}]\n", "8:29: unknown rule \"b\" in this test's rules (t.yaml); did you mean \"a\"?"),
        ("rules:\n  - id: a\n    on: x\n    then: [{log: stdout}]\ntests:\n  - name: t\n    events: [{at: 1s, event: x}]\n    expect: [{at: 1s, mesage: hi}]\n", "8:23: unknown key \"mesage\" in an expected action; did you mean \"message\"?"),
        ("rules:\n  - id: a\n    on: x\n    then: [{log: stdout}]\ntests:\n  - name: t\n    events: [{at: 2s, event: x}, {at: 1s, event: x}]\n    expect: []\n", "7:34: events must be in time order: this one is at 1s, before the previous one"),
    ]

    @Test(arguments: cases.filter { !$0.1.isEmpty })
    func reportsErrorAtItsPosition(yaml: String, expected: String) {
        let found = errors(yaml)
        #expect(found.contains(expected), "got \(found)")
    }

    @Test func regexErrorPointsAtThePattern() {
        let found = errors("rules:\n  - id: a\n    on: x\n    when: 'payload matches \"([\"'\n    then: [{log: stdout}]\n")
        #expect(found.count == 1)
        #expect(found.first == "4:30: invalid regular expression \"([\": this class is not closed: missing ]", "\(found)")
    }

    /// The error points at the construct inside the pattern, counting the expression's string
    /// escapes (`\\` is one character of the pattern, two of the file).
    @Test func regexErrorPointsInsideThePattern() {
        func located(_ pattern: String) -> [String] {
            errors("rules:\n  - id: a\n    on: x\n    when: 'payload matches \"\(pattern)\"'\n    then: [{log: stdout}]\n")
        }
        #expect(located("ab(?=c)") == ["4:31: invalid regular expression \"ab(?=c)\": lookahead (?=…) (?!…) is not supported by matches"])
        #expect(located("\\\\d(?<=x)") == ["4:32: invalid regular expression \"\\\\d(?<=x)\": lookbehind (?<=…) (?<!…) is not supported by matches"])
        #expect(located("\\d+(a)\\1").first?.hasPrefix("4:35: invalid regular expression") == true, "\(located("\\d+(a)\\1"))")
        #expect(located("a{2,1}").first?.hasPrefix("4:30: ") == true)
    }

    @Test func reportsEveryErrorAtOnce() {
        let yaml = """
            rules:
              - id: a
                on: x
                wehn: payload < 1
                for: 2
                then:
                  - emitt: x
              - id: a
                on: y
                then: [{log: stdout}]
            """
        let found = errors(yaml)
        #expect(found.count == 4, "\(found)")
    }

    @Test func printsFileLineColumnSourceAndCaret() throws {
        let (_, diagnostics) = load("vars: {low: 20}\nrules:\n  - id: a\n    on: x\n    when: payload < vars.lwo\n    then: [{log: stdout}]\n")
        let d = try #require(diagnostics.first)
        #expect(d.description == """
            t.yaml:5:26: error: unknown variable "lwo"; did you mean "low"?
                when: payload < vars.lwo
                                     ^
            """)
    }

    @Test func unsetEnvironmentVariableIsAWarningNotAnError() throws {
        let (set, diagnostics) = load("rules:\n  - id: a\n    on: x\n    when: payload == env.SITE\n    then: [{log: stdout}]\n")
        #expect(set != nil)
        #expect(diagnostics.map { "\($0.line):\($0.column): \($0.severity): \($0.message)" } == ["4:26: warning: environment variable SITE is not set; env.SITE has no value"])
    }

    @Test func yamlOneOneBooleansStayText() throws {
        // `on: on` and `message: no` keep their text (YAML 1.2 core schema).
        let set = try rules("rules:\n  - id: a\n    on: on\n    then:\n      - log: stdout\n        message: no\n")
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        #expect(describe(engine.handle(event("on"), at: 1)) == ["1s a then log stdout \"no\""])
    }

    @Test func fingerprintChangesWithTheDefinitionOrItsVars() throws {
        let a = try rules("vars: {low: 20}\nrules:\n  - id: a\n    on: x\n    when: payload < vars.low\n    then: [{log: stdout}]\n  - id: b\n    on: y\n    then: [{log: stdout}]\n")
        let b = try rules("vars: {low: 20}\nrules:\n  - id: a\n    on: x\n    when: payload < vars.low\n    then: [{log: stdout}]\n  - id: b\n    on: y\n    then: [{log: stderr}]\n")
        let c = try rules("vars: {low: 21}\nrules:\n  - id: a\n    on: x\n    when: payload < vars.low\n    then: [{log: stdout}]\n")
        #expect(a.fingerprint(of: "a") == b.fingerprint(of: "a"))
        #expect(a.fingerprint(of: "b") != b.fingerprint(of: "b"))
        #expect(a.fingerprint(of: "a") != c.fingerprint(of: "a"))
    }
}

struct DurationTests {
    @Test(arguments: [("500ms", 0.5), ("10s", 10), ("5m", 300), ("1h", 3600), ("1d", 86400), ("1h30m", 5400), ("1.5s", 1.5)])
    func parses(text: String, seconds: Double) {
        #expect(parseDuration(text) == durationFromSeconds(seconds))
    }

    @Test(arguments: ["", "10", "ten s", "5 minutes", "-1s", "1w", "s"])
    func rejects(text: String) {
        #expect(parseDuration(text) == nil)
    }
}

struct ReplayInputTests {
    @Test func parsesTimesAsSecondsOrISO8601() {
        #expect(parseISO8601("2026-11-24T10:00:00Z") == 1_795_514_400)
        #expect(parseISO8601("2026-11-24T12:00:00.5+02:00") == 1_795_514_400.5)
        #expect(parseISO8601("1970-01-01T00:00:00Z") == 0)
        #expect(parseISO8601("2026-13-01T00:00:00Z") == nil)
        #expect(parseISO8601("yesterday") == nil)
    }

    @Test func reportsMalformedLines() {
        func reason(_ line: String, previous: Double? = nil) -> String? {
            if case .failure(let e) = ReplayInput.parse(line: line, previousTime: previous) { return e.message }
            return nil
        }
        #expect(reason(#"{"at": 1, "event": "x"}"#) == nil)
        #expect(reason(#"[1]"#) == "expected a JSON object, got a list")
        #expect(reason(#"{"at": 1}"#) == "missing \"event\" (a name)")
        #expect(reason(#"{"at": 1, "event": "x", "args": 5}"#) == "\"args\" must be a list")
        #expect(reason(#"{"at": 1, "event": "x"}"#, previous: 2) == "\"at\" goes back in time (1 after 2)")
        #expect(reason(#"{"event": "x"}"#) == "the first event needs \"at\"")
    }
}
