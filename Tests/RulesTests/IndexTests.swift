import Rules
import SIOCore
import Testing

/// The event index is precomputed at load (merged lists per namespace and event name); these
/// check it against the rule it implements, over a grid of namespaces and event names.
struct EventIndexTests {
    /// (namespace, event) triggers of each rule below, in load order.
    static let triggers: [[(String, String)]] = [
        [("/", "*")],
        [("/devices", "a"), ("/devices", "b")],
        [("/", "connect"), ("/", "disconnect")],
        [("*", "*")],
        [("*", "a")],
        [("/devices", "a"), ("/devices", "*")],
        [("*", "connect")],
        [("/", "a")],
        [("/ops", "c"), ("*", "b")],
    ]

    static let yaml: String = {
        var text = "rules:\n"
        for (i, ts) in triggers.enumerated() {
            text += "  - id: r\(i)\n    on:\n"
            for (ns, ev) in ts { text += "      - {event: \"\(ev)\", namespace: \"\(ns)\"}\n" }
            text += "    then: [{log: stdout, message: x}]\n"
        }
        return text
    }()

    /// The rule: exact match, then `"*"` event (not for lifecycle events), `"*"` namespace, both; in load order, once each.
    static func expected(_ namespace: String, _ name: String) -> [String] {
        let lifecycle = RuleEvent.lifecycleNames.contains(name)
        return triggers.indices.filter { i in
            triggers[i].contains { ns, ev in
                (ns == namespace || ns == "*") && (ev == name || (ev == "*" && !lifecycle))
            }
        }.map { "r\($0)" }
    }

    @Test func everyNamespaceAndEventGetsTheRulesThatNameIt() throws {
        let set = try rules(EventIndexTests.yaml)
        for namespace in ["/", "/devices", "/ops", "/unknown"] {
            for name in ["a", "b", "c", "zzz", "connect", "disconnect", "reconnect", "connect_error", "*", "a-very-long-event-name-beyond-small-strings"] {
                var engine = RuleEngine(ruleSet: set, startTime: 0)
                let fired = engine.handle(RuleEvent(namespace: namespace, name: name, args: []), at: 0).map(\.rule)
                #expect(fired == EventIndexTests.expected(namespace, name), "\(namespace) \(name)")
            }
        }
    }

    @Test func withoutWildcardsOnlyExactMatchesRun() throws {
        let set = try rules("""
            rules:
              - id: one
                on: [e1, a-very-long-event-name-beyond-small-strings]
                then: [{log: stdout, message: x}]
              - id: two
                on: {event: e1, namespace: /n}
                then: [{log: stdout, message: x}]
            """)
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        #expect(engine.handle(event("e1"), at: 0).map(\.rule) == ["one"])
        #expect(engine.handle(event("e1", namespace: "/n"), at: 0).map(\.rule) == ["two"])
        #expect(engine.handle(event(String("a-very-long-event-name-beyond-small-") + "strings"), at: 0).map(\.rule) == ["one"])
        #expect(engine.handle(event("e2"), at: 0).isEmpty)
        #expect(engine.handle(event("connect"), at: 0).isEmpty)
    }
}

/// The common condition shapes run as dedicated nodes; they must give what the general evaluator gives.
struct FastConditionTests {
    func fires(_ when: String, _ args: [JSONValue]) throws -> Bool {
        let set = try rules("rules:\n  - id: r\n    on: e\n    when: '\(when)'\n    then: [{log: stdout, message: x}]\n")
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        return !engine.handle(RuleEvent(name: "e", args: args), at: 0).isEmpty
    }

    @Test func numberComparisons() throws {
        #expect(try fires("payload < 20", [10]))
        #expect(try !fires("payload < 20", [30]))
        #expect(try !fires("payload < 20", ["10"]))
        #expect(try !fires("payload < 20", []))
        #expect(try fires("payload != 20", []))
        #expect(try !fires("payload == 20", [.null]))
        #expect(try fires("payload.level >= 90", [["level": 95]]))
        #expect(try !fires("payload.level >= 90", [["other": 95]]))
        #expect(try !fires("payload.level >= 90", [95]))
        #expect(try fires("payload[\"level\"] == 5", [["level": 5]]))
        #expect(try fires("payload.level != 5", [["level": .null]]))
    }

    @Test func stringEqualityAndLogic() throws {
        #expect(try fires("payload.device == \"d1\"", [["device": "d1"]]))
        #expect(try !fires("payload.device == \"d1\"", [["device": 1]]))
        #expect(try fires("payload.device != \"d1\"", [["device": .null]]))
        #expect(try fires("payload == \"x\" or payload > 3", [4]))
        #expect(try !fires("payload.level < 20 and payload.device == \"d\"", [["level": 10, "device": "e"]]))
        #expect(try fires("payload.level < 20 and payload.device == \"d\"", [["level": 10, "device": "d"]]))
        // A missing field is no value, not false: `not` of it does not hold, `or` falls to the other side.
        #expect(try !fires("not (payload.missing > 1)", [["level": 1]]))
        #expect(try fires("not (payload.level > 1)", [["level": 1]]))
        #expect(try fires("payload.missing > 1 or payload.level == 1", [["level": 1]]))
        #expect(try !fires("payload.missing > 1 or payload.level == 2", [["level": 1]]))
        #expect(try fires("len(payload) == 2 and payload[0] == 1", [[1, 2]]))
    }
}
