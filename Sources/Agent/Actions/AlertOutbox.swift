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
/// An alert the server can never accept (a reserved event name, a namespace that is not
/// configured or that the server does not know) goes to `spool/failed/` with an error, and
/// never blocks the alerts behind it.
///
/// When the disk refuses a write (full, quota, I/O error), the alert is kept in memory, at most
/// ``maxInMemory`` of them and ``maxInMemoryBytes`` (the oldest is dropped beyond that, with a
/// warning), and written again every retry delay until the disk takes it.
///
/// Confined to the client's event loop: every method runs there (hence `@unchecked Sendable`:
/// the closures that capture it run on that loop too).
final class AlertOutbox: @unchecked Sendable {
    private enum Storage {
        /// Being written by the writer thread; not sent before it is durable.
        case writing
        case disk
        /// The disk refused it.
        case memory
    }

    private struct Entry {
        var item: SpoolItem
        var storage: Storage
        /// The spool file that holds it, when on disk.
        var file: String?
    }

    private let client: SocketIOClient
    private let spool: Spool
    private let writer: DiskWriter
    private let loop: any EventLoop
    private let logger: Logger
    private let retryDelay: TimeAmount
    private let namespaces: Set<String>
    /// The only configured namespace, when there is one (checked per alert without hashing).
    private let soleNamespace: String?
    /// Alerts kept in memory when the disk refuses them: at most this many, and this many bytes.
    let maxInMemory: Int
    let maxInMemoryBytes = 8 << 20
    private var queue: Deque<Entry> = []
    /// Undelivered alerts in each spool file; a file is deleted when none is left in it.
    private var fileCounts = SpoolFileCounts()
    private var connected: Set<String> = []
    /// Namespaces the server said it does not know.
    private var unknownToServer: Set<String> = []
    /// The sequence number of the spooled alert being sent.
    private var sending: UInt64?
    private var retry: Scheduled<Void>?
    private var persistRetry: Scheduled<Void>?
    /// Alerts handed to the client directly whose write has not completed yet.
    private var direct = InFlight<SpoolItem>()
    private var idleWaiters: [EventLoopPromise<Void>] = []
    /// Alerts in `failed/` (files there at start, plus those written since).
    private var failedKept = 0
    private let failedDropped = DropCounter()
    private let metrics: AgentMetrics?

