import Logging
import NIOCore
import SocketIO

/// Delivers `emit` actions in order and never loses one it accepted: the NIO shell around
/// ``OutboxState``, which makes every decision.
///
/// While the namespace is connected and nothing waits before it, an alert without `ack` goes
/// straight to the client. Otherwise — disconnected, alerts already waiting, or an `ack` that
/// must be awaited — it is first written to the disk spool (on the ``DiskWriter`` thread, the
/// loop never waits), and leaves it only once sent (with `ack`: acknowledged). Waiting alerts go
/// out oldest first within their namespace, up to `spool.in_flight` of them awaiting their acks
/// at once, as soon as the namespace is connected, also after the agent restarts; a namespace
/// that is down never holds back another. After a failed attempt (no ack in time, the connection
/// lost) the namespace sends again from its oldest unacknowledged alert, once every send in
/// flight has ended: after a pause, or on the next connect.
///
/// An alert the server can never accept (a reserved event name, a namespace that is not
/// configured or that the server does not know) goes to `spool/failed/` with an error, and
/// never blocks the alerts behind it.
///
/// Budgets (each reached with a warning, and the oldest goes; one in flight never does):
/// - on disk, `spool.max_items` alerts and `spool.max_bytes` of them;
/// - in memory, an index entry per alert plus at most `spool.max_memory` of payloads: the
///   payloads of the newest alerts on disk stay there and are read back (on the writer thread)
///   when their turn comes, at start as well;
/// - when the disk refuses a write (full, quota, I/O error, the spool writer's queue full), the
///   alert is kept in memory, at most ``maxInMemory`` of them within `spool.max_memory`, and
///   written again every retry delay. The spool's writer holds at most half of
///   `spool.max_memory` of alerts being written (at least 1 MiB); those payloads do not count
///   against the alerts kept in memory. These warnings come at most once every 10 s per kind,
///   with the count since the last (`spool.refused`, `spool.dropped`).
///
/// Each input goes to the state first; the actions it returns are carried out afterwards, so
/// nothing re-enters the state. Confined to the client's event loop: every method runs there
/// (hence `@unchecked Sendable`: the closures that capture it run on that loop too, and
/// ``apply(_:)`` checks it).
final class AlertOutbox: @unchecked Sendable {
    private let client: SocketIOClient
    private let spool: Spool
    private let writer: DiskWriter
    private let loop: any EventLoop
    private let logger: Logger
    private let metrics: AgentMetrics?
    private var state: OutboxState
    private var retry: Scheduled<Void>?
    private var persistRetry: Scheduled<Void>?
    private var idleWaiters: [EventLoopPromise<Void>] = []
    private let failedDropped: DropCounter
    /// One warning of each ``OutboxWarning`` every 10 s at most, with the count since the last.
    private let warnings: [DropCounter]
    /// Shutdown: the alerts still in memory are handed to the writer, which may not refuse them
    /// (they are in memory already, within `spool.max_memory`), so that none waits for a retry
    /// the deadline will not see.
    private var persisting = false

    var maxInMemory: Int { state.configuration.maxInMemory }

    /// Reads the spool index (at start, before the loop runs it: this blocks on the disk).
    /// - Parameter namespaces: the namespaces the client connects to.
    init(
        client: SocketIOClient, spool: Spool, writer: DiskWriter, logger: Logger, retryDelay: Duration, namespaces: Set<String>,
        inFlight: Int = 32, metrics: AgentMetrics? = nil
    ) {
        self.metrics = metrics
        self.client = client
        self.spool = spool
        self.writer = writer
        self.loop = client.eventLoop
        self.logger = logger
        let failedDirectory = spool.failedDirectory, maxItems = spool.maxItems
        failedDropped = DropCounter { count, _ in
            logger.error(
                "the failed directory is full; failed alerts are logged only",
                metadata: ["spool.failed_dir": "\(failedDirectory)", "spool.max_items": "\(maxItems)", "spool.dropped": "\(count)"])
        }
        warnings = OutboxWarning.allCases.map { kind in
            DropCounter { count, metadata in
                var metadata = metadata
                metadata[kind.countKey] = "\(count)"
                logger.warning("\(kind.message)", metadata: metadata)
            }
        }
        let (items, corrupt) = spool.loadIndex(payloadBudget: spool.maxMemory)
        for (name, reason) in corrupt {
            logger.warning(
                "spool file is unreadable; moved to the corrupt directory",
                metadata: ["spool.file": "\(spool.directory)/\(name)", "spool.corrupt_dir": "\(spool.corruptDirectory)", "error": "\(reason)"])
        }
        state = OutboxState(
            configuration: OutboxState.Configuration(
                namespaces: namespaces, maxItems: spool.maxItems, maxBytes: spool.maxBytes, maxMemory: spool.maxMemory, inFlight: inFlight,
                retryDelay: retryDelay),
            loaded: items.map { OutboxState.Loaded(item: $0.item, file: $0.file, hasPayload: $0.hasPayload, bytes: $0.bytes) },
            failedCount: spool.storage.list(spool.failedDirectory).count, nextSequence: spool.sequenceAfterLoad)
        // Before the loop runs: nothing else can touch the state yet.
        perform(state.start())
    }

