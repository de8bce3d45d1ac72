// Benchmark of the rule engine (prints figures; not a test). Run in release mode:
//   swift run -c release RulesBench
// Optional arguments (for profiling, e.g. under `valgrind --tool=callgrind`):
//   RulesBench [events] [scenario]   events defaults to 1,000,000; scenario 1, 5 or 50 (rules per
//   event name) runs only that scenario and skips `check` and the time scenarios; scenario 0 runs
//   only the time scenarios (2: windows only, 3: absence only).
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

/// Feeds `count` events to `engine`, cycling through `events`, one per millisecond of rule time;
/// returns how many actions they planned. Events are read in place (no copy of each event, no
/// division per iteration): the loop times the engine, not the harness.
func drive(_ engine: inout RuleEngine, _ events: [RuleEvent], count: Int) -> Int {
    var fired = 0
    events.withUnsafeBufferPointer { events in
        var j = 0
        for i in 0..<count {
            fired &+= engine.handle(events[j], at: Double(i) * 0.001).count
            j += 1
            if j == events.count { j = 0 }
        }
    }
    return fired
}

func measure(_ label: String, names: Int) {
    let (loaded, diagnostics) = RuleSet.load(sources: [("bench.yaml", rulesYAML(names: names))], environment: [:])
    guard let set = loaded else { print(diagnostics.prefix(3)); exit(1) }
    var engine = RuleEngine(ruleSet: set, startTime: 0)
    // Events that match rules by name but whose `when` is false: the common path.
    let events: [RuleEvent] = (0..<names).flatMap { n in
        [RuleEvent(name: "e\(n)", args: [50]), RuleEvent(name: "e\(n)o", args: [["level": 50, "device": "x"]])]
    }
    let clock = ContinuousClock()
    let start = clock.now
    let fired = drive(&engine, events, count: eventCount)
    let seconds = seconds(clock.now - start)
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

/// Resident memory of this process, in bytes (from /proc/self/statm).
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// `count_over` and `avg_over` rules keyed by device, 1,000 devices, one event a millisecond
/// (each device's 10-minute window holds 600 samples).
func measureWindows() {
    let yaml = """
        rules:
          - id: flapping
            on: link
            key: payload.device
            when: count_over(10m) >= 100000
            then: [{log: stdout}]
          - id: level
            on: level
            key: payload.device
            when: avg_over(payload.level, 10m) > 1000
            then: [{log: stdout}]
        """
    let (loaded, diagnostics) = RuleSet.load(sources: [("windows.yaml", yaml)], environment: [:])
    guard let set = loaded else { print(diagnostics.prefix(3)); exit(1) }
    for (label, name) in [("count_over(10m)", "link"), ("avg_over(payload.level, 10m)", "level")] {
        var engine = RuleEngine(ruleSet: set, startTime: 0)
        let events: [RuleEvent] = (0..<1000).map { RuleEvent(name: name, args: [["device": .string("d\($0)"), "level": .number(Double($0 % 100))]]) }
        let before = residentBytes()
        let clock = ContinuousClock()
        let start = clock.now
        let fired = drive(&engine, events, count: eventCount)
        let elapsed = seconds(clock.now - start)
        print(String(format: "%@ with 1,000 keys: %d events in %.3f s: %.0f events/s, %.1f ns/event, %d actions, resident +%.1f MB",
                     label, eventCount, elapsed, Double(eventCount) / elapsed, elapsed / Double(eventCount) * 1e9, fired,
                     Double(residentBytes() - before) / 1e6))
    }
}

/// An `absent: 10m` rule watching 100,000 keys: the cost of an event, the memory the keys take,
/// and the silences firing on time.
func measureAbsence() {
    let keys = 100_000
    let yaml = """
        rules:
          - id: silent
            on: batery
            key: payload.device
            absent: 10m
            max_keys: \(keys)
            then: [{emit: alert, data: "{{ key }} silent"}]
        """
    let (loaded, diagnostics) = RuleSet.load(sources: [("absence.yaml", yaml)], environment: [:])
    guard let set = loaded else { print(diagnostics.prefix(3)); exit(1) }
    var engine = RuleEngine(ruleSet: set, startTime: 0)
    let events: [RuleEvent] = (0..<keys).map { RuleEvent(name: "batery", args: [["device": .string("dev-\($0)"), "level": 50]]) }
    let before = residentBytes()
    let clock = ContinuousClock()
    var start = clock.now
    // Every key reports once (new keys), then each reports again every 5 minutes for an hour.
    for (i, e) in events.enumerated() { _ = engine.handle(e, at: Double(i) * 0.001) }
    let firstPass = seconds(clock.now - start)
    let memory = residentBytes() - before
    start = clock.now
    var handled = 0
    var fired = 0
    for round in 1...12 {
        for (i, e) in events.enumerated() {
            fired += engine.handle(e, at: Double(round) * 300 + Double(i) * 0.001).count
            handled += 1
        }
    }
    let steady = seconds(clock.now - start)
    // Then silence: every key fires once, 10 minutes after its last event.
    start = clock.now
    fired += engine.run(until: 12 * 300 + 700).count
    let firing = seconds(clock.now - start)
    print(String(format: "absent: 10m with %d keys: first events %.0f events/s, then %.0f events/s; %d silences fired in %.3f s; resident +%.1f MB for the keys (%.0f bytes/key)",
                 keys, Double(keys) / firstPass, Double(handled) / steady, fired, firing, Double(memory) / 1e6, Double(memory) / Double(keys)))
}

for (perName, names) in [(1, 500), (5, 100), (50, 10)] where onlyScenario == nil || onlyScenario == perName {
    measure("\(ruleCount) rules, \(2 * names) event names (\(perName) rule\(perName == 1 ? "" : "s") per event name)", names: names)
}
// Scenario 0: both time scenarios; 2: windows only; 3: absence only.
if onlyScenario == nil || onlyScenario == 0 || onlyScenario == 2 { measureWindows() }
if onlyScenario == nil || onlyScenario == 0 || onlyScenario == 3 { measureAbsence() }
if onlyScenario == nil { measureCheck() }
