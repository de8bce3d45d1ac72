import Rules
import SIOCore
import Testing

/// Feeds (time, event) pairs on a virtual clock, firing timers in between, and returns action summaries.
func play(_ set: RuleSet, _ steps: [(Double, RuleEvent)], until: Double? = nil) -> [String] {
    var engine = RuleEngine(ruleSet: set, startTime: 0)
    var out: [PlannedAction] = []
    for (t, e) in steps {
        out += engine.run(until: t)
        out += engine.handle(e, at: t)
    }
    if let until { out += engine.run(until: until) }
    return describe(out)
}

struct EngineSemanticsTests {
    @Test func withoutForOrClearWhenFiresOnEveryMatchingEvent() throws {
        let set = try rules("rules:\n  - id: low\n    on: b\n    when: payload < 20\n    then: [{emit: alert, data: '{{ payload }}'}]\n")
        #expect(play(set, [(0, event("b", 30)), (1, event("b", 15)), (2, event("b", 10)), (3, event("b", 25))])
                == ["1s low then emit alert [15]", "2s low then emit alert [10]"])
    }

    @Test func clearWhenGivesHysteresis() throws {
        let set = try rules("""
            rules:
              - id: low
                on: b
                when: payload < 20
                clear_when: payload >= 25
                then: [{emit: alert, data: '{{ payload }}'}]
                on_clear: [{emit: ok, data: '{{ payload }}'}]
            """)
        let steps: [(Double, RuleEvent)] = [(0, event("b", 19)), (1, event("b", 18)), (2, event("b", 22)), (3, event("b", 19)),
                                            (4, event("b", 25)), (5, event("b", 24)), (6, event("b", 19))]
        #expect(play(set, steps) == ["0s low then emit alert [19]", "4s low on_clear emit ok [25]", "6s low then emit alert [19]"])
    }

    @Test func withoutClearWhenAFiringRuleClearsWhenWhenStopsHolding() throws {
        let set = try rules("""
            rules:
              - id: low
                on: b
                when: payload < 20
                for: 10s
                then: [{log: stdout, message: 'low {{ payload }}'}]
                on_clear: [{log: stdout, message: 'ok {{ payload }}'}]
            """)
        #expect(play(set, [(0, event("b", 10)), (12, event("b", 11)), (13, event("b", 21))])
                == ["10s low then log stdout \"low 10\"", "13s low on_clear log stdout \"ok 21\""])
    }

    @Test func forFiresOnTimeEvenWithoutAnotherEventCarryingTheLastOne() throws {
        let set = try rules("rules:\n  - id: hot\n    on: t\n    when: payload > 80\n    for: 2m\n    then: [{log: stdout, message: 'hot {{ payload }}'}]\n")
        #expect(play(set, [(0, event("t", 85)), (30, event("t", 90))], until: 600) == ["2m hot then log stdout \"hot 90\""])
    }

    @Test func forResetsWhenTheConditionBreaksBeforeItElapses() throws {
        let set = try rules("rules:\n  - id: hot\n    on: t\n    when: payload > 80\n    for: 60s\n    then: [{log: stdout}]\n")
        #expect(play(set, [(0, event("t", 85)), (50, event("t", 70)), (55, event("t", 90))], until: 114).isEmpty)
        #expect(play(set, [(0, event("t", 85)), (50, event("t", 70)), (55, event("t", 90))], until: 115).count == 1)
        // A missing value breaks the streak too (it does not count as holding).
        #expect(play(set, [(0, event("t", 85)), (30, event("t", "x"))], until: 200).isEmpty)
    }

    @Test func forFiresOncePerEntry() throws {
        let set = try rules("rules:\n  - id: hot\n    on: t\n    when: payload > 80\n    for: 10s\n    then: [{log: stdout}]\n")
        let steps: [(Double, RuleEvent)] = [(0, event("t", 85)), (20, event("t", 86)), (30, event("t", 87)), (40, event("t", 10)), (41, event("t", 90))]
        #expect(play(set, steps, until: 100).map { String($0.prefix(3)) } == ["10s", "51s"])
    }

    @Test func cooldownBoundsFiringsOfAStatelessRule() throws {
        let set = try rules("rules:\n  - id: r\n    on: e\n    cooldown: 10s\n    then: [{log: stdout}]\n")
        let steps: [(Double, RuleEvent)] = [0, 5, 9.9, 10, 15, 21].map { ($0, event("e")) }
        #expect(play(set, steps).map { $0.components(separatedBy: " ")[0] } == ["0s", "10s", "21s"])
    }

    @Test func cooldownDelaysReentryOfAStatefulRule() throws {
        let set = try rules("""
            rules:
              - id: low
                on: b
                when: payload < 20
                clear_when: payload >= 25
                cooldown: 1m
                then: [{log: stdout, message: 'low {{ payload }}'}]
                on_clear: [{log: stdout, message: 'ok'}]
            """)
        let steps: [(Double, RuleEvent)] = [(0, event("b", 10)), (10, event("b", 30)), (20, event("b", 10)), (61, event("b", 12))]
        #expect(play(set, steps) == ["0s low then log stdout \"low 10\"", "10s low on_clear log stdout \"ok\"", "1m1s low then log stdout \"low 12\""])
    }

    @Test func cooldownWithForFiresWhenBothHaveElapsed() throws {
        let set = try rules("""
            rules:
              - id: low
                on: b
                when: payload < 20
                for: 5s
                cooldown: 1m
                then: [{log: stdout}]
                on_clear: [{log: stderr}]
            """)
        let steps: [(Double, RuleEvent)] = [(0, event("b", 10)), (10, event("b", 30)), (20, event("b", 10))]
        #expect(play(set, steps, until: 200).map { $0.components(separatedBy: " ").prefix(3).joined(separator: " ") }
                == ["5s low then", "10s low on_clear", "1m5s low then"])
    }

    @Test func keySeparatesStatePerDevice() throws {
        let set = try rules("""
            rules:
              - id: low
                on: b
                key: payload.device
                when: payload.level < 20
                clear_when: payload.level >= 25
                then: [{log: stdout, message: '{{ payload.device }} low'}]
                on_clear: [{log: stdout, message: '{{ payload.device }} ok'}]
            """)
        let steps: [(Double, RuleEvent)] = [
            (0, event("b", ["device": "a", "level": 10])), (1, event("b", ["device": "b", "level": 10])),
            (2, event("b", ["device": "a", "level": 12])), (3, event("b", ["device": "b", "level": 30])),
            (4, event("b", ["level": 5])),
        ]
        #expect(play(set, steps) == ["0s low then log stdout \"a low\"", "1s low then log stdout \"b low\"", "3s low on_clear log stdout \"b ok\""])
    }

    @Test func everyFiresOnItsPeriodWithoutAnEvent() throws {
        let set = try rules("rules:\n  - id: hb\n    every: 60s\n    then: [{emit: heartbeat, data: '{{ now }}'}]\n")
        #expect(play(set, [], until: 185) == ["1m hb then emit heartbeat [60]", "2m hb then emit heartbeat [120]", "3m hb then emit heartbeat [180]"])
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        #expect(engine.nextDeadline == 60)
        // A real clock that jumped several periods fires once, then keeps the period.
        #expect(engine.advance(to: 1000).count == 1)
        #expect(engine.nextDeadline == 1020)
    }

    @Test func timersFireBeforeAnEventAtTheSameTime() throws {
        let set = try rules("rules:\n  - id: hot\n    on: t\n    when: payload > 80\n    for: 10s\n    then: [{log: stdout, message: 'fired {{ payload }}'}]\n")
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        _ = engine.handle(event("t", 90), at: 0)
        #expect(engine.nextDeadline == 10)
        // handle() fires the due timer (with the last event seen) before looking at the new event.
        #expect(describe(engine.handle(event("t", 10), at: 10)) == ["10s hot then log stdout \"fired 90\""])
        #expect(engine.nextDeadline == nil)
    }

    @Test func wildcardsAndNamespaces() throws {
        let set = try rules("""
            rules:
              - id: any
                on: "*"
                then: [{log: stdout, message: '{{ event }}'}]
              - id: dev
                on: {event: [a, b], namespace: /devices}
                then: [{log: stdout, message: 'dev {{ namespace }}'}]
              - id: lifecycle
                on: [connect, disconnect]
                then: [{log: stdout, message: 'life {{ event }} {{ payload }}'}]
            """)
        #expect(play(set, [(0, event("a")), (1, event("a", namespace: "/devices")), (2, event("disconnect", "io server disconnect"))])
                == ["0s any then log stdout \"a\"", "1s dev then log stdout \"dev /devices\"", "2s lifecycle then log stdout \"life disconnect io server disconnect\""])
    }

    @Test func explainSaysWhyARuleDidNotFire() throws {
        let set = try rules("""
            vars: {low: 20}
            rules:
              - id: low
                on: b
                when: payload.level < vars.low
                cooldown: 10m
                then: [{log: stdout}]
            """)
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        var why: [Explanation] = []
        _ = engine.handle(event("b", ["level": 23]), at: 0, explain: &why)
        _ = engine.handle(event("b", ["other": 1]), at: 1, explain: &why)
        _ = engine.handle(event("b", ["level": "5"]), at: 2, explain: &why)
        #expect(engine.handle(event("b", ["level": 5]), at: 3, explain: &why).count == 1)
        _ = engine.handle(event("b", ["level": 5]), at: 4, explain: &why)
        #expect(why.map(\.reason) == [
            "when: `payload.level` is 23, needed < 20",
            "when: field missing: `payload` has no field \"level\"",
            "when: `payload.level` is \"5\" (string), needed < 20 (number): values are not converted",
            "cooldown: fired at 3, 9m59s left",
        ])
    }

    @Test func reloadKeepsStateOfUnchangedRules() throws {
        let yaml = """
            rules:
              - id: hot
                on: t
                when: payload > 80
                for: 60s
                then: [{log: stdout}]
              - id: other
                on: t
                then: [{log: stderr}]
            """
        let first = try rules(yaml)
        var engine = RuleEngine(ruleSet: first, startTime: 0)
        _ = engine.handle(event("t", 90), at: 0)
        let second = try rules(yaml.replacingOccurrences(of: "log: stderr", with: "log: stdout") + "\n  - id: new\n    on: t\n    then: [{log: stdout}]\n")
        let summary = engine.reload(second, at: 30)
        #expect(summary.kept == ["hot"])
        #expect(summary.changed == ["other"])
        #expect(summary.added == ["new"])
        // The pending `for` survived the reload and fires on time.
        let fired = engine.advance(to: 60)
        #expect(fired.map(\.rule) == ["hot"] && fired.first?.at == 60 && fired.first?.trigger?.args == [90])
        let third = try rules("rules:\n  - id: hot\n    on: t\n    when: payload > 81\n    for: 60s\n    then: [{log: stdout}]\n")
        var engine2 = RuleEngine(ruleSet: first, startTime: 0)
        _ = engine2.handle(event("t", 90), at: 0)
        let s2 = engine2.reload(third, at: 30)
        #expect(s2.changed == ["hot"] && s2.removed == ["other"])
        #expect(engine2.advance(to: 60).isEmpty)
    }

    @Test func noRuleForTheEventPlansNothing() throws {
        let set = try rules("rules:\n  - id: r\n    on: a\n    then: [{log: stdout}]\n")
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        #expect(engine.handle(event("b"), at: 0).isEmpty)
        #expect(engine.handle(event("a", namespace: "/other"), at: 0).isEmpty)
    }
}

