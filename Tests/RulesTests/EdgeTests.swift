import Foundation
@testable import Rules
import SIOCore
import Testing

/// Periods and durations (issue 15, item 5): nothing the rules hold can make a timer stand still.
struct PeriodTests {
    @Test func everyBelowOneSecondIsAPositionedError() {
        #expect(errors("rules:\n  - id: t\n    every: 0.00001ms\n    then: [{log: stdout}]\n")
                == ["3:12: every: \"0.00001ms\" is shorter than 1s, the shortest period"])
        #expect(errors("rules:\n  - id: t\n    every: 999ms\n    then: [{log: stdout}]\n").count == 1)
        #expect(errors("rules:\n  - id: t\n    every: 1s\n    then: [{log: stdout}]\n").isEmpty)
    }

    @Test func aPeriodTooSmallToMoveTheClockStillMovesIt() {
        let now = 1_765_000_000.0
        for period in [1e-12, 1e-7, 0, -1, .nan, .infinity] {
            let next = RuleEngine.nextPeriod(after: now, period: period, now: now)
            #expect(next > now, "period \(period)")
            #expect(next <= now + 1, "period \(period)")
        }
        // Missed periods are coalesced into one firing after `now`.
        #expect(RuleEngine.nextPeriod(after: 100, period: 10, now: 135) == 140)
        #expect(RuleEngine.nextPeriod(after: 100, period: 10, now: 100) == 110)
    }

    @Test func timersDueAtOneInstantAreFiredInBoundedStepsWithAnError() throws {
        let set = try rules("rules:\n  - id: k\n    on: v\n    key: payload\n    for: 1s\n    then: [{log: stdout, message: \"{{ key }}\"}]\n")
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        for k in 0..<10 { _ = engine.handle(event("v", .number(Double(k))), at: 0) }
        engine.timerStepLimit = 4
        #expect(engine.advance(to: 1).count == 4)
        #expect(engine.timerStepLimitHits == 1)
        #expect(engine.takeErrors() == ["more than 4 timers were due at one instant; the rest run on the next turn"])
        // The rest on the next calls, none lost.
        #expect(engine.nextDeadline == 1)
        #expect(engine.advance(to: 1).count + engine.advance(to: 1).count == 6)
        #expect(engine.nextDeadline == nil)
    }

    @Test func tinyForAbsentCooldownAndTtlFireOnceAndLetTheClockGo() throws {
        let set = try rules("""
            rules:
              - id: f
                on: a
                for: 0.00001ms
                then: [{log: stdout, message: f}]
              - id: gone
                on: b
                absent: 0.00001ms
                then: [{log: stdout, message: gone}]
              - id: c
                on: c
                cooldown: 0.00001ms
                then: [{set: x, value: 1, ttl: 0.00001ms}]
            """)
        var engine = RuleEngine(ruleSet: set, startTime: 1_765_000_000)
        var out = engine.handle(event("a"), at: 1_765_000_000)
        out += engine.handle(event("b"), at: 1_765_000_000)
        out += engine.handle(event("c"), at: 1_765_000_000)
        out += engine.handle(event("c"), at: 1_765_000_000)
        out += engine.run(until: 1_765_000_100)
        // Each fires once per event (the silence rule also once for the silence before `b`).
        #expect(out.filter { $0.rule == "f" }.count == 1)
        #expect((1...2).contains(out.filter { $0.rule == "gone" }.count))
        #expect((1...2).contains(out.filter { $0.rule == "c" }.count))
        #expect(engine.nextDeadline == nil)
        #expect(engine.run(until: 1_765_001_000).isEmpty)
    }
}

/// Regular expressions on text from outside (issue 15, item 9).
struct RegexBoundTests {
    @Test func textLongerThanTheBoundIsNotMatchedAndCounted() throws {
        let set = try rules("rules:\n  - id: r\n    on: m\n    when: payload matches \"^a+$\"\n    then: [{log: stdout, message: hit}]\n")
        let fits = String(repeating: "a", count: RegexLimits.maxInputBytes)
        let before = RegexLimits.inputsTooLong
        #expect(play(set, [(0, event("m", .string(fits)))]).count == 1)
        #expect(play(set, [(0, event("m", .string(fits + "a")))]).isEmpty)
        #expect(RegexLimits.inputsTooLong >= before + 1)
        // The bound is in bytes: 2049 two-byte scalars are 4098 bytes.
        #expect(play(set, [(0, event("m", .string(String(repeating: "é", count: 2049))))]).isEmpty)
    }

