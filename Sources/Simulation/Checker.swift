import Agent
import Rules
import SIOCore
import SocketIO

/// The reference model: what the agent promised (alerts durable on disk, `set` values written),
/// what the server saw, and the invariants checked against them after every step.
struct Checker {
    struct Alert {
        var namespace: String
        var ack: Bool
        var fireIndex: Int
        /// The agent run that accepted it.
        var firedRun = 0
        /// Reached the disk durably.
        var promised = false
        /// Left on purpose: `failed/` with a reason, or dropped by a budget with a warning.
        var resolved: String?
        var deliveries = 0
        /// The agent run of the first delivery.
        var firstRun = 0
        /// A send failed (no ack in time, or the connection lost while in flight).
        var mayRepeat = false
    }

    let settings: AgentSettings
    private(set) var violations: [String] = []
    private var alerts: [String: Alert] = [:]
    /// The alert each spool sequence number holds (an entry whose payload stayed on disk has no
    /// args, hence no id, in the outbox's actions).
    private var bySequence: [UInt64: String] = [:]

    private func id(_ item: SpoolItem) -> String? { World.id(of: item) ?? bySequence[item.sequence] }
    private var fires = 0
    private var lastFirstDelivered: [String: Int] = [:]
    /// The `last_mark` value last written durably, with its deadline (wall seconds).
    private var durableMark: (number: Int, expires: Double)?
    private var handshakes: [Int64] = []
    let handshakeBound: Int
    private(set) var delivered = 0

    init(settings: AgentSettings) {
        self.settings = settings
        // The most handshakes the backoff allows in 10 s: the first, then one after each of the
        // shortest delays that fit. A delay is at least (1 - randomization) of its nominal value;
        // the first after a stable connection may be zero (the server forgot the session), and
        // the one after a zero is at least 100 ms.
        var total = 0.0
        var count = 1
        var attempt = 1
        let p = settings.policy
        while true {
            let nominal = min(p.delay.secondsDouble * Double(1 << min(attempt - 1, 30)), p.maxDelay.secondsDouble)
            total += attempt == 1 ? 0 : max(nominal * (1 - p.randomization), 0.1)
            if total > 10 { break }
            count += 1
            attempt += 1
        }
        handshakeBound = count
    }

    mutating func violation(_ text: String) {
        if violations.count < 10 { violations.append(text) }
    }

    mutating func fired(_ item: SpoolItem, run: Int) {
        guard let id = World.id(of: item) else { return }
        fires += 1
        alerts[id] = Alert(namespace: item.namespace, ack: item.ackTimeout != nil, fireIndex: fires, firedRun: run)
    }

    mutating func durable(_ items: [SpoolItem]) {
        for item in items {
            guard let id = World.id(of: item) else { continue }
            bySequence[item.sequence] = id
            if alerts[id]?.resolved == nil { alerts[id]?.promised = true }
        }
    }

    mutating func resolved(_ item: SpoolItem, _ reason: String) {
        guard let id = id(item) else { return }
        alerts[id]?.resolved = reason
    }

    /// Lost with a spool file that became unreadable: only a disk fault does that, and the
    /// simulated disk never corrupts a synced file.
    mutating func lost(_ items: [SpoolItem], _ reason: String) {
        for item in items {
            guard let id = id(item), let alert = alerts[id], alert.ack, alert.promised, alert.resolved == nil else { continue }
            violation("ack alert \(id) lost: \(reason)")
        }
    }

    mutating func mayRepeat(_ item: SpoolItem) {
        guard let id = id(item) else { return }
        alerts[id]?.mayRepeat = true
    }

    /// The server received the alert `id`.
    mutating func delivered(_ world: World, id: String) {
        guard var alert = alerts[id] else { return }
        defer { alerts[id] = alert }
        alert.deliveries += 1
        if alert.deliveries > 1 {
            if !alert.mayRepeat && alert.firstRun == world.runs {
                violation("alert \(id) delivered again without a crash, restart, disconnect or missing ack since its first delivery")
            }
            return
        }
        delivered += 1
        alert.firstRun = world.runs
        // Dropped by a budget (with a warning), it may still come back from a batch file that
        // kept it: no order is promised for it.
        guard alert.ack, alert.resolved == nil else { return }
        if let last = lastFirstDelivered[alert.namespace], last > alert.fireIndex {
            violation("ack alert \(id) (fired #\(alert.fireIndex)) first delivered after one fired later (#\(last)) in \(alert.namespace)")
        }
        lastFirstDelivered[alert.namespace] = max(lastFirstDelivered[alert.namespace] ?? 0, alert.fireIndex)
    }

    mutating func stateDurable(_ state: [String: StateEntry]) {
        if let entry = state["last_mark"], case .string(let s) = entry.value, let n = Int(s.dropFirst()) {
            durableMark = (n, entry.expires)
        } else {
            durableMark = nil
        }
    }