    /// Alerts not yet delivered (on disk, in memory, or handed to the client and not yet written).
    var pending: Int { state.pending }

    /// Alerts not on disk (being written, refused by the disk, or with the client).
    var notOnDisk: Int { state.notOnDisk }

    /// - Parameter plannedAt: when the rule planned it (for `sioagent_event_to_action_seconds`).
    func enqueue(_ item: SpoolItem, plannedAt: Double? = nil) {
        apply(.fire(item, plannedAt: plannedAt))
    }

    func connectionChanged(namespace: String, connected isUp: Bool) {
        apply(isUp ? .connected(namespace) : .disconnected(namespace))
    }

    /// The server refused `namespace`. When it says it does not know it, the alerts waiting
    /// for it can never be delivered: they go to `failed/`, and so do new ones until the
    /// namespace connects.
    func connectionRefused(namespace: String, message: String) {
        apply(.refused(namespace: namespace, message: message))
    }

    /// Writes every alert still in the client's hands or in memory to the spool, so that the next
    /// start sends them; called at shutdown (the caller then waits for the writer).
    func persistInFlight() {
        persisting = true
        apply(.persistInFlight)
        // Nobody waits for what is in flight any more: it is on its way to the disk.
        let waiters = idleWaiters
        idleWaiters.removeAll()
        for w in waiters { w.succeed() }
    }

    /// Reports the drops and refusals that the warnings' quiet periods still hold (at shutdown).
    func flushWarnings() {
        failedDropped.flush()
        for w in warnings { w.flush() }
    }

