import Agent
import Rules
import SocketIO

/// A fault put back on purpose, to check that the simulation catches it.
public enum Mutation: String, CaseIterable, Sendable {
    /// The state file lives in the spool directory, and the spool's start takes every name there
    /// as its own (and quarantines the state file).
    case stateInSpool = "state-in-spool"
    /// A batch file is released while an alert dropped from it is counted, before the others.
    case batchRelease = "batch-release"
    /// SIGTERM waits for the pending ack instead of `shutdown.timeout`.
    case shutdownWaitsForAck = "shutdown-waits-for-ack"
    /// The reconnection backoff starts over as soon as a namespace connects (in the client's
    /// ``ClientStateMachine``).
    case backoffResetAtConnect = "backoff-reset-at-connect"
    /// The outbox forgets `ack:` alerts once they are written.
    case dropAckAlerts = "drop-ack-alerts"
    /// The spool shares one writer thread with the `log` lines (as before issue 14): a `log`
    /// target that hangs holds every spool write behind it.
    case sharedWriter = "shared-writer"

    var outbox: OutboxMutation? {
        switch self {
        case .batchRelease: .batchReleasedEarly
        case .dropAckAlerts: .ackAlertsDroppedOnceWritten
        default: nil
        }
    }

    var client: ClientMutation? { self == .backoffResetAtConnect ? .backoffResetAtConnect : nil }
}

/// Which faults a seed switches on (swarm testing: each seed picks its own mix and rates).
struct Faults: CustomStringConvertible {
    var drops = false
    var stalls = false
    var slowAcks = false
    var lostAcks = false
    var kicks = false
    /// Storms of connections the server closes just after a namespace connects.
    var flaps = false
    var http400 = false
    var serverRestarts = false
    var slowDisk = false
    var fullDisk = false
    var ioErrors = false
    var crashes = false
    var sigterms = false
    var reloads = false
    var wallJumps = false
    var burst = false
    /// Engine.IO v3 (python-socketio 4) rather than v4.
    var v3 = false
    /// Long-polling rather than WebSocket.
    var polling = false
    /// The `log` target hangs now and then (a FIFO nobody reads, a hung NFS file). Drawn from a
    /// stream of its own, so the other draws of a seed stay as they were.
    var stuckLog = false

    init(_ r: inout SplitMix64) {
        drops = r.chance(0.5)
        stalls = r.chance(0.3)
        slowAcks = r.chance(0.5)
        lostAcks = r.chance(0.4)
        kicks = r.chance(0.3)
        http400 = r.chance(0.3)
        serverRestarts = r.chance(0.3)
        slowDisk = r.chance(0.4)
        fullDisk = r.chance(0.3)
        ioErrors = r.chance(0.2)
        crashes = r.chance(0.6)
        sigterms = r.chance(0.5)
        reloads = r.chance(0.4)
        wallJumps = r.chance(0.3)
        burst = r.chance(0.4)
        v3 = r.chance(0.3)
        flaps = r.chance(0.3)
        polling = r.chance(0.5)
    }

    var description: String {
        let all: [(String, Bool)] = [
            ("drops", drops), ("stalls", stalls), ("slow-acks", slowAcks), ("lost-acks", lostAcks), ("kicks", kicks), ("flaps", flaps),
            ("http-400", http400), ("server-restarts", serverRestarts), ("slow-disk", slowDisk), ("full-disk", fullDisk),
            ("io-errors", ioErrors), ("sigkill", crashes), ("sigterm", sigterms), ("reloads", reloads),
            ("wall-jumps", wallJumps), ("bursts", burst), ("v3", v3), ("polling", polling), ("stuck-log", stuckLog),
        ]
        let on = all.filter(\.1).map(\.0)
        return on.isEmpty ? "none" : on.joined(separator: ",")
    }
}

/// The agent's settings in a simulated world.
struct AgentSettings {
    var spoolDirectory = "/var/lib/sioagent/spool"
    /// The state file beside the spool directory, as the agent puts it by default.
    var stateDirectory = "/var/lib/sioagent"
    var maxItems: Int
    /// `spool.max_bytes` and `spool.max_memory` (small ones make the byte budgets act).
    var maxBytes = 64 << 20
    var maxMemory = 4 << 20
    /// `spool.in_flight`.
    var inFlight = 32
    var retryDelay: Duration = .seconds(5)
    var shutdownTimeout: Duration
    var policy = ReconnectionPolicy()
    var connectTimeout: Duration = .seconds(20)
    var pingInterval = 5_000
    var pingTimeout = 5_000
    var namespaces: Set<String> = ["/", "/devices"]

    var stateFileName: String { "state.json" }
}

/// The rules the simulated agent runs (and the set a reload switches to).
enum SimulationRules {
    static func text(variant: Int) -> String {
        """
        rules:
          - id: device-alert
            on: {event: reading, namespace: /devices}
            then:
              - emit: alert
                namespace: /devices
                ack: \(variant == 0 ? "20s" : "45s")
                data: {id: "{{ payload.id }}"}
          - id: main-alert
            on: reading
            then:
              - log: /var/log/sioagent/readings.log
                message: "reading {{ payload.id }}"
              - emit: alert
                ack: \(variant == 0 ? "10s" : "3s")
                data: {id: "{{ payload.id }}"}
          - id: notice
            on: ping
            then:
              - emit: notice
                data: {id: "{{ payload.id }}"}
          - id: remember
            on: mark
            then:
              - set: last_mark
                value: "{{ payload.id }}"
                ttl: \(variant == 0 ? "2h" : "90m")
          - id: heartbeat
            every: \(variant == 0 ? "5m" : "3m")
            then:
              - emit: heartbeat
                data: {at: "{{ now }}"}
        """
    }

    /// Both sets, compiled once per process.
    static let sets = [compile(variant: 0), compile(variant: 1)]

    static func load(variant: Int) -> RuleSet { sets[variant] }

    private static func compile(variant: Int) -> RuleSet {
        let (set, diagnostics) = RuleSet.load(sources: [("sim.yaml", text(variant: variant))], environment: [:])
        guard let set else { fatalError("simulation rules do not load: \(diagnostics)") }
        return set
    }
}