    /// `(a+)+$` backtracked exponentially in Swift's `Regex`; the engine of `matches` is linear
    /// (the step bound is in RegexLinearTimeTests): texts up to the bound are read whole.
    @Test func aNestedRepetitionReadsTextsUpToTheBound() throws {
        let set = try rules("rules:\n  - id: r\n    on: m\n    when: payload matches \"^(a+)+$\"\n    then: [{log: stdout}]\n")
        let almost = String(repeating: "a", count: RegexLimits.maxInputBytes - 1)
        #expect(play(set, [(0, event("m", .string(almost + "!")))]).isEmpty)
        #expect(play(set, [(0, event("m", .string(almost + "a")))]).count == 1)
    }
}

/// The rules-over-time contract (issue 15, item 10): `set`/`unset` are actions like the others.
struct StateActionContractTests {
    let yaml = """
        rules:
          - id: charger
            on: charger
            then:
              - set: charging
                value: "{{ payload.on }}"
                ttl: 1h
              - log: stdout
                message: "charging {{ state.charging }}"
          - id: forget
            on: unplugged
            then: [{unset: charging}]
          - id: low
            on: batery
            when: payload < 20 and not default(state.charging, false)
            then: [{emit: alert, args: ["low"]}]
        """

    func outcome(_ tests: String) throws -> TestOutcome {
        let set = try rules(yaml + "\ntests:\n" + tests)
        return try #require(RuleTestRunner.runAll(set).first)
    }

    @Test func setIsPlannedInOrderWithNameValueAndTtl() throws {
        var engine = RuleEngine(ruleSet: try rules(yaml), startTime: 0)
        let actions = engine.handle(event("charger", ["on": true]), at: 5)
        #expect(describe(actions) == ["5s charger then set charging = true ttl 1h", "5s charger then log stdout \"charging true\""])
        #expect(actions[0].replayJSON().jsonString()
                == #"{"at":5,"rule":"charger","phase":"then","action":"set","name":"charging","value":true,"ttl":3600}"#)
    }

    @Test func unsetIsPlannedWithItsName() throws {
        var engine = RuleEngine(ruleSet: try rules(yaml), startTime: 0)
        let actions = engine.handle(event("unplugged"), at: 1)
        #expect(actions.map { $0.replayJSON().jsonString() } == [#"{"at":1,"rule":"forget","phase":"then","action":"unset","name":"charging"}"#])
    }

    @Test func aTestCanExpectSetWithNameAndValue() throws {
        let o = try outcome("""
              - name: plugged in
                events:
                  - {at: 0s, event: charger, args: [{on: true}]}
                  - {at: 1s, event: batery, args: [10]}
                expect:
                  - {rule: charger, action: set, name: charging, value: true, ttl: 1h}
                  - {rule: charger, action: log}
            """)
        #expect(o.passed, "\(o.report)")
    }

    @Test func aTestCanExpectUnsetAndWhatFollowsIt() throws {
        let o = try outcome("""
              - name: unplugged
                events:
                  - {at: 0s, event: charger, args: [{on: true}]}
                  - {at: 1s, event: unplugged}
                  - {at: 2s, event: batery, args: [10]}
                expect:
                  - {at: 0s, action: set, name: charging, value: true}
                  - {at: 0s, action: log, message: charging true}
                  - {at: 1s, rule: forget, action: unset, name: charging}
                  - {at: 2s, rule: low, action: emit, args: [low]}
            """)
        #expect(o.passed, "\(o.report)")
    }

    @Test func aWrongValueFailsWithTheValueInTheReport() throws {
        let o = try outcome("""
              - name: wrong
                events: [{at: 0s, event: charger, args: [{on: false}]}]
                expect:
                  - {rule: charger, action: set, name: charging, value: true}
                  - {rule: charger, action: log}
            """)
        #expect(!o.passed)
        #expect(o.report.contains("value: expected true, got false"), "\(o.report)")
    }

    @Test func aTestThatLeavesOutTheSetIsShortOfOneAction() throws {
        let o = try outcome("""
              - name: only the log
                events: [{at: 0s, event: charger, args: [{on: true}]}]
                expect:
                  - {rule: charger, action: log}
            """)
        #expect(!o.passed)
        #expect(o.report.contains("expected 1 action, got 2"), "\(o.report)")
    }
}