    /// A run started from what the disk holds: every promised, undelivered alert is there, and
    /// so is the last `set` value written, until its ttl.
    mutating func started(_ world: World, loaded: [SpoolItem], failed: [String], state: [String: StateEntry]) {
        handshakes.removeAll()
        let present = Set(loaded.compactMap(World.id(of:)))
        for (id, alert) in alerts where alert.ack && alert.promised && alert.resolved == nil && alert.deliveries == 0 {
            if !present.contains(id) { violation("ack alert \(id) was kept on disk, never delivered, and is gone after the restart") }
        }
        if let mark = durableMark, mark.expires > world.wall + 1 {
            if let entry = state["last_mark"], case .string(let s) = entry.value, let n = Int(s.dropFirst()) {
                if n < mark.number { violation("state last_mark is m\(n) after the restart; m\(mark.number) was written") }
            } else {
                violation("state last_mark (m\(mark.number), ttl not reached) is gone after the restart")
            }
        }
    }

    mutating func agentStopped(_ world: World) {}

    /// A SIGTERM exit: every `ack:` alert the run accepted is on disk, delivered, resolved (failed,
    /// dropped with a warning), or counted in the shutdown's report of what was not written.
    mutating func shutdownReported(_ world: World, alertsNotOnDisk reported: Int) {
        let unaccounted = alerts.values.filter {
            $0.firedRun == world.runs && $0.ack && !$0.promised && $0.resolved == nil && $0.deliveries == 0
        }.count
        if unaccounted > reported {
            violation("SIGTERM lost \(unaccounted) accepted ack alerts not on disk; the shutdown reported \(reported)")
        }
    }

    mutating func handshake(_ world: World, _ agent: AgentProcess) {
        handshakes.append(world.now)
        handshakes.removeAll { $0 <= world.now - 10_000_000_000 }
        if handshakes.count > handshakeBound {
            violation("\(handshakes.count) handshakes within 10 s; the backoff allows \(handshakeBound)")
        }
    }

    mutating func shutdownEnded(_ world: World, started: Int64) {
        if world.now - started > world.nanoseconds(settings.shutdownTimeout) {
            violation("shutdown took \(world.seconds(world.now - started)); shutdown.timeout is \(settings.shutdownTimeout)")
        }
    }

    /// After every step: the outbox within its budgets, and the pump's index what the queue says.
    mutating func afterStep(_ world: World, _ agent: AgentProcess) {
        let outbox = agent.outbox
        let c = outbox.configuration, t = outbox.totals
        if t.spooled > c.maxItems + 1 { violation("the spool holds \(t.spooled) alerts; spool.max_items is \(c.maxItems)") }
        if let problem = outbox.pumpIndexProblem() { violation(problem) }
        if t.inMemory > c.maxInMemory + 1 { violation("\(t.inMemory) alerts the disk refused are in memory; the budget is \(c.maxInMemory)") }
        // The newest alert and the one being sent are never dropped: each may exceed a budget alone.
        let largest = 400
        if t.spooledBytes > c.maxBytes + 2 * largest { violation("the spool holds \(t.spooledBytes) bytes; spool.max_bytes is \(c.maxBytes)") }
        // Payloads being written are the writer's (bounded by the disk's budgets); those of alerts
        // on disk or refused by it stay within spool.max_memory.
        if t.payloadBytes > c.maxMemory + 2 * largest {
            let held = outbox.queue.reduce(0) { $0 + ($1.hasPayload && $1.storage != .writing ? $1.bytes : 0) }
            if held > c.maxMemory + 2 * largest { violation("\(held) payload bytes in memory; spool.max_memory is \(c.maxMemory)") }
        }
    }

    /// After the faults stopped and the world healed: every kept `ack:` alert was delivered.
    /// A namespace the server disconnected on purpose stays disconnected while another is
    /// connected (`reconnection.after_server_disconnect: false`, docs/operations.md): its alerts
    /// wait in the spool for the next start, and are exempt here.
    mutating func atEnd(_ world: World) {
        var kicked: Set<String> = []
        if let agent = world.agent, !agent.exited, !settings.policy.reconnectAfterServerDisconnect {
            for (i, ns) in agent.client.namespaces.enumerated() where agent.client.status(i) == .kicked { kicked.insert(ns.name) }
        }
        for (id, alert) in alerts.sorted(by: { $0.value.fireIndex < $1.value.fireIndex })
        where alert.ack && alert.promised && alert.resolved == nil && alert.deliveries == 0 && !kicked.contains(alert.namespace) {
            violation("ack alert \(id) was kept on disk and never delivered (nor moved to failed/)")
        }
    }
}

extension Duration {
    var secondsDouble: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
