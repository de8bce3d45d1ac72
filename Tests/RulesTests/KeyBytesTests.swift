@testable import Rules
import SIOCore
import Testing

/// Rule keys keep only what the rules read of the last event, and all keys together stay within
/// `limits.key_bytes`.
struct KeyBytesTests {
    /// A payload with a 100 kB field no template reads.
    func heavy(_ id: String, x: JSONValue, list: [JSONValue] = [1, 2, 3]) -> JSONValue {
        ["id": .string(id), "x": x, "list": .array(list), "blob": .string(String(repeating: "b", count: 100_000))]
    }

    let absence = """
        rules:
          - id: quiet
            on: beat
            key: payload.id
            absent: 1m
            then:
              - emit: alert
                data: {x: "{{ payload.x }}", last: "{{ args[0].list[-1] }}", second: "{{ payload.list[1] }}", missing: "{{ payload.list[5] }}", ns: "{{ namespace }}"}
        """

    @Test func anAbsenceAlertRendersTheSameFromTheProjection() throws {
        let set = try rules(absence)
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        _ = engine.handle(event("beat", heavy("a", x: ["deep": [1, "two"]])), at: 0)
        _ = engine.handle(event("beat", heavy("b", x: "text", list: [7])), at: 1)
        #expect(engine.keyBytesHeld < 2_000, "held \(engine.keyBytesHeld) bytes for two keys")
        #expect(describe(engine.run(until: 120)) == [
            #"1m quiet then emit alert [{"x":{"deep":[1,"two"]},"last":3,"second":2,"missing":null,"ns":"/"}]"#,
            #"1m1s quiet then emit alert [{"x":"text","last":7,"second":null,"missing":null,"ns":"/"}]"#,
        ])
        // Fired: nothing of the event is kept any more.
        #expect(engine.states[0].keys.values.allSatisfy { $0.last == nil })
    }

    @Test func aForAlertRendersTheLastEventSeenWhilePending() throws {
        let set = try rules("""
            rules:
              - id: hot
                on: t
                key: payload.id
                when: payload.c > 50
                for: 10s
                then: [{emit: alert, data: "{{ key }} at {{ payload.c }}"}]
            """)
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        var p = heavy("a", x: 0)
        for (t, c) in [(0.0, 60.0), (5, 70)] {
            if case .object(var o) = p { o["c"] = .number(c); p = .object(o) }
            _ = engine.handle(event("t", p), at: t)
        }
        #expect(engine.keyBytesHeld < 1_000)
        #expect(describe(engine.run(until: 20)) == ["10s hot then emit alert [\"a at 70\"]"])
    }

    @Test func whatIsKeptFollowsTheTemplates() throws {
        func projection(_ then: String) throws -> EventProjection {
            try rules("rules:\n  - id: r\n    on: e\n    absent: 1m\n    then: [\(then)]\n").rules[0].lastProjection
        }
        // The whole event: shell gets it on stdin, a log without message writes the args.
        #expect(try projection("{shell: 'true'}") == .whole)
        #expect(try projection("{log: stdout}") == .whole)
        #expect(try projection("{emit: a, data: '{{ args }}'}") == .whole)
        #expect(try projection("{emit: a, data: '{{ len(payload) }}'}") == .args(PathTree(indices: [0: PathTree(whole: true)])))
        // Nothing of the args: the event's name is kept all the same.
        #expect(try projection("{emit: a, data: 'fixed {{ event }}'}") == .args(PathTree()))
        // An index computed at run time keeps what it indexes.
        #expect(try projection("{emit: a, data: '{{ payload.m[payload.k] }}'}")
                == .args(PathTree(indices: [0: PathTree(members: ["m": PathTree(whole: true), "k": PathTree(whole: true)])])))
        // Without `for` or `absent` no timer reads the event again.
        #expect(try rules("rules:\n  - id: r\n    on: e\n    when: payload.a\n    clear_when: not payload.a\n    then: [{shell: 'true'}]\n")
                    .rules[0].lastProjection == EventProjection.none)
    }

    @Test func projectionKeepsEveryReadTheSame() {
        var tree = PathTree()
        tree.mark([.index(0), .member("a"), .index(-1)][...])
        tree.mark([.index(2)][...])
        let args: [JSONValue] = [["a": [1, 2, ["z": 1]], "b": "x"], "skip", 3, 4]
        #expect(tree.projectElements(args) == [["a": [.null, .null, ["z": 1]]], .null, 3])
        // A member read on a value that is no object gives nothing either way.
        #expect(tree.projectElements(["text"]) == [.null])
        #expect(tree.projectElements([]) == [])
    }

    @Test func readsThroughBothEndsOfAListAreBothKept() {
        var tree = PathTree()
        tree.mark([.index(1), .member("a")][...])
        tree.mark([.index(-1), .member("b")][...])
        let args: [JSONValue] = [1, ["a": 1, "b": 2, "c": 3]]
        #expect(tree.projectElements(args) == [.null, ["a": 1, "b": 2]])
        #expect(tree.projectArguments(JSONArguments(args)) == [.null, ["a": 1, "b": 2]])
    }

    /// Every expression reads the same of what a key keeps as of the whole event, whether the
    /// event's arguments arrived as text (decoded on demand) or decoded.
    @Test func everyReadOfTheProjectionIsTheReadOfTheEvent() throws {
        for text in LazyPayloadTests.payloads {
            let list = try #require(try JSONListText.checking(Array(text.utf8), from: 0))
            let lazy = RuleEvent(name: "status", arguments: JSONArguments(list, from: 1))
            let eager = RuleEvent(name: "status", args: try #require(try JSONValue(parsing: text).arrayValue).dropFirst().map { $0 })
            for source in LazyPayloadTests.expressions + ["payload.nested.x[-1]", "args[-1].level", "args[1].level"] {
                var parser = try ExpressionParser(text: source, scope: ExpressionScope(vars: [:], environment: [:]))
                let root = try parser.parseAll()
                let projection = EventProjection(
                    forSeconds: 1, absent: nil,
                    then: [.emit(namespace: nil, event: .constant("a"), args: [.whole(CompiledExpression(root: root, source: source))], ack: nil)])
                let expected = evaluate(root, EvalContext(event: eager, now: 0))
                for event in [lazy, eager] {
                    let kept = try #require(projection.keep(event))
                    let read = evaluate(root, EvalContext(event: kept, now: 0))
                    #expect(read == expected && read?.jsonString() == expected?.jsonString(), "\(source) on \(text)")
                    #expect(approximateBytes(kept) <= approximateBytes(eager))
                }
            }
        }
    }

    @Test func keysBeyondTheByteBudgetAreDroppedOldestFirst() throws {
        let set = try rules("""
            rules:
              - id: slow
                on: t
                key: payload.id
                for: 1h
                then: [{log: stdout, message: "{{ key }} {{ payload.blob }}"}]
            """)
        var engine = RuleEngine(ruleSet: set, startTime: 0, maxKeyBytes: 64 << 10)
        for k in 0..<20 {
            let payload: JSONValue = ["id": .number(Double(k)), "blob": .string(String(repeating: "b", count: 10_000))]
            _ = engine.handle(event("t", payload), at: Double(k))
            #expect(engine.keyBytesHeld <= 64 << 10)
        }
        #expect(engine.keysDroppedForBytes > 0)
        let warnings = engine.takeWarnings()
        #expect(warnings.contains { $0.hasPrefix("limits.key_bytes (65536) reached; dropped the ") })
        let kept = engine.states[0].keys.keys.compactMap { if case .number(let n) = $0 { Int(n) } else { nil } }.sorted()
        #expect(kept.count == engine.keyCount)
        #expect(kept.count + Int(engine.keysDroppedForBytes) == 20)
        // The newest keys stay: those seen longest ago went first.
        #expect(kept == Array((20 - kept.count)..<20))
        #expect(engine.states[0].pending == kept.count && engine.states[0].active == kept.count)
        // The keys that stayed still fire, with their last event; the dropped ones do not.
        let fired = engine.run(until: 4000)
        #expect(fired.count == kept.count)
        #expect(engine.keyBytesHeld == engine.states[0].keys.values.reduce(0) { $0 + $1.bytes })
    }

    /// A dropped key leaves no deadline behind: without this, 100,000 keys through an
    /// `absent: 1h` rule kept 100,000 heap entries (each with its key) for the hour.
    @Test func droppedKeysLeaveNoTimersBehind() throws {
        for limits in [(bytes: 64 << 10, keys: 100_000), (bytes: 1 << 30, keys: 1000)] {
            let set = try rules("""
                rules:
                  - id: silent
                    on: t
                    key: payload.id
                    absent: 1h
                    max_keys: \(limits.keys)
                    then: [{log: stdout, message: "{{ key }}"}]
                """)
            var engine = RuleEngine(ruleSet: set, startTime: 0, maxKeyBytes: limits.bytes)
            for k in 0..<20_000 {
                let id = "dev-\(k)-" + String(repeating: "k", count: 200)
                _ = engine.handle(event("t", ["id": .string(id)]), at: Double(k) / 1000)
            }
            let live = engine.states[0].keys.count
            #expect(live < 20_000)
            #expect(engine.timers.count <= 2 * live + 257)
            // The keys that stayed still fire at their deadline.
            let fired = engine.run(until: 3600 + 21)
            #expect(fired.count == live)
        }
    }

    @Test func theCountOfBytesHeldFollowsEveryChange() throws {
        let set = try rules(absence)
        var engine = RuleEngine(ruleSet: set, startTime: 0, namespacesConnected: true)
        func recount() -> Int { engine.states.reduce(0) { s, r in r.keys.values.reduce(s) { $0 + $1.bytes } } }
        for t in 0..<50 {
            _ = engine.handle(event("beat", heavy("k\(t % 7)", x: .number(Double(t)))), at: Double(t * 20))
            #expect(engine.keyBytesHeld == recount())
        }
        _ = engine.handle(event("disconnect", namespace: "/"), at: 2000)
        _ = engine.run(until: 5000)
        #expect(engine.keyBytesHeld == recount())
        _ = engine.reload(try rules(absence.replacingOccurrences(of: "1m", with: "2m")), at: 5000)
        #expect(engine.keyBytesHeld == recount())
    }
}
