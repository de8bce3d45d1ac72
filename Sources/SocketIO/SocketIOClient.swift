import DequeModule
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Answers an event for which the server asked an acknowledgement. Only the first `reply` counts.
public struct SocketIOAck: Sendable {
    let responder: AckResponder

    /// Sends the ACK packet with `args` (only the first call is sent).
    public func reply(_ args: [JSONValue]) {
        responder.reply(args)
    }
}

final class AckResponder: Sendable {
    let core: NIOLoopBound<ClientCore>
    let namespace: String
    let id: Int
    let generation: Int
    let replied = Atomic<Bool>(false)

    init(core: NIOLoopBound<ClientCore>, namespace: String, id: Int, generation: Int) {
        self.core = core
        self.namespace = namespace
        self.id = id
        self.generation = generation
    }

    func reply(_ args: [JSONValue]) {
        guard replied.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        let (core, namespace, id, generation) = (self.core, self.namespace, self.id, self.generation)
        let body: @Sendable () -> Void = { core.value.sendAck(namespace: namespace, id: id, args: args, generation: generation) }
        if core.eventLoop.inEventLoop { core.value.run(body) } else { core.eventLoop.execute { core.value.run(body) } }
    }
}

/// Runs `body` on the core's loop as one input of the core: at once when already there and no
/// other input is being handled; after that input when one is (the hook calling `send`); queued on
/// the loop from elsewhere.
func enter(_ core: NIOLoopBoundBox<ClientCore>, _ body: @escaping @Sendable () -> Void) {
    if core.eventLoop.inEventLoop { core.value.run(body) } else { core.eventLoop.execute { core.value.run(body) } }
}

/// What the client does with an emit it cannot write now.
public enum EmitDelivery: Sendable, Equatable {
    /// The client owns delivery: while the namespace is not connected (or the transport's write
    /// backlog is full) the emit waits in the offline buffer (`offlineBufferLimit`, oldest dropped
    /// first), and an emit still waiting for its ack when the connection is lost is sent again
    /// on the next one.
    case buffered
    /// The caller owns delivery (e.g. a queue of its own with retries and a spool): the emit is
    /// written once, on the current connection, or not at all. It fails at once with
    /// ``SocketIOError/notConnected(namespace:)`` while the namespace is not connected or the
    /// write backlog is full, and with ``SocketIOError/disconnected`` when the connection (or
    /// the namespace) is lost before it was written or, for an emit with an ack, acknowledged.
    /// It never enters the offline buffer and is never sent twice by the client.
    case direct
}

/// A Socket.IO v5 client (Engine.IO v4: polling, WebSocket, upgrade) with reconnection and an
/// offline buffer. Thread-safe: every method may be called from anywhere. All connections, timers
/// and the event hook run on one event loop, so the hook sees events serially, in order.
public final class SocketIOClient: Sendable {
    /// The state, reachable only on its event loop (checked on each access).
    let core: NIOLoopBoundBox<ClientCore>
    let subscribers: EventSubscribers

    /// All connections, timers and the hook run on `eventLoop`. `onEvent` is called synchronously
    /// on that loop for every event (keep it short; it may call `send` directly).
    public init(
        configuration: SocketIOClientConfiguration,
        eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
        logger: Logger,
        onEvent: (@Sendable (SocketIOClientEvent) -> Void)? = nil
    ) {
        let subscribers = EventSubscribers()
        self.subscribers = subscribers
        let core = ClientCore(configuration: configuration, loop: eventLoop, logger: logger, hook: onEvent, subscribers: subscribers)
        self.core = NIOLoopBoundBox.makeBoxSendingValue(core, eventLoop: eventLoop)
    }

    deinit {
        let core = self.core
        enter(core) { core.value.shutdown(graceful: false) }
    }

    public var eventLoop: any EventLoop { core.eventLoop }

    /// A new sequence of the events from now on (each access makes a new subscriber; access it before
    /// `connect()` to see the first ones). It ends when the client is closed for good.
    public var events: AsyncStream<SocketIOClientEvent> { subscribers.subscribe() }

    /// Starts connecting (and reconnecting) in the background. Idempotent.
    public func connect() {
        let core = self.core
        enter(core) { core.value.connect() }
    }

    /// Waits until `namespace` is connected. Throws the server's refusal (CONNECT_ERROR) at once;
    /// transport failures are retried until `timeout`, after which the last error (or
    /// `.connectTimeout`) is thrown. With `failFast`, the first failure of any kind is thrown.
    public func waitUntilConnected(namespace: String = "/", timeout: Duration, failFast: Bool = false) async throws {
        let core = self.core
        let promise = core.eventLoop.makePromise(of: Void.self)
        enter(core) { core.value.addWaiter(namespace: namespace, timeout: timeout, failFast: failFast, promise: promise) }
        try await promise.futureResult.get()
    }

