import NIOCore
import NIOHTTP1

/// A message a transport received: one WebSocket message, or one in-memory message.
enum TransportMessage {
    case text(ByteBuffer)
    case binary(ByteBuffer)
}

/// The message transport an `EngineSession` talks to once frames flow one by one: the WebSocket
/// (`WebSocketConnection`), or one end of an `InMemoryTransport` pair in tests. Long-polling is
/// request/response and stays in `HTTPLane` (see EngineSession+Polling.swift).
///
/// Every member is used on the transport's event loop only. Calls go through the existential
/// (a witness-table call); nothing is boxed per frame.
protocol EngineTransport: AnyObject {
    /// Called for each message received, on the loop.
    var onFrame: ((TransportMessage) -> Void)? { get set }
    /// Called once when the connection is gone (not after `detachAndClose`), on the loop.
    var onClose: ((String) -> Void)? { get set }
    /// Called when the transport takes writes again after `isWritable` was false.
    var onWritable: (() -> Void)? { get set }
    /// Whether a write now goes out without piling up (NIO's water marks for a channel).
    var isWritable: Bool { get }

    /// Connects; succeeds once messages can flow, fails with `HandshakeRefusal` when the server
    /// answered the upgrade with an HTTP error.
    func open(uri: String, headers: HTTPHeaders) -> EventLoopFuture<Void>
    /// Writes a text message (not flushed unless `flush`).
    func sendText(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?)
    /// Writes a binary message (not flushed unless `flush`).
    func sendBinary(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?)
    func flush()
    /// Closes the connection (politely where the protocol allows); `onClose` is not called for it.
    func close()
    /// Drops the callbacks, then closes.
    func detachAndClose()
}

/// Makes the message transport of a session: `maxMessageSize` is the largest message accepted.
typealias EngineTransportFactory = (_ maxMessageSize: Int) -> any EngineTransport

/// Two connected ends of a message transport on one event loop, without sockets: what one end
/// sends, the other receives on a later loop tick (never inside the sender's call, so nothing is
/// re-entered). `client` is what the session opens; `server` is driven by the test. Used on the
/// loop only (checked).
final class InMemoryTransport: EngineTransport {
    let loop: any EventLoop
    private weak var peer: InMemoryTransport?
    private var closed = false
    var onFrame: ((TransportMessage) -> Void)?
    var onClose: ((String) -> Void)?
    var onWritable: (() -> Void)?
    /// Server end: called when the client end opens, with the request's URI and headers.
    var onOpen: ((String, HTTPHeaders) -> Void)?
    /// Server end: when set, the next `open` of the client end fails with it.
    var refusal: (any Error)?
    /// Set by the test to model backpressure; going back to true calls `onWritable`.
    var isWritable = true {
        didSet { if isWritable, !oldValue { onWritable?() } }
    }
    /// This end was closed (by itself or by its peer).
    var isClosed: Bool { closed }

    private init(loop: any EventLoop) {
        self.loop = loop
    }

    /// A connected pair: the client end (give it to the session) and the server end.
    static func pair(on loop: any EventLoop) -> (client: InMemoryTransport, server: InMemoryTransport) {
        let client = InMemoryTransport(loop: loop)
        let server = InMemoryTransport(loop: loop)
        client.peer = server
        server.peer = client
        return (client, server)
    }

    func open(uri: String, headers: HTTPHeaders) -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        let promise = loop.makePromise(of: Void.self)
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.execute {
            let me = bound.value
            guard let peer = me.peer, !me.closed, !peer.closed else {
                promise.fail(SocketIOError.transport("connection refused"))
                return
            }
            if let refusal = peer.refusal {
                peer.refusal = nil
                promise.fail(refusal)
                return
            }
            promise.succeed()
            peer.onOpen?(uri, headers)
        }
        return promise.futureResult
    }

    func sendText(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?) {
        deliver(bytes, binary: false, promise: promise)
    }

    func sendBinary(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?) {
        deliver(bytes, binary: true, promise: promise)
    }

    /// Test helper for the server end: sends a text message.
    func sendText(_ text: String) {
        sendText(Array(text.utf8), flush: true, promise: nil)
    }

    private func deliver(_ bytes: [UInt8], binary: Bool, promise: EventLoopPromise<Void>?) {
        loop.preconditionInEventLoop()
        guard !closed else {
            promise?.fail(SocketIOError.transport("connection closed"))
            return
        }
        let buffer = ByteBuffer(bytes: bytes)
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.execute {
            promise?.succeed()
            guard let peer = bound.value.peer, !peer.closed else { return }
            peer.onFrame?(binary ? .binary(buffer) : .text(buffer))
        }
    }

    func flush() {}

    func close() {
        loop.preconditionInEventLoop()
        guard !closed else { return }
        closed = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.execute {
            guard let peer = bound.value.peer, !peer.closed else { return }
            peer.closed = true
            let callback = peer.onClose
            peer.onClose = nil
            peer.onFrame = nil
            peer.onWritable = nil
            callback?("connection closed")
        }
    }

    func detachAndClose() {
        onClose = nil
        onFrame = nil
        onWritable = nil
        close()
    }
}