struct ActionPlanningTests {
    @Test func everyActionKindRendersItsFields() throws {
        let set = try rules("""
            rules:
              - id: all
                on: {event: e, namespace: /dev}
                then:
                  - emit: alert
                    args: ["level {{ payload.level }}", "{{ payload.level }}", {device: "{{ payload.device }}", fixed: 1}]
                    ack: 5s
                  - emit: other
                    namespace: /ops
                    data: "{{ payload }}"
                  - run: [/usr/bin/logger, -t, sioagent, "battery {{ payload.level }}"]
                    timeout: 10s
                    env: {LEVEL: "{{ payload.level }}"}
                    cwd: /tmp
                  - shell: echo "$SIOAGENT_PAYLOAD" | tee -a /tmp/x
                    env: {MODE: test}
                  - log: logs/x.log
                  - log: stderr
                    message: "{{ payload.level }}"
                  - reply: ["ok", "{{ payload.level }}"]
            """)
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        let actions = engine.handle(RuleEvent(namespace: "/dev", name: "e", args: [["level": 15, "device": "p7"]], canReply: true), at: 2.5)
        let lines = actions.map { $0.replayJSON().jsonString() }
        #expect(lines == [
            #"{"at":2.5,"rule":"all","phase":"then","action":"emit","namespace":"/dev","event":"alert","args":["level 15",15,{"device":"p7","fixed":1}],"ack":5}"#,
            #"{"at":2.5,"rule":"all","phase":"then","action":"emit","namespace":"/ops","event":"other","args":[{"level":15,"device":"p7"}]}"#,
            #"{"at":2.5,"rule":"all","phase":"then","action":"run","argv":["/usr/bin/logger","-t","sioagent","battery 15"],"env":{"LEVEL":"15"},"cwd":"/tmp","timeout":10}"#,
            #"{"at":2.5,"rule":"all","phase":"then","action":"shell","script":"echo \"$SIOAGENT_PAYLOAD\" | tee -a /tmp/x","env":{"MODE":"test","SIOAGENT_ARGS":"[{\"level\":15,\"device\":\"p7\"}]","SIOAGENT_EVENT":"e","SIOAGENT_NAMESPACE":"/dev","SIOAGENT_PAYLOAD":"{\"level\":15,\"device\":\"p7\"}","SIOAGENT_RULE":"all"}}"#,
            #"{"at":2.5,"rule":"all","phase":"then","action":"log","path":"logs/x.log","message":"{\"time\":2.5,\"rule\":\"all\",\"event\":\"e\",\"namespace\":\"/dev\",\"args\":[{\"level\":15,\"device\":\"p7\"}]}"}"#,
            #"{"at":2.5,"rule":"all","phase":"then","action":"log","path":"stderr","message":"15"}"#,
            #"{"at":2.5,"rule":"all","phase":"then","action":"reply","args":["ok",15]}"#,
        ])
        if case .shell(_, _, let stdin, _, _) = actions[3].kind {
            #expect(stdin == #"{"event":"e","namespace":"/dev","args":[{"level":15,"device":"p7"}]}"#)
        } else {
            Issue.record("expected a shell action")
        }
        // Without an ack request there is nothing to reply to.
        let noAck = engine.handle(RuleEvent(namespace: "/dev", name: "e", args: [["level": 1]]), at: 3)
        #expect(!noAck.contains { $0.kind.name == "reply" })
    }

    @Test func templatesKeepTypesOnlyWhenWhole() throws {
        let set = try rules("""
            rules:
              - id: t
                on: e
                then:
                  - emit: out
                    args: ["{{ payload.n }}", " {{ payload.n }} ", "n={{ payload.n }}", "{{ payload.list }}", "x{{ payload.list }}", "{{ payload.missing }}", "{{ payload.missing }}!", "{{ 'a}}b' }}", "plain"]
            """)
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        let a = engine.handle(event("e", ["n": 2.5, "list": [1, "a"]]), at: 0)
        guard case .emit(_, _, let args, _)? = a.first?.kind else { Issue.record("no emit"); return }
        #expect(args == [2.5, 2.5, "n=2.5", [1, "a"], "x[1,\"a\"]", .null, "null!", "a}}b", "plain"])
    }

    @Test func timerActionsHaveNoTrigger() throws {
        let set = try rules("rules:\n  - id: hb\n    every: 10s\n    then:\n      - emit: heartbeat\n      - shell: date\n")
        var engine = RuleEngine(ruleSet: set, startTime: 100)
        let actions = engine.advance(to: 110)
        #expect(actions.count == 2)
        #expect(actions.allSatisfy { $0.trigger == nil && $0.at == 110 })
        if case .shell(_, let env, let stdin, _, _) = actions[1].kind {
            #expect(env["SIOAGENT_PAYLOAD"] == "null" && env["SIOAGENT_EVENT"] == "" && stdin == "")
        }
    }
}
