@testable import Rules
import SIOCore
import Testing

/// Sliding windows: count/avg/min/max/sum/delta/rate over the events a rule's `on` matched.
struct WindowTests {
    @Test func countOverCountsMatchedEventsInTheWindowIncludingThisOne() throws {
        let set = try rules("""
            rules:
              - id: flapping
                on: disconnect
                when: count_over(10m) >= 3
                then: [{log: stdout, message: 'flapping {{ count_over(10m) }}'}]
            """)
        let steps: [(Double, RuleEvent)] = [(0, event("disconnect")), (60, event("disconnect")), (120, event("disconnect")),
                                            (650, event("disconnect")), (1300, event("disconnect"))]
        // At 650 s the window is (50 s, 650 s]: 60, 120, 650. At 1300 s only 1300 is left.
        #expect(play(set, steps) == ["2m flapping then log stdout \"flapping 3\"", "10m50s flapping then log stdout \"flapping 3\""])
    }

    @Test func aWindowShorterThanTheClocksPrecisionStillHoldsThisEvent() throws {
        // At wall-clock times a Double is precise to about 2.4e-7 s: `now - 100ns == now`, which
        // once dropped the event itself, so the rule below never fired under `run` while
        // `test` (times from 0) passed.
        let set = try rules("""
            rules:
              - id: w
                on: x
                when: count_over(0.0001ms) >= 1
                then: [{log: stdout, message: 'n={{ count_over(0.0001ms) }}'}]
            """)
        let now = 1_780_000_000.0
        let out = play(set, [(now, event("x")), (now + 1, event("x"))])
        #expect(out.count == 2)
        #expect(out.allSatisfy { $0.hasSuffix("\"n=1\"") }, "\(out)")
    }

    @Test func valueWindowsSkipNonNumbersAndArePerKey() throws {
        let set = try rules("""
            rules:
              - id: stats
                on: b
                key: payload.device
                when: count_over(1h) >= 1
                then: [{log: stdout, message: '{{ key }} avg={{ avg_over(payload.level, 1h) }} min={{ min_over(payload.level, 1h) }} max={{ max_over(payload.level, 1h) }} sum={{ sum_over(payload.level, 1h) }} n={{ count_over(1h) }}'}]
            """)
        let steps: [(Double, RuleEvent)] = [
            (0, event("b", ["device": "a", "level": 10])),
            (1, event("b", ["device": "b", "level": 100])),
            (2, event("b", ["device": "a", "level": "x"])),
            (3, event("b", ["device": "a", "level": 30])),
        ]
        let out = play(set, steps)
        #expect(out.count == 4)
        #expect(out[1].hasSuffix("\"b avg=100 min=100 max=100 sum=100 n=1\""))
        #expect(out[2].hasSuffix("\"a avg=10 min=10 max=10 sum=10 n=2\""))
        #expect(out[3].hasSuffix("\"a avg=20 min=10 max=30 sum=40 n=3\""))
    }

    @Test func deltaAndRate() throws {
        let set = try rules("""
            rules:
              - id: falling
                on: b
                key: payload.device
                when: delta_over(payload.level, 5m) <= -10
                then: [{log: stdout, message: '{{ key }} {{ delta_over(payload.level, 5m) }} {{ rate_over(payload.level, 5m) }}/s'}]
            """)
        let steps: [(Double, RuleEvent)] = [
            (0, event("b", ["device": "p7", "level": 80])),
            (100, event("b", ["device": "p7", "level": 75])),
            (200, event("b", ["device": "p7", "level": 70])),
            // At 400 s the window is (100 s, 400 s]: 70 -> 58.
            (400, event("b", ["device": "p7", "level": 58])),
        ]
        #expect(play(set, steps) == ["3m20s falling then log stdout \"p7 -10 -0.05/s\"", "6m40s falling then log stdout \"p7 -12 -0.06/s\""])
    }

