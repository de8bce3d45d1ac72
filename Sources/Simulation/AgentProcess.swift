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
    /// Spool and `failed/` jobs waiting for the writer thread, and when the oldest came.
    var writerJobs: [WriterJob] = []
    var writerOldest: Int64?
    var writerBusy = false
    /// The line writer (`log` lines, on a thread of its own): lines queued, lines of the batch
    /// being written, whether a batch runs, and whether it hangs on a stuck target.
    var lineJobs = 0
    var lineBatch = 0
    var lineBusy = false
    var lineHung = false
    var linesDropped = 0
    /// With the `shared-writer` mutation: a spool batch waits for the hung line batch.
    var spoolWaitsForLines = false
    /// The client: the real ``ClientStateMachine`` and, while a session opens or is open, the
    /// real ``EngineStateMachine``; the simulation is their shell (World+Client.swift).
    var client: ClientStateMachine
    var session: EngineStateMachine?
    /// The armed timers of the client machine, by name: a fired event whose token is not the
    /// armed one was cancelled.
    var timers: [ClientStateMachine.Timer: Int] = [:]
    var timerTokens = 0
    /// The engine's heartbeat timer (one at a time, at `engine.heartbeatDeadline`).
    var heartbeatToken = 0
    /// The outbox's sends the client holds, by the machine's emit sequence number (the machine
    /// keeps the ledger: buffer, ack ids; the shell keeps what each emit carries).
    var emits: [Int: (send: OutboxSend, item: SpoolItem, token: Int)] = [:]
    /// Events that came before their namespace's CONNECT answer (bounded, as the client's).
    var early: [[RuleEvent]]
    /// SIGTERM: when it came, and whether the outbox was told to persist.
    var shutdown: (started: Int64, persisted: Bool)?
    var exited = false

    enum WriterJob {
        case spool(SpoolItem)
        case failed(SpoolItem, payloadIn: String?)
        case remove(String)
        case readPayloads(String)
        case quarantine(String)
    }

    init(run: Int, outbox: OutboxState, engine: RuleEngine, client: ClientStateMachine) {
        self.run = run
        self.outbox = outbox
        self.engine = engine
        self.persistedStateVersion = engine.stateVersion
        self.client = client
        self.early = Array(repeating: [], count: client.namespaces.count)
    }
}
