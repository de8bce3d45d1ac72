import SIOCore

/// Which Engine.IO transports the client uses.
public enum TransportMode: String, Sendable, CaseIterable {
    /// HTTP long-polling first, then an upgrade to WebSocket when the server offers it (the default).
    case auto
    /// WebSocket only; polling is never used.
    case websocket
    /// HTTP long-polling only.
    case polling
}

/// TLS settings for `https` and `wss` URLs.
public struct TLSOptions: Sendable, Equatable {
    /// A PEM file (or directory) of CA certificates to trust instead of the system roots.
    public var caFile: String?
    /// Skips certificate and host name verification. Only for tests and trusted networks.
    public var insecure: Bool

    public init(caFile: String? = nil, insecure: Bool = false) {
        self.caFile = caFile
        self.insecure = insecure
    }
}

/// When and how fast to reconnect, like socket.io-client: the n-th delay is
/// `min(delay * 2^(n-1), maxDelay)`, spread by ± `randomization` of itself.
public struct ReconnectionPolicy: Sendable, Equatable {
    /// Whether the client reconnects at all (default true).
    public var enabled: Bool
    /// First delay (default 1 s).
    public var delay: Duration
    /// Largest delay (default 5 s).
    public var maxDelay: Duration
    /// Random spread, 0...1 (default 0.5).
    public var randomization: Double
    /// Attempts before giving up; 0 means forever (default 0).
    public var attempts: Int
    /// Whether a namespace that the server disconnected on purpose is connected again (default false).
    public var reconnectAfterServerDisconnect: Bool
    /// What happens when `attempts` run out, or when the server disconnected every namespace
    /// (default `.retrySlowly`).
    public var whenExhausted: WhenExhausted
    /// The delay of the slow path (default 60 s).
    public var slowDelay: Duration

    /// What the client does rather than sit connected to nothing.
    public enum WhenExhausted: String, Sendable, Equatable, CaseIterable {
        /// Keeps trying, every `slowDelay` (the default).
        case retrySlowly = "retry"
        /// Stops for good and reports ``SocketIOClientEvent/stopped(_:)``, so a supervisor
        /// (systemd) can restart the process.
        case stop = "exit"
    }

    public init(
        enabled: Bool = true,
        delay: Duration = .seconds(1),
        maxDelay: Duration = .seconds(5),
        randomization: Double = 0.5,
        attempts: Int = 0,
        reconnectAfterServerDisconnect: Bool = false,
        whenExhausted: WhenExhausted = .retrySlowly,
        slowDelay: Duration = .seconds(60)
    ) {
        self.enabled = enabled
        self.delay = delay
        self.maxDelay = maxDelay
        self.randomization = randomization
        self.attempts = attempts
        self.reconnectAfterServerDisconnect = reconnectAfterServerDisconnect
        self.whenExhausted = whenExhausted
        self.slowDelay = slowDelay
    }

    /// The delay before attempt `attempt` (1-based), given a random number in 0..<1.
    public func delay(forAttempt attempt: Int, random: Double = Double.random(in: 0..<1)) -> Duration {
        let base = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
        let cap = Double(maxDelay.components.seconds) + Double(maxDelay.components.attoseconds) / 1e18
        var seconds = base * pow2(max(0, min(attempt &- 1, 30)))
        if randomization > 0 {
            let deviation = random * randomization * seconds
            seconds = (Int(random * 10).isMultiple(of: 2)) ? seconds - deviation : seconds + deviation
        }
        if !seconds.isFinite { seconds = cap }
        seconds = min(max(seconds, 0), max(cap, 0), 86_400 * 365)
        return .nanoseconds(Int64(seconds * 1e9))
    }

    private func pow2(_ n: Int) -> Double { Double(1 << n) }
}

/// Everything the client needs to know before connecting. Every field has a documented default.
public struct SocketIOClientConfiguration: Sendable {
    /// Server URL: `http`, `https`, `ws` or `wss`, may carry a query (kept and sent on every request).
    public var url: String
    /// Engine.IO path (default `/socket.io/`).
    public var path: String
    /// Transports (default `.auto`: polling, then upgrade to WebSocket).
    public var transports: TransportMode
    /// Namespaces to connect, each with its auth payload (nil = none), re-sent on every reconnect.
    /// Default `["/": nil]`.
    public var namespaces: [String: JSONValue?]
    /// Extra HTTP headers sent with every request (both transports).
    public var headers: [(name: String, value: String)]
    /// Extra query parameters sent with every request.
    public var query: [(name: String, value: String)]
    /// TLS settings (default: system roots, full verification).
    public var tls: TLSOptions
    /// Reconnection (default: 1 s doubling to 5 s, ± 50 %, forever).
    public var reconnection: ReconnectionPolicy
    /// How many emits are kept while disconnected (default 1000); on overflow the oldest is dropped.
    public var offlineBufferLimit: Int
    /// Longest time for one connection attempt (TCP, TLS, handshake), and for the server's answer
    /// to a namespace CONNECT (default 20 s).
    public var connectTimeout: Duration
    /// The most bytes accepted in one polling response body, one WebSocket message (and frame) and
    /// the binary attachments of one packet, whatever the server's `maxPayload` says
    /// (default 1,000,000, like python-socketio's `max_http_buffer_size`).
    public var maxPayloadCeiling: Int
    /// Events kept for a namespace while its CONNECT reply is pending (default 100); beyond it the
    /// oldest is dropped with a warning.
    public var earlyEventLimit: Int
    /// Protocol generation (default `.auto`: Engine.IO 4, falling back to Engine.IO 3 / Socket.IO v2
    /// when the server refuses version 4).
    public var protocolVersion: ProtocolVersion = .auto
    /// The HTTP proxy (default: from `https_proxy`/`http_proxy`/`no_proxy`).
    public var proxy: ProxySetting = .environment
    /// The environment the proxy variables are read from (nil: the process environment).
    public var environment: [String: String]? = nil

    public init(
        url: String,
        path: String = "/socket.io/",
        transports: TransportMode = .auto,
        namespaces: [String: JSONValue?] = ["/": nil],
        headers: [(name: String, value: String)] = [],
        query: [(name: String, value: String)] = [],
        tls: TLSOptions = TLSOptions(),
        reconnection: ReconnectionPolicy = ReconnectionPolicy(),
        offlineBufferLimit: Int = 1000,
        connectTimeout: Duration = .seconds(20),
        maxPayloadCeiling: Int = 1_000_000,
        earlyEventLimit: Int = 100
    ) {
        self.url = url
        self.path = path
        self.transports = transports
        self.namespaces = namespaces
        self.headers = headers
        self.query = query
        self.tls = tls
        self.reconnection = reconnection
        self.offlineBufferLimit = offlineBufferLimit
        self.connectTimeout = connectTimeout
        self.maxPayloadCeiling = maxPayloadCeiling
        self.earlyEventLimit = earlyEventLimit
    }
}
