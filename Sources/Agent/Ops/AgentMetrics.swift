import SIOCore
import NIOCore
import Rules
import Synchronization

/// The agent's Prometheus metrics: a small fixed registry, no dependency.
///
/// What the event path touches costs no lock, no allocation and no name lookup: events and rule
/// firings are counted in plain arrays on the event loop, by slots the rule engine resolves in
/// the lookup it does anyway (``RuleEngine/lastEventLabel``, ``RuleEngine/firingCounts``).
/// What happens elsewhere (commands finishing, log lines written) goes to relaxed atomics.
/// The text is rendered only when scraped or written, from a snapshot taken on the loop.
public final class AgentMetrics: Sendable {
    /// A monotonic counter, updated from any thread.
    final class Counter: Sendable {
        private let cell = Atomic<UInt64>(0)
        func add(_ n: UInt64 = 1) { cell.wrappingAdd(n, ordering: .relaxed) }
        var value: UInt64 { cell.load(ordering: .relaxed) }
        func set(_ n: UInt64) { cell.store(n, ordering: .relaxed) }
    }

    /// A histogram with fixed buckets (seconds); the sum is kept in nanoseconds.
    final class Histogram: Sendable {
        let bounds: [Double]
        /// One per bound, then +Inf; not cumulative (rendering sums them).
        private let buckets: [Counter]
        private let sumNanoseconds = Counter()
        private let count = Counter()

        init(bounds: [Double]) {
            self.bounds = bounds
            self.buckets = (0...bounds.count).map { _ in Counter() }
        }

        func observe(_ seconds: Double) {
            let s = seconds.isFinite ? max(seconds, 0) : 0
            var i = 0
            while i < bounds.count && s > bounds[i] { i += 1 }
            buckets[i].add()
            // Saturating: a day is far beyond any bucket; nanoseconds fit UInt64 for 584 years.
            sumNanoseconds.add(UInt64(min(s, 86_400 * 365) * 1e9))
            count.add()
        }

        func render(_ name: String, into out: inout String) {
            var cumulative: UInt64 = 0
            for (i, bound) in bounds.enumerated() {
                cumulative &+= buckets[i].value
                out += "\(name)_bucket{le=\"\(formatBound(bound))\"} \(cumulative)\n"
            }
            cumulative &+= buckets[bounds.count].value
            out += "\(name)_bucket{le=\"+Inf\"} \(cumulative)\n"
            out += "\(name)_sum \(formatDouble(Double(sumNanoseconds.value) / 1e9))\n"
            out += "\(name)_count \(count.value)\n"
        }
    }

    /// What an action's outcome is counted as (`sioagent_actions_total{action,outcome}`).
    public enum Outcome: Int, CaseIterable, Sendable {
        /// Carried out: alert written or acknowledged, reply sent, command exited 0, line written.
        case ok
        /// Alert kept in the disk spool to be delivered later.
        case spooled
        /// Command exited non-zero or could not start; log line could not be written.
        case failed
        /// Command overran its timeout.
        case timeout
        /// Not carried out: a reply to an event without ack, a shell action with allow_shell off.
        case skipped

        var name: String {
            switch self {
            case .ok: "ok"
            case .spooled: "spooled"
            case .failed: "failed"
            case .timeout: "timeout"
            case .skipped: "skipped"
            }
        }
    }

    /// Action kinds, in label order.
    static let actionNames = ["emit", "reply", "run", "shell", "log", "set", "unset"]

    static func actionIndex(_ kind: PlannedAction.Kind) -> Int {
        switch kind {
        case .emit: 0
        case .reply: 1
        case .run: 2
        case .shell: 3
        case .log: 4
        case .set: 5
        case .unset: 6
        }
    }

    /// What is read on the loop when rendering.
    struct LoopSnapshot {
        var events: [(namespace: String, event: String, count: UInt64)] = []
        var firings: [(rule: String, count: UInt64)] = []
        var spoolItems: Int?
        var connected: [(namespace: String, up: Bool)] = []
    }

    let version: String
    let commit: String
    let buildDate: String
    let reconnects = Counter()
    /// Alert writes the disk writer refused for its queue being full (each alert stays in memory
    /// within `spool.max_memory` and is written again later).
    let spoolWritesRefused = Counter()
    /// What a budget dropped (`sioagent_dropped_total{budget}`), the oldest first.
    package enum Budget: Int, CaseIterable, Sendable {
        /// Alerts beyond `spool.max_items` or `spool.max_bytes`.
        case spool
        /// Alerts the disk refused, beyond what memory keeps.
        case memory
        /// Window samples beyond `limits.window_samples`.
        case windowSamples
        /// Rule keys beyond `limits.key_bytes`.
        case keyBytes
        /// `log` action lines beyond what waits for a stuck disk.
        case logLines
        /// `--record` lines beyond what waits for a stuck disk.
        case recordLines

        var name: String {
            switch self {
            case .spool: "spool"
            case .memory: "spool_memory"
            case .windowSamples: "window_samples"
            case .keyBytes: "key_bytes"
            case .logLines: "log_lines"
            case .recordLines: "record_lines"
            }
        }
    }
    private let drops = Budget.allCases.map { _ in Counter() }

