import DequeModule
import Logging
import NIOCore
import SocketIO

/// Delivers `emit` actions in order and never loses one it accepted.
///
/// While the namespace is connected and nothing waits before it, an alert without `ack` goes
/// straight to the client. Otherwise — disconnected, alerts already waiting, or an `ack` that
/// must be awaited — it is first written to the disk spool (on the ``DiskWriter`` thread, the
/// loop never waits), and leaves it only once sent (with `ack`: acknowledged). Waiting alerts go
/// out one at a time, oldest first within their namespace, as soon as the namespace is
/// connected, also after the agent restarts; a namespace that is down never holds back another.
/// A failed attempt (no ack in time, the connection lost) is retried after a pause or on the
/// next connect.
///
/// Budgets (each reached with a warning, and the oldest goes; the one being sent never does):
/// - on disk, `spool.max_items` alerts and `spool.max_bytes` of them;
/// - in memory, an index entry per alert plus at most `spool.max_memory` of payloads: the
///   payloads of the newest alerts on disk stay there and are read back (on the writer thread)
///   when their turn comes, at start as well;
/// - when the disk refuses a write (full, quota, I/O error), the alert is kept in memory, at most
///   ``maxInMemory`` of them within `spool.max_memory`, and written again every retry delay.
///
/// An alert the server can never accept (a reserved event name, a namespace that is not
/// configured or that the server does not know) goes to `spool/failed/` with an error, and
/// never blocks the alerts behind it.
///
/// Storage bookkeeping lives in `AlertOutbox+Storage.swift`, which spool files may go in
/// ``SpoolFileCounts``.
///
/// Confined to the client's event loop: every method runs there (checked with
/// `preconditionInEventLoop` at each entry point). It is `@unchecked Sendable` because the
/// closures that capture it (writer completions, client futures, timers) all hop to that loop
/// before touching it.
final class AlertOutbox: @unchecked Sendable {
    enum Storage {
        /// Being written by the writer thread; not sent before it is durable.
        case writing
        case disk
        /// The disk refused it.
        case memory
    }

    struct Entry {
        var item: SpoolItem
        var storage: Storage
        /// The spool file that holds it, when on disk.
        var file: String?
        /// Whether `item.args` is in memory (an alert on disk may leave it there).
        var hasPayload = true
        /// Bytes of its spool line.
        var bytes: Int
    }

    let client: SocketIOClient
    let spool: Spool
    let writer: DiskWriter
    let loop: any EventLoop
    let logger: Logger
    let retryDelay: TimeAmount
    private let namespaces: Set<String>
    /// The only configured namespace, when there is one (checked per alert without hashing).
    private let soleNamespace: String?
    /// Alerts kept in memory when the disk refuses them: at most this many (and within `spool.max_memory`).
    let maxInMemory: Int
    var queue: Deque<Entry> = []
    /// What the queue holds, kept as entries come, change and go (``account(_:_:)``).
    var totals = Totals()
    /// Undelivered alerts in each spool file; a file is deleted when none is left in it.
    var fileCounts = SpoolFileCounts()
    private var connected: Set<String> = []
    /// Namespaces the server said it does not know.
    private var unknownToServer: Set<String> = []
    /// The sequence number of the spooled alert being sent.
    var sending: UInt64?
    /// The spool file whose payloads are being read back.
    var reading: String?
    private var retry: Scheduled<Void>?
    var persistRetry: Scheduled<Void>?
    /// Alerts handed to the client directly whose write has not completed yet.
    private var direct = InFlight<SpoolItem>()
    private var idleWaiters: [EventLoopPromise<Void>] = []
    /// Alerts in `failed/` (files there at start, plus those written since).
    var failedKept = 0
    let failedDropped = DropCounter()
    let metrics: AgentMetrics?

    struct Totals {
        /// Alerts on disk or being written, and their bytes (`spool.max_items`, `spool.max_bytes`).
        var spooled = 0
        var spooledBytes = 0
        /// Alerts the disk refused.
        var inMemory = 0
        /// Payload bytes held in memory (`spool.max_memory`).
        var payloadBytes = 0
    }