    /// Completes when the EVENT packet has been written to the transport. With `.buffered` (the
    /// default) the packet waits in the offline buffer while disconnected; throws if it is dropped
    /// or the client is closed. With `.direct` it throws `.notConnected` at once instead (see
    /// ``EmitDelivery``).
    public func emit(_ event: String, _ args: [JSONValue], namespace: String = "/", delivery: EmitDelivery = .buffered) async throws {
        try await send(event, args, namespace: namespace, delivery: delivery).get()
    }

    /// Same as `emit`, without async: usable from the hook on the event loop.
    public func send(_ event: String, _ args: [JSONValue], namespace: String = "/", delivery: EmitDelivery = .buffered) -> EventLoopFuture<Void> {
        let core = self.core
        let written = core.eventLoop.makePromise(of: Void.self)
        enter(core) {
            core.value.emit(name: event, args: args, namespace: namespace, written: written, ack: nil, ackTimeout: nil, delivery: delivery)
        }
        return written.futureResult
    }

    /// A `.direct` emit without an ack (see ``EmitDelivery``) for a caller that waits on no
    /// future (the agent's outbox): `written` is called on the event loop with its outcome, once:
    /// success when the packet was written; `.notConnected` at once while the namespace is not
    /// connected (or the write backlog is full), `.disconnected` when the connection is lost
    /// before it was written, or why the client refused it. No promise is made for it.
    public func sendDirect(
        _ event: String, _ args: [JSONValue], namespace: String = "/", written: @escaping @Sendable (Result<Void, SocketIOError>) -> Void
    ) {
        let core = self.core
        enter(core) { core.value.emitOnce(name: event, args: args, namespace: namespace, written: written) }
    }

    /// Emits and waits for the server's acknowledgement; throws `.ackTimeout` after `timeout`
    /// (counted from the call, offline time included) and `.disconnected` if the client is closed.
    /// With `.direct`, also `.notConnected` at once, and `.disconnected` as soon as the connection
    /// that carried it is lost (see ``EmitDelivery``).
    public func emitWithAck(
        _ event: String, _ args: [JSONValue], namespace: String = "/", timeout: Duration, delivery: EmitDelivery = .buffered
    ) async throws -> [JSONValue] {
        try await sendWithAck(event, args, namespace: namespace, timeout: timeout, delivery: delivery).get()
    }

    /// Same as `emitWithAck`, without async.
    public func sendWithAck(
        _ event: String, _ args: [JSONValue], namespace: String = "/", timeout: Duration, delivery: EmitDelivery = .buffered
    ) -> EventLoopFuture<[JSONValue]> {
        let core = self.core
        let written = core.eventLoop.makePromise(of: Void.self)
        let ack = core.eventLoop.makePromise(of: [JSONValue].self)
        written.futureResult.whenFailure { _ in }  // the ack promise carries the outcome
        enter(core) {
            core.value.emit(name: event, args: args, namespace: namespace, written: written, ack: ack, ackTimeout: timeout, delivery: delivery)
        }
        return ack.futureResult
    }

    /// Clean close: DISCONNECT for each connected namespace, Engine.IO close, no more reconnecting.
    /// Pending emits and acks fail with `.disconnected`.
    public func disconnect() async {
        let core = self.core
        let done = core.eventLoop.makePromise(of: Void.self)
        enter(core) { core.value.shutdown(graceful: true).cascade(to: done) }
        try? await done.futureResult.get()
    }
}

/// The subscribers of `SocketIOClient.events`, reachable from any thread.
final class EventSubscribers: Sendable {
    private struct State {
        var continuations: [Int: AsyncStream<SocketIOClientEvent>.Continuation] = [:]
        var nextId = 0
        var finished = false
    }

    private let state = Mutex(State())
    private let any = Atomic<Bool>(false)

    func subscribe() -> AsyncStream<SocketIOClientEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: SocketIOClientEvent.self)
        let id: Int? = state.withLock { s in
            if s.finished { return nil }
            let id = s.nextId
            s.nextId += 1
            s.continuations[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        any.store(true, ordering: .releasing)
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    func yield(_ event: SocketIOClientEvent) {
        guard any.load(ordering: .acquiring) else { return }
        state.withLock { s in
            for c in s.continuations.values { c.yield(event) }
        }
    }

    func finish() {
        let continuations = state.withLock { s in
            s.finished = true
            let c = s.continuations
            s.continuations = [:]
            return c
        }
        for c in continuations.values { c.finish() }
    }
}

extension SocketIOClient {
    /// The transport of the open Engine.IO session (`"websocket"` or `"polling"`), nil while
    /// not connected. Read it on ``eventLoop`` (e.g. from the event hook).
    public var currentTransport: String? {
        core.value.currentTransport
    }
}