    func dropped(_ budget: Budget, count: Int) {
        guard count > 0 else { return }
        drops[budget.rawValue].add(UInt64(count))
    }

    /// What `budget` dropped so far.
    func droppedCount(_ budget: Budget) -> UInt64 { drops[budget.rawValue].value }

    /// Sets the window samples dropped so far (the engine counts them).
    func windowSamplesDropped(_ total: UInt64) {
        drops[Budget.windowSamples.rawValue].set(total)
    }

    /// Sets the rule keys dropped so far for `limits.key_bytes` (the engine counts them).
    func keysDroppedForBytes(_ total: UInt64) {
        drops[Budget.keyBytes.rawValue].set(total)
    }
    private let actions: [Counter]
    let commandDuration = Histogram(bounds: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60])
    let eventToAction = Histogram(bounds: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5])

    public init(version: String = BuildInfo.version, commit: String = BuildInfo.commit, buildDate: String = BuildInfo.date) {
        self.version = version
        self.commit = commit
        self.buildDate = buildDate
        self.actions = (0..<(Self.actionNames.count * Outcome.allCases.count)).map { _ in Counter() }
    }

    func action(_ kind: PlannedAction.Kind, _ outcome: Outcome) {
        actions[Self.actionIndex(kind) * Outcome.allCases.count + outcome.rawValue].add()
    }

    func action(index: Int, _ outcome: Outcome) {
        actions[index * Outcome.allCases.count + outcome.rawValue].add()
    }

    /// Seconds from the event (or timer) that planned an action to the action being carried out.
    func actionDone(plannedAt: Double, now: Double = wallClock()) {
        eventToAction.observe(now - plannedAt)
    }

    /// The Prometheus text exposition (format 0.0.4).
    func render(_ snapshot: LoopSnapshot) -> String {
        var out = ""
        out.reserveCapacity(4096)
        out += "\(helpLine("sioagent_build_info", "The running sioagent's version, commit and build date."))# TYPE sioagent_build_info gauge\n"
        out += "sioagent_build_info{version=\"\(escape(version))\",commit=\"\(escape(commit))\",build_date=\"\(escape(buildDate))\"} 1\n"

        out += "\(helpLine("sioagent_connected", "Whether the namespace is connected (1) or not (0)."))# TYPE sioagent_connected gauge\n"
        for (ns, up) in snapshot.connected {
            out += "sioagent_connected{namespace=\"\(escape(ns))\"} \(up ? 1 : 0)\n"
        }

        out += "\(helpLine("sioagent_events_received_total", "Events received, by namespace and event name (names no rule uses: _other)."))"
        out += "# TYPE sioagent_events_received_total counter\n"
        for e in snapshot.events {
            out += "sioagent_events_received_total{namespace=\"\(escape(e.namespace))\",event=\"\(escape(e.event))\"} \(e.count)\n"
        }

        out += "\(helpLine("sioagent_rule_firings_total", "Times each rule fired (planned its then actions)."))"
        out += "# TYPE sioagent_rule_firings_total counter\n"
        for f in snapshot.firings {
            out += "sioagent_rule_firings_total{rule=\"\(escape(f.rule))\"} \(f.count)\n"
        }

        out += "\(helpLine("sioagent_actions_total", "Actions by kind and outcome."))# TYPE sioagent_actions_total counter\n"
        for (a, name) in Self.actionNames.enumerated() {
            for outcome in Outcome.allCases {
                let value = actions[a * Outcome.allCases.count + outcome.rawValue].value
                if value > 0 || outcome == .ok {
                    out += "sioagent_actions_total{action=\"\(name)\",outcome=\"\(outcome.name)\"} \(value)\n"
                }
            }
        }

        if let spool = snapshot.spoolItems {
            out += "\(helpLine("sioagent_spool_items", "Alerts accepted and not yet delivered."))# TYPE sioagent_spool_items gauge\n"
            out += "sioagent_spool_items \(spool)\n"
        }

        out += "\(helpLine("sioagent_dropped_total", "What a budget dropped, the oldest first: alerts (spool, spool_memory), window samples, log and record lines waiting for a stuck disk (log_lines, record_lines)."))"
        out += "# TYPE sioagent_dropped_total counter\n"
        for budget in Budget.allCases {
            out += "sioagent_dropped_total{budget=\"\(budget.name)\"} \(drops[budget.rawValue].value)\n"
        }

        out += "\(helpLine("sioagent_reconnects_total", "Successful reconnections after a lost connection."))"
        out += "# TYPE sioagent_reconnects_total counter\n"
        out += "sioagent_reconnects_total \(reconnects.value)\n"
        out += "\(helpLine("sioagent_spool_writes_refused_total", "Alert writes refused because the disk writer's queue was full; the alerts stay in memory and are written again."))"
        out += "# TYPE sioagent_spool_writes_refused_total counter\n"
        out += "sioagent_spool_writes_refused_total \(spoolWritesRefused.value)\n"

        out += "\(helpLine("sioagent_regex_inputs_too_long_total", "Strings not matched by a matches condition for being longer than \(RegexLimits.maxInputBytes) bytes."))"
        out += "# TYPE sioagent_regex_inputs_too_long_total counter\n"
        out += "sioagent_regex_inputs_too_long_total \(RegexLimits.inputsTooLong)\n"

        out += "\(helpLine("sioagent_command_duration_seconds", "How long run and shell commands ran."))"
        out += "# TYPE sioagent_command_duration_seconds histogram\n"
        commandDuration.render("sioagent_command_duration_seconds", into: &out)

        out += "\(helpLine("sioagent_event_to_action_seconds", "From the event (or timer) to its action being carried out."))"
        out += "# TYPE sioagent_event_to_action_seconds histogram\n"
        eventToAction.render("sioagent_event_to_action_seconds", into: &out)
        return out
    }
}