    /// Completes when nothing is being sent (queued alerts may remain, safely on disk).
    func waitUntilIdle() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        if state.isIdle { return loop.makeSucceededVoidFuture() }
        let promise = loop.makePromise(of: Void.self)
        idleWaiters.append(promise)
        return promise.futureResult
    }

    // MARK: - The shell

    /// One input: the state decides, then its actions are carried out.
    private func apply(_ input: OutboxInput) {
        loop.preconditionInEventLoop()
        perform(state.handle(input))
        if state.isIdle, !idleWaiters.isEmpty {
            let waiters = idleWaiters
            idleWaiters.removeAll()
            for w in waiters { w.succeed() }
        }
    }

    private func perform(_ actions: [OutboxAction]) {
        for action in actions {
            switch action {
            case .store(let item):
                let sequence = item.sequence
                let queued = writer.submit(
                    .store(
                        directory: spool.directory, name: Spool.fileName(sequence), bytes: item.encoded(),
                        done: { result in
                            self.loop.execute {
                                self.apply(.written(sequence: sequence, file: result.file, inFile: result.storesInFile, error: result.error))
                            }
                        }), refusable: !persisting)
                if !queued {
                    // The writer's queue holds its bound of alerts (a disk that hangs): refused
                    // like a write the disk failed, on a later turn of the loop, as the writer
                    // would answer (nothing re-enters the state while its actions run).
                    metrics?.spoolWritesRefused.add(1)
                    let error = DiskError(description: "the spool writer's queue is full (\(writer.maxQueuedStoreBytes) bytes of alerts wait for the disk)")
                    loop.execute { self.apply(.written(sequence: sequence, file: Spool.fileName(sequence), inFile: 0, error: error)) }
                }
            case .storeFailed(let item, _, let payloadIn):
                let name = Spool.fileName(item.sequence), failedDirectory = spool.failedDirectory
                if let file = payloadIn {
                    // Its payload stayed on disk: copied from its spool file, before that file can
                    // be removed (the writer does jobs in order).
                    let directory = spool.directory, storage = spool.storage
                    writer.submit(.task {
                        let full = (try? Spool.readPayloads(directory: directory, file: file, storage: storage))?[item.sequence] ?? item
                        try? storage.makeDirectories(failedDirectory)
                        try? storage.storeDurably(directory: failedDirectory, name: name, bytes: full.encoded())
                    })
                } else {
                    writer.submit(.store(directory: failedDirectory, name: name, bytes: item.encoded(), done: { _ in }), refusable: false)
                }
            case .failedDirectoryFull:
                failedDropped.dropped()
            case .remove(let file):
                writer.submit(.remove(path: spool.directory + "/" + file))
            case .readPayloads(let file):
                let directory = spool.directory, storage = spool.storage
                writer.submit(.task {
                    let result: Result<[UInt64: SpoolItem], DiskError>
                    do {
                        result = .success(try Spool.readPayloads(directory: directory, file: file, storage: storage))
                    } catch {
                        result = .failure(error as? DiskError ?? DiskError(storage: "\(error)", code: 0))
                    }
                    self.loop.execute { self.apply(.payloadsRead(file: file, result)) }
                })
            case .quarantine(let file):
                let directory = spool.directory, corrupt = spool.corruptDirectory, storage = spool.storage
                writer.submit(.task {
                    try? storage.makeDirectories(corrupt)
                    _ = storage.rename(directory + "/" + file, corrupt + "/" + file)
                })
            case .send(let send, let item):
                // The outbox owns delivery (order, retries, the spool): the client writes each
                // alert once, on the current connection, or fails it. Without an ack no future
                // is made: the client calls back on this loop.
                guard let timeout = item.ackTimeout else {
                    client.sendDirect(item.event, item.args, namespace: item.namespace) { result in self.sendEnded(send, result.mapError { $0 }) }
                    continue
                }
                client.sendWithAck(item.event, item.args, namespace: item.namespace, timeout: timeout, delivery: .direct).hop(to: loop)
                    .whenComplete { result in self.sendEnded(send, result.map { _ in }) }
            case .scheduleRetry(let delay):
                retry?.cancel()
                retry = loop.scheduleTask(in: TimeAmount(delay)) {
                    self.retry = nil
                    self.apply(.retryTimer)
                }
            case .cancelRetry:
                retry?.cancel()
                retry = nil
            case .schedulePersistRetry(let delay):
                persistRetry?.cancel()
                persistRetry = loop.scheduleTask(in: TimeAmount(delay)) {
                    self.persistRetry = nil
                    self.apply(.persistRetryTimer)
                }
            case .delivered(let item, let plannedAt, let direct):
                if direct { logger.debug("alert sent", metadata: ["rule.id": "\(item.rule)", "event.name": "\(item.event)"]) }
                if let metrics {
                    metrics.action(index: 0, .ok)
                    if let plannedAt { metrics.actionDone(plannedAt: plannedAt) }
                }
            case .discarded(let items, let budget): metrics?.dropped(budget, count: items.count)
            case .lost: break  // the state logs the error
            case .metric(let outcome): metrics?.action(index: 0, outcome)
            case .warning(let kind, let count, let metadata):
                warnings[kind.rawValue].dropped(count, metadata: metadata)
            case .log(let level, let message, var metadata):
                if level >= .error, message.hasPrefix("alert can never") { metadata["spool.failed_dir"] = "\(spool.failedDirectory)" }
                if let file = metadata["spool.file"], message.hasPrefix("spool file is unreadable") {
                    metadata["spool.file"] = "\(spool.directory)/\(file)"
                    metadata["spool.corrupt_dir"] = "\(spool.corruptDirectory)"
                }
                logger.log(level: level, "\(message)", metadata: metadata)
            }
        }
    }

    /// A send ended: written (with `ack`: acknowledged), or failed with `error`.
    private func sendEnded(_ send: OutboxSend, _ result: Result<Void, any Error>) {
        switch result {
        case .success: apply(.sendCompleted(send, .delivered))
        case .failure(let error): apply(.sendCompleted(send, .failed("\(error)", permanent: Self.isPermanent(error))))
        }
    }

    /// Errors after which the server can never accept the alert.
    private static func isPermanent(_ error: any Error) -> Bool {
        switch error as? SocketIOError {
        case .reservedEventName?, .unknownNamespace?: true
        default: false
        }
    }
}
