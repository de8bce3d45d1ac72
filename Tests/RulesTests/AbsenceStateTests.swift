@testable import Rules
import SIOCore
import Testing

/// `absent:`, shared state (`set`/`unset`/`state.NAME`), schedules in rules, and reload keeping them.
struct AbsenceTests {
    let silent = """
        rules:
          - id: device-silent
            on: batery
            key: payload.device
            absent: 10m
            then:
              - emit: alert
                data: "{{ key }} silent since {{ payload.level }}%"
            on_clear:
              - log: stdout
                message: "{{ key }} is back"
        """

    @Test func firesOncePerKeyAfterTheSilenceAndClearsOnTheNextEvent() throws {
        let set = try rules(silent)
        let out = play(set, [
            (0, event("batery", ["device": "a", "level": 50])),
            (60, event("batery", ["device": "b", "level": 40])),
            (300, event("batery", ["device": "a", "level": 49])),
            // b went silent at 60 s + 10 m = 660 s; a at 300 s + 10 m = 900 s.
            (1000, event("batery", ["device": "b", "level": 39])),
        ], until: 3000)
        #expect(out == [
            "11m device-silent then emit alert [\"b silent since 40%\"]",
            "15m device-silent then emit alert [\"a silent since 49%\"]",
            "16m40s device-silent on_clear log stdout \"b is back\"",
            // b fires again 10 m after it came back; a stays firing (once).
            "26m40s device-silent then emit alert [\"b silent since 39%\"]",
        ])
    }

    @Test func withoutKeyTheWindowStartsAtTheStart() throws {
        let set = try rules("rules:\n  - id: quiet\n    on: ping\n    absent: 1m\n    then: [{log: stdout, message: 'quiet {{ payload }}'}]\n")
        #expect(play(set, [], until: 200) == ["1m quiet then log stdout \"quiet null\""])
        #expect(play(set, [(30, event("ping", 1))], until: 200) == ["1m30s quiet then log stdout \"quiet 1\""])
    }

    @Test func aDisconnectPausesTheWindowAndAReconnectRestartsIt() throws {
        let set = try rules(silent)
        // Down from 100 s to 2000 s: nothing fires while down, and the window restarts at 2000 s.
        let out = play(set, [
            (0, event("batery", ["device": "a", "level": 50])),
            (100, event("disconnect", "transport close")),
            (2000, event("connect")),
        ], until: 4000)
        #expect(out == ["43m20s device-silent then emit alert [\"a silent since 50%\"]"])
        // Another namespace going down does not pause it.
        let other = play(set, [(0, event("batery", ["device": "a", "level": 50])), (100, event("disconnect", namespace: "/other"))], until: 700)
        #expect(other.count == 1)
    }

    @Test func whenFiltersWhatCountsAsASignOfLife() throws {
        let set = try rules("rules:\n  - id: r\n    on: b\n    when: payload > 0\n    absent: 1m\n    then: [{log: stdout, message: silent}]\n")
        #expect(play(set, [(30, event("b", 0)), (50, event("b", -1))], until: 100) == ["1m r then log stdout \"silent\""])
    }

    @Test func checkRejectsAbsentWithForOrClearWhen() {
        #expect(errors("rules:\n  - id: r\n    on: b\n    absent: 1m\n    for: 10s\n    then: [{log: stdout}]\n")
                == ["5:5: for: cannot be combined with absent: (an absent rule fires on silence and clears on the next event)"])
        #expect(errors("rules:\n  - id: r\n    on: b\n    absent: 1m\n    clear_when: payload > 1\n    then: [{log: stdout}]\n").count == 1)
        #expect(errors("rules:\n  - id: r\n    on: b\n    absent: 10\n    then: [{log: stdout}]\n").first?.hasPrefix("4:13: absent needs a unit") == true)
    }

    @Test func reloadKeepsAbsenceTimersWindowsAndStateOfUnchangedRules() throws {
        let first = try rules(silent + """

              - id: flap
                on: link_down
                when: count_over(10m) >= 2
                then: [{log: stdout, message: flapping}]
              - id: other
                on: x
                then: [{set: mode, value: "{{ payload }}"}]
            """)
        var engine = RuleEngine(ruleSet: first, startTime: 0)
        _ = engine.handle(event("batery", ["device": "a", "level": 50]), at: 0)
        _ = engine.handle(event("disconnect"), at: 10)
        _ = engine.handle(event("link_down"), at: 10.5)
        _ = engine.handle(event("connect"), at: 11)
        _ = engine.handle(event("x", "eco"), at: 12)
        let second = try rules(silent + """

              - id: flap
                on: link_down
                when: count_over(10m) >= 2
                then: [{log: stdout, message: flapping}]
              - id: other
                on: x
                then: [{set: mode, value: "{{ payload }} changed"}]
            """)
        let summary = engine.reload(second, at: 20)
        #expect(summary.kept == ["device-silent", "flap"] && summary.changed == ["other"])
        #expect(engine.sharedState["mode"]?.value == "eco")
        #expect(describe(engine.handle(event("link_down"), at: 30)) == ["30s flap then log stdout \"flapping\""])
        // a's silence still counts from 11 s (the reconnect): it fires at 11 s + 10 m.
        #expect(describe(engine.run(until: 1000)) == ["10m11s device-silent then emit alert [\"a silent since 50%\"]"])
    }
}