/// A label value as the text format wants it: the text made one safe line by the shared
/// sanitiser (``OutsideText``), then the format's own escapes (backslash and double quote).
/// A value parses back to exactly the sanitised text, so a server-chosen namespace or event name
/// can neither end the sample nor forge one.
func escape(_ s: String) -> String {
    let safe = OutsideText.escaped(s)
    guard safe.unicodeScalars.contains(where: { $0 == "\\" || $0 == "\"" }) else { return safe }
    var out = String.UnicodeScalarView()
    for c in safe.unicodeScalars {
        switch c {
        case "\\": out.append(contentsOf: #"\\"#.unicodeScalars)
        case "\"": out.append(contentsOf: #"\""#.unicodeScalars)
        default: out.append(c)
        }
    }
    return String(out)
}

/// `# HELP name text` and its newline; the text sanitised and escaped as the format wants
/// (backslash; a newline cannot remain after the sanitiser).
func helpLine(_ name: String, _ text: String) -> String {
    var out = "# HELP " + name + " "
    for c in OutsideText.escaped(text).unicodeScalars {
        if c == "\\" { out += #"\\"# } else { out.unicodeScalars.append(c) }
    }
    return out + "\n"
}

private func formatBound(_ d: Double) -> String { formatDouble(d) }

private func formatDouble(_ d: Double) -> String {
    if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
    return "\(d)"
}

/// Event counts by the rule engine's labels, kept on the event loop (no lock: only the loop
/// touches them). Survives reloads: counts move to the same (namespace, event) label.
struct EventCounts {
    private(set) var labels: [(namespace: String?, event: String?)] = []
    private(set) var counts: [UInt64] = []

    init(labels: [(namespace: String?, event: String?)]) {
        self.labels = labels
        self.counts = [UInt64](repeating: 0, count: labels.count)
    }

    @inline(__always)
    mutating func count(_ label: Int) {
        counts[label] &+= 1
    }

    /// New labels after a reload; counts of labels that remain are kept.
    mutating func relabel(_ newLabels: [(namespace: String?, event: String?)]) {
        var old: [String: UInt64] = [:]
        for (i, l) in labels.enumerated() { old[Self.key(l)] = counts[i] }
        labels = newLabels
        counts = newLabels.map { old[Self.key($0)] ?? 0 }
    }

    private static func key(_ l: (namespace: String?, event: String?)) -> String {
        (l.namespace ?? "\u{0}") + "\u{1}" + (l.event ?? "\u{0}")
    }

    /// Non-zero counts, with `_other` for names and namespaces no rule names.
    var nonZero: [(namespace: String, event: String, count: UInt64)] {
        var out: [(namespace: String, event: String, count: UInt64)] = []
        for (i, l) in labels.enumerated() where counts[i] > 0 {
            out.append((l.namespace ?? "_other", l.event ?? "_other", counts[i]))
        }
        return out
    }
}

extension AgentMetrics {
    /// The version `sioagent_build_info` reports.
    public static let sioagentVersion = BuildInfo.version
}

extension Agent {
    /// The exposition text; on the loop (reads the loop-confined counts).
    static func renderMetrics(_ state: RuntimeState, executor: any ActionExecutor, metrics: AgentMetrics) -> String {
        var snapshot = AgentMetrics.LoopSnapshot()
        snapshot.events = state.eventCounts.nonZero
        snapshot.firings = zip(state.engine.ruleSet.ruleIDs, state.engine.firingCounts).map { ($0, $1) }
        snapshot.spoolItems = (executor as? LiveExecutor)?.pendingOnLoop
        metrics.windowSamplesDropped(state.engine.windowSamplesDropped)
        metrics.keysDroppedForBytes(state.engine.keysDroppedForBytes)
        snapshot.connected = state.connected.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return metrics.render(snapshot)
    }
}
