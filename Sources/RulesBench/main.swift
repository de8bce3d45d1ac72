// Benchmark of the rule engine (prints figures; not a test). Run in release mode:
//   swift run -c release RulesBench
// Optional arguments (for profiling, e.g. under `valgrind --tool=callgrind`):
//   RulesBench [events] [scenario]   events defaults to 1,000,000; scenario 1, 5 or 50 (rules per
//   event name) runs only that scenario and skips `check`.
import Foundation
import Rules
import SIOCore

let ruleCount = 1_000
let arguments = CommandLine.arguments.dropFirst()
let eventCount = arguments.first.flatMap { Int($0) } ?? 1_000_000
let onlyScenario = arguments.dropFirst().first.flatMap { Int($0) }

/// 1,000 rules; `names` distinct event names, so each event is evaluated by ruleCount/names rules.
func rulesYAML(names: Int) -> String {
    var text = "vars:\n  low: 20\n  high: 90\nrules:\n"
    for i in 0..<ruleCount {
        let when: String
        switch i % 4 {
        case 0: when = "payload < vars.low"
        case 1: when = "payload.level < vars.low and payload.device == \"d\(i)\""
        case 2: when = "payload > vars.high or payload < 0"
        default: when = "payload.level >= vars.high"
        }
        let payloadIsObject = i % 4 == 1 || i % 4 == 3
        text += """
              - id: r\(i)
                on: e\(i % names)\(payloadIsObject ? "o" : "")
                when: \(when)
                then:
                  - emit: alert
                    args: ["r\(i) {{ payload }}"]

            """
    }
    return text
}

func measure(_ label: String, names: Int) {
    let (loaded, diagnostics) = RuleSet.load(sources: [("bench.yaml", rulesYAML(names: names))], environment: [:])
    guard let set = loaded else { print(diagnostics.prefix(3)); exit(1) }
    var engine = RuleEngine(ruleSet: set, startTime: 0)
    // Events that match rules by name but whose `when` is false: the common path.
    let events: [RuleEvent] = (0..<names).flatMap { n in
        [RuleEvent(name: "e\(n)", args: [50]), RuleEvent(name: "e\(n)o", args: [["level": 50, "device": "x"]])]
    }
    var fired = 0
    let clock = ContinuousClock()
    let start = clock.now
    // Events are read in place (no copy of each event, no division per iteration): the loop
    // times the engine, not the harness.
    events.withUnsafeBufferPointer { events in
        var j = 0
        for i in 0..<eventCount {
            fired &+= engine.handle(events[j], at: Double(i) * 0.001).count
            j += 1
            if j == events.count { j = 0 }
        }
    }
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    // Each event name is shared by ruleCount / (2 * names) rules on average.
    let evaluationsPerEvent = Double(ruleCount) / Double(2 * names)
    let evaluations = Double(eventCount) * evaluationsPerEvent
    print(String(format: "%@: %d events in %.3f s: %.0f events/s, %.1f ns/event, %.0f rule evaluations/s (%.1f rules per event), %d actions",
                 label, eventCount, seconds, Double(eventCount) / seconds, seconds / Double(eventCount) * 1e9,
                 evaluations / seconds, evaluationsPerEvent, fired))
}

func measureCheck() {
    // What `sioagent check` does, less reading the file: compile and link one file of rules.
    let text = rulesYAML(names: 1_000)
    let clock = ContinuousClock()
    var best = Duration.seconds(1000)
    for _ in 0..<5 {
        let start = clock.now
        let (set, _) = RuleSet.load(sources: [("rules.yaml", text)], environment: [:])
        let elapsed = clock.now - start
        if set == nil { print("check failed"); exit(1) }
        best = min(best, elapsed)
    }
    print("check of \(ruleCount) rules (one file, \(text.split(separator: "\n").count) lines): best of 5 \(best.components.seconds * 1000 + best.components.attoseconds / 1_000_000_000_000_000) ms")
}

for (perName, names) in [(1, 500), (5, 100), (50, 10)] where onlyScenario == nil || onlyScenario == perName {
    measure("\(ruleCount) rules, \(2 * names) event names (\(perName) rule\(perName == 1 ? "" : "s") per event name)", names: names)
}
if onlyScenario == nil { measureCheck() }
