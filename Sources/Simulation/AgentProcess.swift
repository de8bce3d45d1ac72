import Agent
import Rules
import SIOCore
import SocketIO

/// One run of the agent in the simulation, from start to SIGKILL or exit: the real cores
/// (``OutboxState``, ``RuleEngine``, ``Spool`` loading, ``StateFile``) and a shell that turns
/// their actions into future events, as the NIO shells do on the event loop.
final class AgentProcess {
    /// Counts the runs; events of an earlier run are ignored.
    let run: Int
    var outbox: OutboxState
    var engine: RuleEngine
    var persistedStateVersion: UInt64
    var statePersistScheduled = false
    var engineTimerDue: Double?
    /// The armed rule timer (an earlier one left in the queue is stale), and the wall-clock
    /// jumps seen when it was armed.
    var engineTimerToken = 0
    var engineTimerJumps = 0
    /// Spool and `failed/` jobs waiting for the writer thread.
    var writerJobs: [WriterJob] = []
    var writerBusy = false
    /// The client: connection generation, phase, namespaces up, acks awaited.
    var connection = 0
    var phase: Phase = .waiting
    var connectedNamespaces: Set<String> = []
    var backoff: ReconnectBackoff
    var awaitingAck: [OutboxSend: (token: Int, item: SpoolItem)] = [:]
    var ackTokens = 0
    /// When the last frame written reaches the server (frames arrive in order).
    var lastFrameAt: Int64 = 0
    /// The server's run that answered the handshake under way.
    var handshakeServerRun = 0
    /// Handshakes since this run started (monotonic ns), for the backoff bound.
    var handshakes: [Int64] = []
    /// SIGTERM: when it came, and whether the outbox was told to persist.
    var shutdown: (started: Int64, persisted: Bool)?
    var exited = false

    enum Phase: Equatable {
        case waiting
        case handshaking
        case open
        /// Open, but nothing passes (the peer stopped answering).
        case stalled
    }

    enum WriterJob {
        case spool(SpoolItem)
        case failed(SpoolItem, payloadIn: String?)
        case remove(String)
        case readPayloads(String)
        case quarantine(String)
    }

    init(run: Int, outbox: OutboxState, engine: RuleEngine, policy: ReconnectionPolicy) {
        self.run = run
        self.outbox = outbox
        self.engine = engine
        self.persistedStateVersion = engine.stateVersion
        self.backoff = ReconnectBackoff(policy: policy)
    }

    var isConnected: Bool { phase == .open && !exited }
}