    /// Reads the spool index (at start, before the loop runs it: this blocks on the disk).
    /// - Parameter namespaces: the namespaces the client connects to.
    init(
        client: SocketIOClient, spool: Spool, writer: DiskWriter, logger: Logger, retryDelay: Duration, namespaces: Set<String>,
        metrics: AgentMetrics? = nil
    ) {
        self.metrics = metrics
        self.client = client
        self.spool = spool
        self.writer = writer
        self.loop = client.eventLoop
        self.logger = logger
        self.retryDelay = TimeAmount(max(retryDelay, .seconds(1)))
        self.namespaces = namespaces
        self.soleNamespace = namespaces.count == 1 ? namespaces.first : nil
        self.maxInMemory = min(spool.maxItems, 1000)
        let (items, corrupt) = spool.loadIndex(payloadBudget: spool.maxMemory)
        failedKept = listDirectory(spool.failedDirectory).count
        for (name, reason) in corrupt {
            logger.warning(
                "spool file is unreadable; moved to the corrupt directory",
                metadata: ["spool.file": "\(spool.directory)/\(name)", "spool.corrupt_dir": "\(spool.corruptDirectory)", "error": "\(reason)"])
        }
        var perFile: [String: Int] = [:]
        for found in items {
            perFile[found.file, default: 0] += 1
            append(Entry(item: found.item, storage: .disk, file: found.file, hasPayload: found.hasPayload, bytes: found.bytes))
        }
        for (file, alerts) in perFile { fileCounts.loaded(file, alerts: alerts) }
        failAll(queue.compactMap { entry in permanentProblem(entry.item).map { (entry, $0) } })
        // A batch file keeps the alerts dropped while it was written; the budgets may also be smaller now.
        enforceDiskBudget(keeping: nil)
        if !queue.isEmpty {
            logger.info(
                "alerts waiting in the spool",
                metadata: ["spool.count": "\(queue.count)", "spool.bytes": "\(totals.spooledBytes)", "spool.payload_bytes": "\(totals.payloadBytes)"])
        }
    }

    /// Alerts not yet delivered (on disk, in memory, or handed to the client and not yet written).
    var pending: Int { queue.count + direct.count }

    /// - Parameter plannedAt: when the rule planned it (for `sioagent_event_to_action_seconds`).
    func enqueue(_ item: SpoolItem, plannedAt: Double? = nil) {
        loop.preconditionInEventLoop()
        if let problem = permanentProblem(item) {
            var item = item
            item.sequence = spool.takeSequence()
            logFailed(item, problem)
            keepFailed(Entry(item: item, storage: .memory, file: nil, bytes: 0))
            return
        }
        if item.ackTimeout == nil, isConnected(item.namespace), !queue.contains(where: { $0.item.namespace == item.namespace }) {
            sendDirectly(item, plannedAt: plannedAt)
        } else {
            store(item)
        }
    }

    func connectionChanged(namespace: String, connected isUp: Bool) {
        loop.preconditionInEventLoop()
        if isUp {
            connected.insert(namespace)
            unknownToServer.remove(namespace)
            pump()
        } else {
            connected.remove(namespace)
        }
    }

    /// The server refused `namespace`. When it says it does not know it, the alerts waiting
    /// for it can never be delivered: they go to `failed/`, and so do new ones until the
    /// namespace connects.
    func connectionRefused(namespace: String, message: String) {
        loop.preconditionInEventLoop()
        // socket.io answers "Invalid namespace"; python-socketio "Unable to connect".
        guard message == "Invalid namespace" || message == "Unable to connect" else { return }
        unknownToServer.insert(namespace)
        let doomed = queue.filter { $0.item.namespace == namespace && $0.item.sequence != sending && $0.storage != .writing }
        failAll(doomed.map { ($0, "the server does not know namespace \(namespace): \(message)") })
    }

    /// Writes every alert still in the client's hands or in memory to the spool, so that the next
    /// start sends them; called at shutdown (the caller then waits for the writer). Whoever
    /// waits for the outbox to be idle is released: what is in flight is on its way to the disk.
    func persistInFlight() {
        loop.preconditionInEventLoop()
        for item in direct.removeAll() { store(item) }
        // The one being sent too: if its ack never comes, the next start sends it again.
        rewriteMemoryEntries(includingSending: true)
        let waiters = idleWaiters
        idleWaiters.removeAll()
        for w in waiters { w.succeed() }
    }