    /// Reads the spool (at start, before the loop runs it: this blocks on the disk).
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
        let (items, corrupt) = spool.load()
        failedKept = listDirectory(spool.failedDirectory).count
        for (name, reason) in corrupt {
            logger.warning(
                "spool file is unreadable; moved to the corrupt directory",
                metadata: ["spool.file": "\(spool.directory)/\(name)", "spool.corrupt_dir": "\(spool.corruptDirectory)", "error": "\(reason)"])
        }
        var perFile: [String: Int] = [:]
        for item in items {
            let entry = Entry(item: item, storage: .disk, file: spool.fileNames[item.sequence])
            if let file = entry.file { perFile[file, default: 0] += 1 }
            queue.append(entry)
        }
        for (file, alerts) in perFile { fileCounts.loaded(file, alerts: alerts) }
        failAll(queue.compactMap { entry in permanentProblem(entry.item).map { (entry, $0) } })
        // A batch file keeps the alerts dropped while it was written: within spool.max_items again.
        let excess = queue.count - spool.maxItems
        if excess > 0 {
            for entry in queue.prefix(excess) { release(entry) }
            queue.removeFirst(excess)
            logger.warning("spool full; dropped the oldest alerts", metadata: ["spool.dropped": "\(excess)", "spool.max_items": "\(spool.maxItems)"])
        }
        if !queue.isEmpty {
            logger.info("alerts waiting in the spool", metadata: ["spool.count": "\(queue.count)"])
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
            keepFailed(item)
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
    /// start sends them; called at shutdown (the caller then waits for the writer).
    func persistInFlight() {
        loop.preconditionInEventLoop()
        for item in direct.removeAll() { store(item) }
        // The one being sent too: if its ack never comes, the next start sends it again.
        rewriteMemoryEntries(includingSending: true)
        // Nobody waits for what is in flight any more: it is on its way to the disk.
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

    // MARK: - Private

    /// Why `item` can never be delivered, or nil.
    private func permanentProblem(_ item: SpoolItem) -> String? {
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

    private func logFailed(_ item: SpoolItem, _ problem: String) {
        metrics?.action(index: 0, .failed)
        logger.error(
            "alert can never be delivered; moved to the failed directory",
            metadata: [
                "rule.id": "\(item.rule)", "emit.event": "\(item.event)", "emit.namespace": "\(item.namespace)",
                "spool.failed_dir": "\(spool.failedDirectory)", "error": "\(problem)",
            ])
    }

    /// Takes `entry` out of the queue for good: a copy goes to `failed/`.
    private func fail(_ entry: Entry, _ problem: String) {
        failAll([(entry, problem)])
    }

    /// ``fail(_:_:)`` for many entries, with one pass over the queue (a whole spool can fail at
    /// once: a namespace no longer configured, or one the server does not know).
    private func failAll(_ doomed: [(entry: Entry, problem: String)]) {
        guard !doomed.isEmpty else { return }
        let sequences = Set(doomed.map(\.entry.item.sequence))
        queue.removeAll { sequences.contains($0.item.sequence) }
        for (entry, problem) in doomed {
            logFailed(entry.item, problem)
            keepFailed(entry.item)
            release(entry)
        }
    }

    /// Writes a copy of a failed alert to `failed/`, which holds at most `spool.max_items` of them
    /// (counted from its files at start): beyond that the alert is only logged.
    private func keepFailed(_ item: SpoolItem) {
        guard failedKept < spool.maxItems else {
            if let count = failedDropped.dropped() {
                logger.error(
                    "the failed directory is full; failed alerts are logged only",
                    metadata: ["spool.failed_dir": "\(spool.failedDirectory)", "spool.max_items": "\(spool.maxItems)", "spool.dropped": "\(count)"])
            }
            return
        }
        failedKept += 1
        writer.submit(.store(directory: spool.failedDirectory, name: Spool.fileName(item.sequence), bytes: item.encoded(), done: { _ in }))
    }

    /// `entry` left the queue (delivered, failed, dropped): its file goes once it holds no other
    /// undelivered alert. The writer does jobs in order, so a copy written to `failed/` before is
    /// on disk by then.
    private func release(_ entry: Entry) {
        guard entry.storage == .disk, let file = entry.file else { return }
        if fileCounts.released(from: file) { writer.submit(.remove(path: spool.directory + "/" + file)) }
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
                    self.fail(Entry(item: item, storage: .memory, file: nil), problem)
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

    /// Queues a new alert and has the writer thread store it.
    private func store(_ item: SpoolItem) {
        metrics?.action(index: 0, .spooled)
        var item = item
        item.sequence = spool.takeSequence()
        queue.append(Entry(item: item, storage: .writing, file: nil))
        write(item)
        // Within spool.max_items: drop the oldest (never the one being sent).
        var excess = queue.count { $0.storage != .memory } - spool.maxItems
        if excess > 0 {
            var dropped = 0
            queue.removeAll { entry in
                guard excess > 0, entry.storage != .memory, entry.item.sequence != sending, entry.item.sequence != item.sequence else { return false }
                excess -= 1
                dropped += 1
                // One being written is released when its write completes.
                release(entry)
                return true
            }
            logger.warning(
                "spool full; dropped the oldest alerts",
                metadata: ["spool.dropped": "\(dropped)", "spool.max_items": "\(spool.maxItems)"])
        }
    }

    private func write(_ item: SpoolItem) {
        let sequence = item.sequence
        writer.submit(
            .store(
                directory: spool.directory, name: Spool.fileName(sequence), bytes: item.encoded(),
                done: { result in self.loop.execute { self.written(sequence, result) } }))
    }

    /// The writer thread stored an alert in `file` (error nil) or could not.
    private func written(_ sequence: UInt64, _ result: DiskWriter.StoreResult) {
        let file = result.file, error = result.error
        let i = queue.firstIndex(where: { $0.item.sequence == sequence })
        if error == nil, fileCounts.stored(in: file, holds: result.storesInFile, waiting: i != nil) {
            // Every alert of the file was dropped (spool full) or delivered while it was written.
            writer.submit(.remove(path: spool.directory + "/" + file))
        }
        guard let i else { return }
        if let error {
            queue[i].storage = .memory
            let item = queue[i].item
            logger.warning(
                isNoSpace(error.code)
                    ? "disk full; alert kept in memory until the disk takes it" : "cannot write the alert to the spool; kept in memory until the disk takes it",
                metadata: [
                    "rule.id": "\(item.rule)", "event.name": "\(item.event)", "error": "\(error)",
                    "spool.in_memory": "\(queue.count { $0.storage == .memory })", "spool.max_in_memory": "\(maxInMemory)",
                ])
            var excess = queue.count { $0.storage == .memory } - maxInMemory
            var excessBytes = queue.reduce(0) { $0 + ($1.storage == .memory ? $1.item.encoded().count : 0) } - maxInMemoryBytes
            if excess > 0 || excessBytes > 0 {
                queue.removeAll { entry in
                    guard excess > 0 || excessBytes > 0, entry.storage == .memory, entry.item.sequence != sending else { return false }
                    excess -= 1
                    excessBytes -= entry.item.encoded().count
                    return true
                }
                logger.warning("alerts kept in memory are too many; dropped the oldest", metadata: ["spool.max_in_memory": "\(maxInMemory)"])
            }
            schedulePersistRetry()
        } else {
            queue[i].storage = .disk
            queue[i].file = file
            // The server refused its namespace while it was being written.
            if let problem = permanentProblem(queue[i].item) { fail(queue[i], problem) }
        }
        pump()
    }

    private func schedulePersistRetry() {
        guard persistRetry == nil else { return }
        persistRetry = loop.scheduleTask(in: retryDelay) {
            self.persistRetry = nil
            self.rewriteMemoryEntries()
        }
    }

    /// Tries the disk again for the alerts it refused.
    private func rewriteMemoryEntries(includingSending: Bool = false) {
        for i in queue.indices where queue[i].storage == .memory && (includingSending || queue[i].item.sequence != sending) {
            queue[i].storage = .writing
            write(queue[i].item)
        }
    }

    /// The next alert to send: the oldest of a connected namespace whose older alerts are all
    /// ready too (stored or kept in memory).
    private func next() -> Entry? {
        var blocked: Set<String> = []
        for entry in queue {
            let ns = entry.item.namespace
            if blocked.contains(ns) { continue }
            if connected.contains(ns), entry.storage != .writing { return entry }
            blocked.insert(ns)
        }
        return nil
    }

    private func pump() {
        guard sending == nil, let head = next() else { return }
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
                self.release(index.map { self.queue.remove(at: $0) } ?? head)
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

/// Values in flight under increasing ids, mostly completed in order: a window over a deque
/// (no hashing per value). Its size is bounded by the oldest value not yet removed.
struct InFlight<Value> {
    private var base: UInt64 = 0
    private var slots: Deque<Value?> = []
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Adds `value`; returns its id.
    mutating func append(_ value: Value) -> UInt64 {
        slots.append(value)
        count += 1
        return base &+ UInt64(slots.count - 1)
    }

    /// Takes out the value of `id` (nil if it is not there, or was taken already).
    mutating func remove(_ id: UInt64) -> Value? {
        guard id >= base, id - base < UInt64(slots.count) else { return nil }
        let i = Int(id - base)
        guard let value = slots[i] else { return nil }
        slots[i] = nil
        count -= 1
        while let first = slots.first, first == nil {
            slots.removeFirst()
            base &+= 1
        }
        return value
    }

    /// Takes out every value, oldest first.
    mutating func removeAll() -> [Value] {
        let values = slots.compactMap { $0 }
        base &+= UInt64(slots.count)
        slots.removeAll()
        count = 0
        return values
    }
}
