import NIOCore
import NIOHTTP1

/// Two connected ends of a transport on one event loop, without sockets: what one end sends,
/// the other receives on a later loop tick (never inside the sender's call, so nothing is
/// re-entered). `client` is what the session opens; `server` is driven by the test. Used on the
/// loop only (checked).
///
/// A `.websocket` pair carries one message per packet. A `.polling` pair stands in for
/// long-polling: the client end gathers what is written until `flush` into payloads cut as
/// `PollingTransport` cuts its POST bodies (one in flight at a time, accepted when the server
/// end receives it), and the server end answers with whole payloads (`sendPayload`).
final class InMemoryTransport: EngineTransport {
    let loop: any EventLoop
    let kind: TransportKind
    /// The end the session opens (a polling client end gathers its writes into payloads).
    let isClient: Bool
    private weak var peer: InMemoryTransport?
    private var closed = false
    private var writer: PollingWriter
    var onFrame: ((TransportMessage) -> Void)?
    var onClose: ((TransportClosure) -> Void)?
    var onWritable: (() -> Void)?
    /// Server end: called when the client end opens, with the request's URI and headers.
    var onOpen: ((String, HTTPHeaders) -> Void)?
    /// Server end: when set, the next `open` of the client end fails with it.
    var refusal: (any Error)?
    /// Client end: the session's handshake reached it (polling: with `paused` while probing).
    private(set) var sessionPaused: Bool?
    /// Set by the test to model backpressure; going back to true calls `onWritable`.
    private var blocked = false {
        didSet { if !blocked, oldValue { onWritable?() } }
    }
    var isWritable: Bool {
        get { !blocked && (kind == .websocket || !isClient || (sessionPaused == false && writer.isWritable)) }
        set { blocked = !newValue }
    }
    /// This end was closed (by itself or by its peer).
    var isClosed: Bool { closed }

    private init(loop: any EventLoop, kind: TransportKind, revision: EngineIORevision, isClient: Bool) {
        self.loop = loop
        self.kind = kind
        self.isClient = isClient
        self.writer = PollingWriter(revision: revision)
    }

    /// A connected pair: the client end (give it to the session) and the server end.
    static func pair(on loop: any EventLoop, kind: TransportKind = .websocket,
                     revision: EngineIORevision = .eio4) -> (client: InMemoryTransport, server: InMemoryTransport) {
        let client = InMemoryTransport(loop: loop, kind: kind, revision: revision, isClient: true)
        let server = InMemoryTransport(loop: loop, kind: kind, revision: revision, isClient: false)
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

    func sessionOpened(_ handshake: EngineIOHandshake, maxMessageSize: Int, request: @escaping TransportRequestHead, paused: Bool) {
        writer.byteLimit = min(handshake.maxPayload, 60_000)
        sessionPaused = paused
        if !paused { flush() }
    }

    func resume() {
        guard sessionPaused == true else { return }
        sessionPaused = false
        flush()
    }

    func sendText(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?) {
        write(OutgoingFrame(bytes: bytes, isBinary: false), flush: flush, promise: promise)
    }

    func sendBinary(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?) {
        write(OutgoingFrame(bytes: bytes, isBinary: true), flush: flush, promise: promise)
    }

    /// Test helper for the server end: sends a text message.
    func sendText(_ text: String) {
        sendText(Array(text.utf8), flush: true, promise: nil)
    }

    /// Test helper for the server end of a polling pair: answers a poll with this payload.
    func sendPayload(_ text: String) {
        deliver(.payload(ByteBuffer(string: text)), promise: nil)
    }

    private func write(_ frame: OutgoingFrame, flush: Bool, promise: EventLoopPromise<Void>?) {
        loop.preconditionInEventLoop()
        guard !closed else {
            promise?.fail(SocketIOError.transport("connection closed"))
            return
        }
        guard kind == .polling, isClient else {
            let buffer = ByteBuffer(bytes: frame.bytes)
            return deliver(frame.isBinary ? .binary(buffer) : .text(buffer), promise: promise)
        }
        writer.append(frame, promise: promise)
        if flush { self.flush() }
    }

    private func deliver(_ message: TransportMessage, promise: EventLoopPromise<Void>?) {
        loop.preconditionInEventLoop()
        guard !closed else {
            promise?.fail(SocketIOError.transport("connection closed"))
            return
        }
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.execute {
            promise?.succeed()
            guard let peer = bound.value.peer, !peer.closed else { return }
            peer.onFrame?(message)
        }
    }

    /// Polling client end: sends the next payload once the session is open, as a POST would be.
    func flush() {
        guard kind == .polling, isClient, !closed, sessionPaused == false, let body = writer.nextBatch() else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.execute {
            let me = bound.value
            guard !me.closed else { return }
            for promise in me.writer.accepted() { promise.succeed() }
            if let peer = me.peer, !peer.closed { peer.onFrame?(.payload(ByteBuffer(bytes: body))) }
            guard !me.closed else { return }
            if me.writer.isEmpty {
                if !me.blocked { me.onWritable?() }
            } else {
                me.flush()
            }
        }
    }

    func close() {
        loop.preconditionInEventLoop()
        guard !closed else { return }
        closed = true
        for promise in writer.removeAll() { promise.fail(SocketIOError.transport("connection closed")) }
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.execute {
            guard let peer = bound.value.peer, !peer.closed else { return }
            peer.closed = true
            let callback = peer.onClose
            peer.onClose = nil
            peer.onFrame = nil
            peer.onWritable = nil
            callback?(TransportClosure("connection closed"))
        }
    }

    func detachAndClose() {
        onClose = nil
        onFrame = nil
        onWritable = nil
        close()
    }
}