    @Test func noValueMeansTheComparisonIsFalseAndExplainShowsTheValue() throws {
        let set = try rules("""
            rules:
              - id: avg
                on: b
                when: avg_over(payload.level, 1m) > 50
                then: [{log: stdout}]
              - id: flap
                on: b
                when: count_over(10m) >= 3
                then: [{log: stdout}]
            """)
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        var explain: [Explanation] = []
        #expect(engine.handle(event("b", ["level": "high"]), at: 0, explain: &explain).isEmpty)
        #expect(explain.map(\.reason) == [
            "when: `avg_over(payload.level, 1m)` has no value: no number in the last 1m",
            "when: `count_over(10m)` is 1, needed >= 3",
        ])
    }

    @Test func samplesAreBoundedByWindowSamples() throws {
        var ring = SampleRing(capacity: 3, hasValues: true)
        for i in 0..<10 { ring.append(Double(i), Double(i)) }
        #expect(ring.count == 3)
        #expect(ring.sum == 7 + 8 + 9)
        #expect(ring.sample(0).value == 7)
        ring.drop(upTo: 8)
        #expect(ring.count == 1 && ring.sum == 9)
    }

    /// min/max come from monotonic queues: the same answers as a scan of the window, over
    /// random values, capacity drops and time drops.
    @Test func minAndMaxMatchAScanOfTheWindow() {
        var generator = SystemRandomNumberGenerator()
        for capacity in [1, 2, 5, 64] {
            var ring = SampleRing(capacity: capacity, hasValues: true)
            var held: [(Double, Double)] = []
            var t = 0.0
            for _ in 0..<2_000 {
                t += Double(Int.random(in: 0...3, using: &generator))
                let v = Double(Int.random(in: -20...20, using: &generator))
                ring.append(t, v)
                held.append((t, v))
                if held.count > capacity { held.removeFirst() }
                let cutoff = t - Double(Int.random(in: 0...40, using: &generator))
                held.removeAll { $0.0 <= cutoff }
                let low = ring.value(.min, dropping: cutoff), high = ring.value(.max, dropping: cutoff)
                #expect(low == held.map(\.1).min().map { .number($0) })
                #expect(high == held.map(\.1).max().map { .number($0) })
                #expect(ring.count == held.count)
            }
        }
    }

    /// One budget for every key's samples (`limits.window_samples`): a key with samples gives
    /// up its own oldest; a new key that takes the engine over it drops the keys seen longest
    /// ago, with a warning.
    @Test func samplesOfAllKeysShareOneBudget() throws {
        let set = try rules("""
            rules:
              - id: r
                on: b
                key: payload.k
                when: count_over(1h) > 1000
                then: [{log: stdout}]
            """)
        var engine = RuleEngine(ruleSet: set, startTime: 0, maxWindowSamples: 10)
        for i in 0..<30 { _ = engine.handle(event("b", ["k": "a"]), at: Double(i)) }
        #expect(engine.windowSamplesHeld == 10)
        #expect(engine.windowSamplesDropped == 20)
        #expect(engine.takeWarnings().isEmpty)
        _ = engine.handle(event("b", ["k": "new"]), at: 40)
        #expect(engine.windowSamplesHeld <= 10)
        #expect(engine.takeWarnings().contains { $0.contains("limits.window_samples (10) reached") })
        // Many keys: never more than the budget.
        for i in 0..<500 { _ = engine.handle(event("b", ["k": .number(Double(i % 50))]), at: 50 + Double(i)) }
        #expect(engine.windowSamplesHeld <= 10)
        #expect(engine.keyCount <= 10)
    }

    @Test func windowsAreErrorsOutsideAnExpressionsPlace() {
        #expect(errors("rules:\n  - id: r\n    on: b\n    when: count_over(10) >= 3\n    then: [{log: stdout}]\n")
                == ["4:22: the window needs a unit: 10s, 10m… (500ms, 10s, 5m, 1h, 1d)"])
        #expect(errors("rules:\n  - id: r\n    on: b\n    when: payload > 10m\n    then: [{log: stdout}]\n").first?.contains("only allowed as the window") == true)
        #expect(errors("rules:\n  - id: r\n    on: b\n    when: avg_over(count_over(1m), 1m) > 3\n    then: [{log: stdout}]\n").first?.contains("do not nest") == true)
    }

    @Test func keysAreBoundedAndTheOldestIdleOnesGo() throws {
        let set = try rules("""
            rules:
              - id: r
                on: b
                key: payload
                when: count_over(1h) > 100
                then: [{log: stdout}]
            """)
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        for i in 0..<25_000 { _ = engine.handle(event("b", .number(Double(i))), at: Double(i)) }
        #expect(engine.keyCount <= 10_000)
        #expect(engine.keyCount > 9_000)
        let warnings = engine.takeWarnings()
        #expect(warnings.first?.contains("max_keys (10000)") == true)
        // The newest keys are kept.
        #expect(engine.states[0].keys[.number(24_999)] != nil)
        #expect(engine.states[0].keys[.number(0)] == nil)
    }

    @Test func pendingForDoesNotScanOtherKeysAndFiresInOrder() throws {
        let set = try rules("rules:\n  - id: hot\n    on: t\n    key: payload.d\n    when: payload.v > 80\n    for: 10s\n    then: [{log: stdout, message: '{{ key }}'}]\n")
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        for i in 0..<1000 { _ = engine.handle(event("t", ["d": .number(Double(i)), "v": 90]), at: Double(i) / 100) }
        #expect(engine.timers.count == 1000)
        let fired = engine.run(until: 100)
        #expect(fired.count == 1000)
        #expect(fired.map(\.at) == fired.map(\.at).sorted())
        #expect(engine.timers.count == 0)
    }
}
