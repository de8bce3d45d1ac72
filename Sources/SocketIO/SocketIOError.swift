import SIOCore

/// Errors of the Socket.IO client, each with a readable description.
public enum SocketIOError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The URL cannot be used (scheme, host or port).
    case invalidURL(String)
    /// The server refused the namespace (CONNECT_ERROR); `message` is the server's, `data` any extra.
    case connectionRefused(namespace: String, message: String, data: JSONValue?)
    /// The transport could not be opened or failed (refused TCP connection, TLS, HTTP status, ...).
    case transport(String)
    /// No connection within the allowed time.
    case connectTimeout
    /// No acknowledgement within the allowed time.
    case ackTimeout
    /// The emit was dropped from the full offline buffer.
    case bufferOverflow
    /// A `.direct` emit (``EmitDelivery/direct``) found its namespace not connected, or the
    /// transport's write backlog full: it was not sent and not kept.
    case notConnected(namespace: String)
    /// The client was closed (or the namespace disconnected for good) before the operation completed.
    case disconnected
    /// The event name is reserved by Socket.IO and cannot be emitted.
    case reservedEventName(String)
    /// A namespace that is not in the configuration.
    case unknownNamespace(String)
    /// The server sent something that does not follow the protocol.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .invalidURL(let s): return "invalid URL: \(s)"
        case .connectionRefused(let ns, let message, let data):
            var text = "connection to namespace \(ns) refused: \(message)"
            if let data { text += " (\(data.jsonString()))" }
            return text
        case .transport(let s): return "transport error: \(s)"
        case .connectTimeout: return "timed out while connecting"
        case .ackTimeout: return "timed out waiting for the acknowledgement"
        case .bufferOverflow: return "dropped from the full offline buffer"
        case .notConnected(let n): return "namespace \(n) is not connected; the emit was not sent"
        case .disconnected: return "the client is disconnected"
        case .reservedEventName(let n): return "'\(n)' is a reserved event name and cannot be emitted"
        case .unknownNamespace(let n): return "namespace \(n) is not configured"
        case .protocolViolation(let s): return "protocol error: \(s)"
        }
    }
}

/// Why a namespace was disconnected.
public enum DisconnectReason: String, Sendable, Equatable, CustomStringConvertible {
    /// The server disconnected the namespace on purpose (DISCONNECT packet).
    case serverDisconnect = "io server disconnect"
    /// The client disconnected (`disconnect()`).
    case clientDisconnect = "io client disconnect"
    /// No ping from the server within pingInterval + pingTimeout.
    case pingTimeout = "ping timeout"
    /// The server closed the Engine.IO session or the connection closed.
    case transportClose = "transport close"
    /// The transport failed (I/O error, HTTP error).
    case transportError = "transport error"
    /// The server sent data that could not be read.
    case parseError = "parse error"

    public var description: String { rawValue }
}

/// An event received from the server.
public struct SocketIOEvent: Sendable {
    public var namespace: String
    public var name: String
    /// The arguments, decoded when read: the client keeps the checked JSON text of an EVENT and
    /// decodes only what is asked for (``JSONArguments``).
    public var arguments: JSONArguments
    /// Non-nil when the server asked for an acknowledgement.
    public var ack: SocketIOAck?

    /// Every argument, decoded (exactly as the strict JSON parser reads them).
    public var args: [JSONValue] {
        get { arguments.values }
        set { arguments = JSONArguments(newValue) }
    }

    public init(namespace: String, name: String, args: [JSONValue], ack: SocketIOAck? = nil) {
        self.init(namespace: namespace, name: name, arguments: JSONArguments(args), ack: ack)
    }

    public init(namespace: String, name: String, arguments: JSONArguments, ack: SocketIOAck? = nil) {
        self.namespace = namespace
        self.name = name
        self.arguments = arguments
        self.ack = ack
    }

    /// `{"namespace":...,"event":...,"args":[...]}` — one JSON line as `sioagent listen` prints it.
    public var jsonLine: String {
        let value: JSONValue = ["namespace": .string(namespace), "event": .string(name), "args": .array(args)]
        return value.jsonString()
    }
}

/// What the hook and the `events` sequence deliver.
public enum SocketIOClientEvent: Sendable {
    case event(SocketIOEvent)
    case connect(namespace: String)
    case disconnect(namespace: String, reason: DisconnectReason)
    case connectError(namespace: String, error: SocketIOError)
    case reconnectAttempt(Int)
    case reconnect(attempt: Int)
    /// `reconnection.attempts` ran out. With `whenExhausted: .retrySlowly` the client keeps trying
    /// every `slowDelay`; with `.stop`, ``stopped(_:)`` follows.
    case reconnectFailed
    /// The client stopped for good rather than stay connected to nothing: attempts ran out, or the
    /// server disconnected every namespace, with `whenExhausted: .stop` (or, for the latter, with
    /// reconnection disabled). Nothing follows.
    case stopped(SocketIOError)
}

/// Event names that Socket.IO reserves; emitting them is refused.
public let socketIOReservedEventNames: Set<String> = [
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
]

/// Whether `name` is in ``socketIOReservedEventNames``. Checked per emit: the length rules out
/// most names without hashing.
public func isSocketIOReservedEventName(_ name: String) -> Bool {
    switch name.utf8.count {
    case 7, 10, 11, 13, 14: return socketIOReservedEventNames.contains(name)
    default: return false
    }
}
