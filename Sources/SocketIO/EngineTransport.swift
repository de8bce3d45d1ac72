import NIOCore
import NIOHTTP1

/// What a transport received: one WebSocket message, or one long-polling response body (a
/// payload of one or more packets, in the session's Engine.IO revision).
enum TransportMessage {
    case text(ByteBuffer)
    case binary(ByteBuffer)
    case payload(ByteBuffer)
}

/// The two ways to carry Engine.IO packets.
enum TransportKind: String, Sendable {
    case polling
    case websocket
}

/// Why a transport ended on its own (not after `close` or `detachAndClose`).
struct TransportClosure: Sendable {
    var detail: String
    var reason: DisconnectReason = .transportClose
    /// The server no longer knows the session (a polling request answered 400).
    var sessionGone = false

    init(_ detail: String, reason: DisconnectReason = .transportClose, sessionGone: Bool = false) {
        self.detail = detail
        self.reason = reason
        self.sessionGone = sessionGone
    }
}

/// How the requests of an open session are addressed: a polling transport asks for a fresh URI
/// (with the sid and a cache-busting `t`) and headers (cookies as they are now) per request.
typealias TransportRequestHead = (_ post: Bool) -> (uri: String, headers: HTTPHeaders)

/// The transport an `EngineSession` drives, whichever it is: the WebSocket
/// (`WebSocketConnection`), long-polling (`PollingTransport`), or one end of an
/// `InMemoryTransport` pair in tests, which can stand in for either.
///
/// Writes are packets (text: the type digit and payload; binary: the data as carried). A
/// message transport sends each as one message; polling gathers what was written until `flush`
/// into POST bodies. `isWritable` going false is how either says "enough for now": the session
/// keeps the rest in its write backlog until `onWritable`.
///
/// Every member is used on the transport's event loop only. Calls go through the existential
/// (a witness-table call); nothing is boxed per frame.
protocol EngineTransport: AnyObject {
    var kind: TransportKind { get }
    /// Called for each message or polling body received, on the loop.
    var onFrame: ((TransportMessage) -> Void)? { get set }
    /// Called once when the transport is gone (not after `close`/`detachAndClose`), on the loop.
    var onClose: ((TransportClosure) -> Void)? { get set }
    /// Called when the transport takes writes again after `isWritable` was false.
    var onWritable: (() -> Void)? { get set }
    /// Whether a write now goes out without piling up (NIO's water marks for a channel; for
    /// polling: no POST in flight and the next one not full yet).
    var isWritable: Bool { get }

    /// Connects (polling: sends the handshake GET, whose body then arrives through `onFrame`);
    /// succeeds once messages can flow, fails with `HandshakeRefusal` when the server answered
    /// with an HTTP error.
    func open(uri: String, headers: HTTPHeaders) -> EventLoopFuture<Void>
    /// The handshake was accepted. A polling transport takes the session's payload limit and
    /// request addressing and, unless `paused` (an upgrade probe runs), starts polling.
    func sessionOpened(_ handshake: EngineIOHandshake, maxMessageSize: Int, request: @escaping TransportRequestHead, paused: Bool)
    /// The upgrade probe failed: a paused polling transport starts polling and sending.
    func resume()
    /// Writes a text packet (not flushed unless `flush`).
    func sendText(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?)
    /// Writes a binary packet (not flushed unless `flush`).
    func sendBinary(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?)
    func flush()
    /// Closes the connection (politely where the protocol allows); `onClose` is not called for it.
    func close()
    /// Drops the callbacks, then closes.
    func detachAndClose()
}

extension EngineTransport {
    /// A message transport needs nothing from the handshake.
    func sessionOpened(_ handshake: EngineIOHandshake, maxMessageSize: Int, request: @escaping TransportRequestHead, paused: Bool) {}
    func resume() {}
}

/// Makes a transport of `kind` for a session: `maxMessageSize` is the largest message or
/// polling body accepted until the handshake says otherwise.
typealias EngineTransportFactory = (_ kind: TransportKind, _ maxMessageSize: Int) -> any EngineTransport