struct StateTests {
    let yaml = """
        rules:
          - id: charger
            on: charger
            then:
              - set: charging
                value: "{{ payload.on }}"
                ttl: 1h
          - id: battery-low-not-charging
            on: batery
            when: payload.level < 20 and not default(state.charging, false)
            then: [{emit: alert, data: low}]
          - id: forget
            on: unplugged
            then: [{unset: charging}]
        """

    /// The alerts among the planned actions (`set`/`unset` are planned too).
    func alerts(_ set: RuleSet, _ steps: [(Double, RuleEvent)]) -> [String] {
        play(set, steps).filter { $0.contains(" emit ") }
    }

    @Test func setByOneEventReadByAnother() throws {
        let set = try rules(yaml)
        let low = event("batery", ["level": 10])
        #expect(alerts(set, [(0, low)]).count == 1)
        #expect(alerts(set, [(0, event("charger", ["on": true])), (1, low)]).isEmpty)
        #expect(alerts(set, [(0, event("charger", ["on": false])), (1, low)]).count == 1)
        // The value keeps its type: a string "true" is not the boolean, so `not` has no value and nothing fires.
        #expect(alerts(set, [(0, event("charger", ["on": "true"])), (1, low)]).isEmpty)
        #expect(alerts(set, [(0, event("charger", ["on": true])), (1, event("unplugged")), (2, low)]).count == 1)
        #expect(play(set, [(0, event("charger", ["on": true])), (1, event("unplugged"))])
                == ["0s charger then set charging = true ttl 1h", "1s forget then unset charging"])
    }

    @Test func ttlExpires() throws {
        let set = try rules(yaml)
        let low = event("batery", ["level": 10])
        #expect(alerts(set, [(0, event("charger", ["on": true])), (3599, low)]).isEmpty)
        #expect(alerts(set, [(0, event("charger", ["on": true])), (3600, low)]).count == 1)
    }

    @Test func theEngineCountsChangesForPersistence() throws {
        var engine = RuleEngine(ruleSet: try rules(yaml), startTime: 0, state: ["charging": StateEntry(value: true)])
        #expect(engine.handle(event("batery", ["level": 10]), at: 0).isEmpty)
        let v = engine.stateVersion
        _ = engine.handle(event("unplugged"), at: 1)
        #expect(engine.stateVersion == v + 1)
        #expect(engine.sharedState["charging"] == nil)
    }

    @Test func checkWarnsAboutStateNoRuleSets() {
        let (_, diagnostics) = load("rules:\n  - id: r\n    on: b\n    when: state.chargin == true\n    then: [{set: charging, value: true}]\n")
        let warnings = diagnostics.filter { $0.severity == .warning }.map { "\($0.line):\($0.column): \($0.message)" }
        #expect(warnings == ["4:17: state.chargin is read but no rule sets it; did you mean \"charging\"?"])
    }

    @Test func keyIsAnErrorWithoutKey() {
        #expect(errors("rules:\n  - id: r\n    on: b\n    when: key == 1\n    then: [{log: stdout}]\n")
                == ["4:11: key has no value in a rule without key: (add key: EXPRESSION)"])
    }

    @Test func windowsNeedOn() {
        #expect(errors("rules:\n  - id: r\n    every: 1m\n    when: count_over(1m) > 1\n    then: [{log: stdout}]\n").first?.hasPrefix("4:11: count_over(): window functions need a rule with on:") == true)
    }
}

struct ScheduledRuleTests {
    @Test func atAndCronRulesFireOnTheVirtualClockInTheirTimeZone() throws {
        let set = try rules("""
            rules:
              - id: nightly
                at: "02:00"
                then: [{log: stdout, message: nightly}]
              - id: quarter
                cron: "*/15 * * * *"
                then: [{log: stdout, message: quarter}]
            tests:
              - name: at 02:00 Lisbon time
                clock: {start: "2026-12-01T01:59:00", tz: Europe/Lisbon}
                events: []
                until: 16m
                expect:
                  - {at: 1m, rule: nightly, message: nightly}
                  - {at: 1m, rule: quarter}
                  - {at: 16m, rule: quarter}
            """)
        let outcomes = RuleTestRunner.runAll(set)
        #expect(outcomes.count == 1)
        let reports = outcomes.map(\.report).joined(separator: "\n")
        #expect(outcomes.allSatisfy { $0.passed }, Comment(rawValue: reports))
    }

    @Test func aScheduleMissedWhileAsleepFiresOnceOnWake() throws {
        let set = try rules("rules:\n  - id: q\n    cron: \"*/15 * * * *\"\n    then: [{log: stdout}]\n")
        var engine = RuleEngine(ruleSet: set, startTime: 0, timeZone: "UTC")
        #expect(engine.advance(to: 3 * 3600).count == 1)
        #expect(engine.nextDeadline.map { Int($0) } == 3 * 3600 + 900)
    }

    @Test func checkPlacesScheduleErrors() {
        #expect(errors("rules:\n  - id: r\n    cron: \"0 25 * * *\"\n    then: [{log: stdout}]\n") == ["3:14: hour must be 0 to 23, not 25"])
        #expect(errors("rules:\n  - id: r\n    at: \"2am\"\n    then: [{log: stdout}]\n").first?.contains("HH:MM") == true)
    }
}
