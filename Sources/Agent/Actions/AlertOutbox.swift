import DequeModule
import Logging
import NIOCore
import SocketIO

/// Delivers `emit` actions in order and never loses one it accepted.
///
/// While the namespace is connected and nothing waits before it, an alert without `ack` goes
/// straight to the client. Otherwise — disconnected, alerts already waiting, or an `ack` that
/// must be awaited — it is first written to the disk spool, and leaves it only once sent (with
/// `ack`: acknowledged). Waiting alerts go out one at a time, oldest first, as soon as their
/// namespace is connected, also after the agent restarts. A failed attempt (no ack in time, the
/// connection lost) is retried after a pause or on the next connect.
///
/// Confined to the client's event loop: every method runs there (hence `@unchecked Sendable`:
/// the closures that capture it run on that loop too).
final class AlertOutbox: @unchecked Sendable {
    private let client: SocketIOClient
    private let spool: Spool
    private let loop: any EventLoop
    private let logger: Logger
    private let retryDelay: TimeAmount
    private var queue: Deque<SpoolItem> = []
    private var connected: Set<String> = []
    private var sending = false
    private var retry: Scheduled<Void>?
    /// Alerts handed to the client directly whose write has not completed yet.
    private var direct: [UInt64: SpoolItem] = [:]
    private var nextDirectID: UInt64 = 0
    private var idleWaiters: [EventLoopPromise<Void>] = []

    init(client: SocketIOClient, spool: Spool, logger: Logger, retryDelay: Duration) {
        self.client = client
        self.spool = spool
        self.loop = client.eventLoop
        self.logger = logger
        self.retryDelay = TimeAmount(retryDelay)
        let (items, skipped) = spool.load()
        for name in skipped {
            logger.error("spool file is unreadable; left in place", metadata: ["spool.file": "\(spool.directory)/\(name)"])
        }
        queue.append(contentsOf: items)
        if !items.isEmpty {
            logger.info("alerts waiting in the spool", metadata: ["spool.count": "\(items.count)"])
        }
    }

    /// Alerts not yet delivered (on disk, or handed to the client and not yet written).
    var pending: Int { queue.count + direct.count }

    func enqueue(_ item: SpoolItem) {
        loop.preconditionInEventLoop()
        if item.ackTimeout == nil, queue.isEmpty, connected.contains(item.namespace) {
            sendDirectly(item)
        } else {
            store(item)
            pump()
        }
    }

    func connectionChanged(namespace: String, connected isUp: Bool) {
        loop.preconditionInEventLoop()
        if isUp {
            connected.insert(namespace)
            pump()
        } else {
            connected.remove(namespace)
        }
    }

    /// Writes every alert still in the client's hands to the spool, so that the next start sends
    /// them; called at shutdown.
    func persistInFlight() {
        loop.preconditionInEventLoop()
        let items = direct.sorted { $0.key < $1.key }.map(\.value)
        direct.removeAll()
        for item in items { store(item) }
    }

    /// Completes when nothing is being sent (queued alerts may remain, safely on disk).
    func waitUntilIdle() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        if !sending, direct.isEmpty { return loop.makeSucceededVoidFuture() }
        let promise = loop.makePromise(of: Void.self)
        idleWaiters.append(promise)
        return promise.futureResult
    }

    private func sendDirectly(_ item: SpoolItem) {
        let id = nextDirectID
        nextDirectID += 1
        direct[id] = item
        client.send(item.event, item.args, namespace: item.namespace).hop(to: loop).whenComplete { result in
            // Already persisted at shutdown, or delivered.
            guard let item = self.direct.removeValue(forKey: id) else { return }
            switch result {
            case .success:
                self.logger.debug("alert sent", metadata: ["rule.id": "\(item.rule)", "event.name": "\(item.event)"])
            case .failure(let error):
                self.logger.warning(
                    "alert not sent; kept in the spool",
                    metadata: ["rule.id": "\(item.rule)", "event.name": "\(item.event)", "error": "\(error)"])
                self.store(item)
                self.pump()
            }
            self.notifyIfIdle()
        }
    }

    private func store(_ item: SpoolItem) {
        do {
            let (stored, dropped) = try spool.append(item)
            queue.append(stored)
            if !dropped.isEmpty {
                queue.removeAll { dropped.contains($0.sequence) }
                logger.warning(
                    "spool full; dropped the oldest alerts",
                    metadata: ["spool.dropped": "\(dropped.count)", "spool.max_items": "\(spool.maxItems)"])
            }
        } catch {
            // The disk refused; keep it in memory rather than lose it now.
            logger.error("cannot write the alert to the spool; kept in memory only", metadata: ["error": "\(error)"])
            var memoryOnly = item
            memoryOnly.sequence = 0
            queue.append(memoryOnly)
        }
    }

    private func pump() {
        guard !sending, let head = queue.first, connected.contains(head.namespace) else { return }
        retry?.cancel()
        retry = nil
        sending = true
        let attempt: EventLoopFuture<Void>
        if let timeout = head.ackTimeout {
            let client = self.client
            attempt = loop.makeFutureWithTask {
                _ = try await client.emitWithAck(head.event, head.args, namespace: head.namespace, timeout: timeout)
            }
        } else {
            attempt = client.send(head.event, head.args, namespace: head.namespace)
        }
        attempt.hop(to: loop).whenComplete { result in
            self.sending = false
            switch result {
            case .success:
                if self.queue.first?.sequence == head.sequence { self.queue.removeFirst() }
                if head.sequence != 0 { self.spool.remove(head.sequence) }
                self.logger.info(
                    head.ackTimeout == nil ? "spooled alert sent" : "spooled alert acknowledged",
                    metadata: ["rule.id": "\(head.rule)", "event.name": "\(head.event)", "spool.left": "\(self.queue.count)"])
                self.pump()
            case .failure(let error):
                self.logger.warning(
                    "alert not delivered; kept in the spool",
                    metadata: ["rule.id": "\(head.rule)", "event.name": "\(head.event)", "error": "\(error)"])
                // Still connected (e.g. no ack in time): try again after a pause. Otherwise the
                // next connect restarts the pump.
                if self.connected.contains(head.namespace) {
                    self.retry = self.loop.scheduleTask(in: self.retryDelay) {
                        self.retry = nil
                        self.pump()
                    }
                }
            }
            self.notifyIfIdle()
        }
    }

    private func notifyIfIdle() {
        guard !sending, direct.isEmpty, !idleWaiters.isEmpty else { return }
        let waiters = idleWaiters
        idleWaiters.removeAll()
        for w in waiters { w.succeed() }
    }
}