    /// Completes when nothing is being sent (queued alerts may remain, safely on disk).
    func waitUntilIdle() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        if sending == nil, direct.isEmpty { return loop.makeSucceededVoidFuture() }
        let promise = loop.makePromise(of: Void.self)
        idleWaiters.append(promise)
        return promise.futureResult
    }

    // MARK: - Delivery

    /// Why `item` can never be delivered, or nil.
    func permanentProblem(_ item: SpoolItem) -> String? {
        if item.event.isEmpty { return "the event name is empty" }
        if isSocketIOReservedEventName(item.event) { return "\(SocketIOError.reservedEventName(item.event))" }
        let known = soleNamespace.map { $0 == item.namespace } ?? namespaces.contains(item.namespace)
        if !known { return "namespace \(item.namespace) is not in server.namespaces" }
        if !unknownToServer.isEmpty, unknownToServer.contains(item.namespace) { return "the server does not know namespace \(item.namespace)" }
        return nil
    }

    /// Whether `namespace` is connected (one namespace, the common case, without hashing).
    private func isConnected(_ namespace: String) -> Bool {
        if connected.count == 1, let only = connected.first { return only == namespace }
        return !connected.isEmpty && connected.contains(namespace)
    }

    private func permanentProblem(_ error: any Error) -> String? {
        switch error as? SocketIOError {
        case .reservedEventName?, .unknownNamespace?: return "\(error)"
        default: return nil
        }
    }

    private func sendDirectly(_ item: SpoolItem, plannedAt: Double?) {
        let id = direct.append(item)
        client.send(item.event, item.args, namespace: item.namespace, delivery: .direct).hop(to: loop).whenComplete { result in
            // Already persisted at shutdown, or delivered.
            guard let item = self.direct.remove(id) else { return }
            switch result {
            case .success:
                if let metrics = self.metrics {
                    metrics.action(index: 0, .ok)
                    if let plannedAt { metrics.actionDone(plannedAt: plannedAt) }
                }
                self.logger.debug("alert sent", metadata: ["rule.id": "\(item.rule)", "event.name": "\(item.event)"])
            case .failure(let error):
                if let problem = self.permanentProblem(error) {
                    self.fail(Entry(item: item, storage: .memory, file: nil, bytes: 0), problem)
                } else {
                    self.logger.warning(
                        "alert not sent; kept in the spool",
                        metadata: ["rule.id": "\(item.rule)", "event.name": "\(item.event)", "error": "\(error)"])
                    self.store(item)
                }
            }
            self.notifyIfIdle()
        }
    }

    /// The next alert to send: the oldest of a connected namespace whose older alerts are all
    /// ready too (stored or kept in memory).
    private func next() -> Int? {
        var blocked: Set<String> = []
        for i in queue.indices {
            let ns = queue[i].item.namespace
            if blocked.contains(ns) { continue }
            if connected.contains(ns), queue[i].storage != .writing { return i }
            blocked.insert(ns)
        }
        return nil
    }

    func pump() {
        guard sending == nil, let index = next() else { return }
        let head = queue[index]
        guard head.hasPayload else {
            // Its payload stayed on disk: read it back first (pump runs again when it is here).
            if let file = head.file { readPayloads(of: file) }
            return
        }
        retry?.cancel()
        retry = nil
        let item = head.item
        sending = item.sequence
        let attempt: EventLoopFuture<Void>
        if let timeout = item.ackTimeout {
            attempt = client.sendWithAck(item.event, item.args, namespace: item.namespace, timeout: timeout, delivery: .direct).map { _ in }
        } else {
            attempt = client.send(item.event, item.args, namespace: item.namespace, delivery: .direct)
        }
        attempt.hop(to: loop).whenComplete { result in
            self.sending = nil
            let index = self.queue.firstIndex { $0.item.sequence == item.sequence }
            switch result {
            case .success:
                // Release the entry as it is now: its storage may have changed while it was sent
                // (written to the spool at shutdown, say), and that file must go too.
                self.release(index.map { self.remove(at: $0) } ?? head)
                self.metrics?.action(index: 0, .ok)
                self.logger.info(
                    item.ackTimeout == nil ? "spooled alert sent" : "spooled alert acknowledged",
                    metadata: ["rule.id": "\(item.rule)", "event.name": "\(item.event)", "spool.left": "\(self.queue.count)"])
                self.pump()
            case .failure(let error):
                if let problem = self.permanentProblem(error), let index {
                    self.fail(self.queue[index], problem)
                    self.pump()
                } else {
                    self.logger.warning(
                        "alert not delivered; kept in the spool",
                        metadata: ["rule.id": "\(item.rule)", "event.name": "\(item.event)", "error": "\(error)"])
                    // Still connected (e.g. no ack in time): try again after a pause. Otherwise the
                    // next connect restarts the pump.
                    if self.connected.contains(item.namespace) {
                        self.retry = self.loop.scheduleTask(in: self.retryDelay) {
                            self.retry = nil
                            self.pump()
                        }
                    } else {
                        self.pump()
                    }
                }
            }
            self.notifyIfIdle()
        }
    }

    private func notifyIfIdle() {
        guard sending == nil, direct.isEmpty, !idleWaiters.isEmpty else { return }
        let waiters = idleWaiters
        idleWaiters.removeAll()
        for w in waiters { w.succeed() }
    }
}
