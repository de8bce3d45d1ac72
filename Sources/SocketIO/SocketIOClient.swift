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
        onLoop(core.eventLoop) { core.value.sendAck(namespace: namespace, id: id, args: args, generation: generation) }
    }
}

/// Runs `body` on `loop`: at once when already there, else queued.
func onLoop(_ loop: any EventLoop, _ body: @escaping @Sendable () -> Void) {
    if loop.inEventLoop { body() } else { loop.execute(body) }
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
        onLoop(core.eventLoop) { core.value.shutdown(graceful: false) }
    }

    public var eventLoop: any EventLoop { core.eventLoop }

    /// A new sequence of the events from now on (each access makes a new subscriber; access it before
    /// `connect()` to see the first ones). It ends when the client is closed for good.
    public var events: AsyncStream<SocketIOClientEvent> { subscribers.subscribe() }

    /// Starts connecting (and reconnecting) in the background. Idempotent.
    public func connect() {
        let core = self.core
        onLoop(core.eventLoop) { core.value.connect() }
    }

    /// Waits until `namespace` is connected. Throws the server's refusal (CONNECT_ERROR) at once;
    /// transport failures are retried until `timeout`, after which the last error (or
    /// `.connectTimeout`) is thrown. With `failFast`, the first failure of any kind is thrown.
    public func waitUntilConnected(namespace: String = "/", timeout: Duration, failFast: Bool = false) async throws {
        let core = self.core
        let promise = core.eventLoop.makePromise(of: Void.self)
        onLoop(core.eventLoop) { core.value.addWaiter(namespace: namespace, timeout: timeout, failFast: failFast, promise: promise) }
        try await promise.futureResult.get()
    }

    /// Completes when the EVENT packet has been written to the transport. While disconnected the
    /// packet waits in the offline buffer; throws if it is dropped or the client is closed.
    public func emit(_ event: String, _ args: [JSONValue], namespace: String = "/") async throws {
        try await send(event, args, namespace: namespace).get()
    }

    /// Same as `emit`, without async: usable from the hook on the event loop.
    public func send(_ event: String, _ args: [JSONValue], namespace: String = "/") -> EventLoopFuture<Void> {
        let core = self.core
        let written = core.eventLoop.makePromise(of: Void.self)
        onLoop(core.eventLoop) {
            core.value.emit(name: event, args: args, namespace: namespace, written: written, ack: nil, ackTimeout: nil)
        }
        return written.futureResult
    }

    /// Emits and waits for the server's acknowledgement; throws `.ackTimeout` after `timeout`
    /// (counted from the call, offline time included) and `.disconnected` if the client is closed.
    public func emitWithAck(
        _ event: String, _ args: [JSONValue], namespace: String = "/", timeout: Duration
    ) async throws -> [JSONValue] {
        try await sendWithAck(event, args, namespace: namespace, timeout: timeout).get()
    }

    /// Same as `emitWithAck`, without async.
    public func sendWithAck(
        _ event: String, _ args: [JSONValue], namespace: String = "/", timeout: Duration
    ) -> EventLoopFuture<[JSONValue]> {
        let core = self.core
        let written = core.eventLoop.makePromise(of: Void.self)
        let ack = core.eventLoop.makePromise(of: [JSONValue].self)
        written.futureResult.whenFailure { _ in }  // the ack promise carries the outcome
        onLoop(core.eventLoop) {
            core.value.emit(name: event, args: args, namespace: namespace, written: written, ack: ack, ackTimeout: timeout)
        }
        return ack.futureResult
    }

    /// Clean close: DISCONNECT for each connected namespace, Engine.IO close, no more reconnecting.
    /// Pending emits and acks fail with `.disconnected`.
    public func disconnect() async {
        let core = self.core
        let done = core.eventLoop.makePromise(of: Void.self)
        onLoop(core.eventLoop) { core.value.shutdown(graceful: true).cascade(to: done) }
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

/// The client's state and logic, confined to its event loop (every method runs there).
final class ClientCore {
    private enum Phase { case idle, connecting, open, waiting, closed }

    private enum NamespaceStatus { case idle, connecting, connected, refused, kicked }

    private final class Namespace {
        let name: String
        let auth: JSONValue?
        var status = NamespaceStatus.idle
        var early = Deque<SocketIOEvent>()
        var earlyDropped = 0
        var retryTimer: Scheduled<Void>?
        var connectTimer: Scheduled<Void>?
        var refusals = 0
        var wasConnected = false

        init(name: String, auth: JSONValue?) {
            self.name = name
            self.auth = auth
        }
    }

    final class Emit {
        let seq: Int
        let namespace: String
        let name: String
        let args: [JSONValue]
        var ackId: Int?
        let written: EventLoopPromise<Void>
        var writtenDone = false
        var ack: EventLoopPromise<[JSONValue]>?
        var ackTimer: Scheduled<Void>?
        var inBuffer = false
        var finished = false

        init(seq: Int, namespace: String, name: String, args: [JSONValue], written: EventLoopPromise<Void>) {
            self.seq = seq
            self.namespace = namespace
            self.name = name
            self.args = args
            self.written = written
        }
    }

    private struct Waiter {
        var namespace: String
        var failFast: Bool
        var promise: EventLoopPromise<Void>
        var timer: Scheduled<Void>?
    }

    let loop: any EventLoop
    let configuration: SocketIOClientConfiguration
    private var logger: Logger
    private let hook: (@Sendable (SocketIOClientEvent) -> Void)?
    private let settings: Result<EngineSettings, SocketIOError>
    private let cookies = CookieStore()
    private let subscribers: EventSubscribers

    private var phase = Phase.idle
    private var engine: EngineSession?
    private(set) var generation = 0
    private var backoff: ReconnectBackoff
    private var stableTimer: Scheduled<Void>?
    private var slowTimer: Scheduled<Void>?
    private var connectTimer: Scheduled<Void>?
    private var reconnectTimer: Scheduled<Void>?
    private var namespaces: [String: Namespace] = [:]
    /// The only namespace, when there is one: found per packet without hashing its name.
    private var soleNamespace: Namespace?
    private var buffer: OfflineBuffer<Emit>
    private var acks = AckTable<Emit>()
    private var nextSeq = 0
    private var waiters: [Int: Waiter] = [:]
    private var nextWaiterId = 0
    private var assembler = SocketIOBinaryAssembler()
    private var lastError: SocketIOError?
    /// The Engine.IO revision of the next session: `auto` starts with 4 and keeps whatever the
    /// server last accepted, for every reconnect.
    private var revision: EngineIORevision
    /// Whether `auto` already switched revisions since the last open session (switch once, then
    /// back off like any failure).
    private var revisionSwitched = false

    init(configuration: SocketIOClientConfiguration, loop: any EventLoop, logger: Logger,
         hook: (@Sendable (SocketIOClientEvent) -> Void)?, subscribers: EventSubscribers) {
        self.loop = loop
        self.subscribers = subscribers
        self.configuration = configuration
        self.logger = logger
        self.hook = hook
        self.settings = Result { () throws(SocketIOError) in try Self.makeSettings(configuration) }
        self.revision = configuration.protocolVersion == .v3 ? .eio3 : .eio4
        self.backoff = ReconnectBackoff(policy: configuration.reconnection)
        self.buffer = OfflineBuffer(limit: configuration.offlineBufferLimit)
        for (name, auth) in configuration.namespaces {
            let name = Self.normalize(name)
            namespaces[name] = Namespace(name: name, auth: auth ?? nil)
        }
        if namespaces.isEmpty { namespaces["/"] = Namespace(name: "/", auth: nil) }
        if namespaces.count == 1 { soleNamespace = namespaces.values.first }
    }

    private func namespace(named name: String) -> Namespace? {
        if let only = soleNamespace { return only.name == name ? only : nil }
        return namespaces[name]
    }

    static func normalize(_ namespace: String) -> String {
        namespace.hasPrefix("/") ? namespace : "/" + namespace
    }

    private static func makeSettings(_ c: SocketIOClientConfiguration) throws(SocketIOError) -> EngineSettings {
        let url = try ServerURL(c.url)
        var sslContext: NIOSSLContext?
        if url.secure {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let caFile = c.tls.caFile { tls.trustRoots = .file(caFile) }
            if c.tls.insecure { tls.certificateVerification = .none }
            do {
                sslContext = try NIOSSLContext(configuration: tls)
            } catch {
                throw .transport("TLS setup failed: \(error)")
            }
        }
        var query: [String] = []
        if !url.query.isEmpty { query.append(url.query) }
        for (name, value) in c.query { query.append(percentEncodeQuery(name) + "=" + percentEncodeQuery(value)) }
        var path = c.path.isEmpty ? "/socket.io/" : c.path
        if !path.hasPrefix("/") { path = "/" + path }
        let connectTimeout = TimeAmount(saturating: c.connectTimeout)
        let proxy = try ProxyURL.resolve(c.proxy, for: url, environment: c.environment ?? processEnvironment())
        return EngineSettings(
            target: ConnectionTarget(url: url, sslContext: sslContext, connectTimeout: connectTimeout, proxy: proxy),
            path: path,
            mode: c.transports,
            baseQuery: query.joined(separator: "&"),
            headers: c.headers,
            upgradeTimeout: min(connectTimeout, .seconds(10)),
            payloadCeiling: max(c.maxPayloadCeiling, 1024)
        )
    }

    private func deliver(_ event: SocketIOClientEvent) {
        hook?(event)
        subscribers.yield(event)
    }

    private func finishSubscribers() {
        subscribers.finish()
    }

    // MARK: Connecting

    func connect() {
        guard phase == .idle else { return }
        switch settings {
        case .failure(let error):
            lastError = error
            for ns in namespaces.values { deliver(.connectError(namespace: ns.name, error: error)) }
            failWaiters(error)
            terminate(error: error)
        case .success(let settings):
            warnAboutSecurity(settings)
            startEngine()
        }
    }

    /// Warns once (per client) when certificates are not checked, or when credentials would
    /// travel in clear text.
    private func warnAboutSecurity(_ settings: EngineSettings) {
        if configuration.tls.insecure {
            logger.warning("tls.insecure is set: the server's certificate is not verified")
        }
        let credentialHeaders: Set<String> = ["authorization", "cookie", "proxy-authorization"]
        let sendsAuth = namespaces.values.contains { $0.auth != nil }
            || configuration.headers.contains { credentialHeaders.contains($0.name.lowercased()) }
        if !settings.target.url.secure && sendsAuth {
            logger.warning("credentials (namespace auth or an Authorization header) are sent over plain http/ws; use https/wss")
        }
    }

    private func startEngine() {
        guard case .success(var settings) = settings, phase != .closed else { return }
        settings.revision = revision
        if revision == .eio3 { settings.legacyAuthQuery = legacyAuthQuery() }
        generation += 1
        let generation = self.generation
        var engineLogger = logger
        engineLogger[metadataKey: "sio.attempt"] = "\(backoff.attempt)"
        let engine = EngineSession(loop: loop, settings: settings, cookies: cookies, logger: engineLogger)
        engine.onEvent = { [weak self] event in
            guard let self, self.generation == generation else { return }
            self.engineEvent(event)
        }
        self.engine = engine
        phase = .connecting
        connectTimer = loop.assumeIsolated().scheduleTask(in: settings.target.connectTimeout) { [self] in
            guard self.generation == generation, phase == .connecting else { return }
            engine.abort()
            engineClosed(reason: .transportError, detail: ConnectionErrorWording.handshakeTimeout(settings.target), sessionGone: false)
        }
        engine.open()
    }

    private func engineEvent(_ event: EngineSession.Event) {
        switch event {
        case .open(let handshake):
            connectTimer?.cancel()
            phase = .open
            logger[metadataKey: "eio.sid"] = "\(handshake.sid)"
            assembler.byteLimit = engine?.payloadLimit ?? configuration.maxPayloadCeiling
            if backoff.attempt > 0 { deliver(.reconnect(attempt: backoff.attempt)) }
            lastError = nil
            revisionSwitched = false
            for ns in namespaces.values.sorted(by: { $0.name < $1.name }) where ns.status != .kicked {
                // Socket.IO v2: the server connects `/` by itself and sends its CONNECT.
                sendConnect(ns, implicit: revision == .eio3 && ns.name == "/")
            }
        case .packet(let packet):
            receive(packet)
        case .closed(let reason, let detail, let sessionGone):
            engineClosed(reason: reason, detail: detail, sessionGone: sessionGone)
        case .refused(let refusal):
            handshakeRefused(refusal)
        case .drained:
            // The transport takes writes again: what waited in the buffer goes first.
            for ns in namespaces.values.sorted(by: { $0.name < $1.name }) where ns.status == .connected {
                flushBuffer(namespace: ns.name)
            }
        }
    }

    /// The handshake got an HTTP error. With `protocol: auto`, the server's "unsupported version"
    /// answer switches to the other Engine.IO revision at once; python-socketio 4.x refuses `/` with
    /// a 401 whose body is the refusal; anything else is a failed attempt.
    private func handshakeRefused(_ refusal: HandshakeRefusal) {
        if configuration.protocolVersion == .auto, !revisionSwitched,
            EngineIO3Codec.isUnsupportedVersionAnswer(status: refusal.status, body: refusal.body) {
            let refused = revision
            revision = refused.other
            revisionSwitched = true
            logger.info("the server does not speak \(refused); trying \(revision)", metadata: ["answer": "\(refusal.shortBody)"])
            engine = nil
            connectTimer?.cancel()
            startEngine()
            return
        }
        if refusal.status == 401, revision == .eio3 {
            let answer = (try? JSONValue(parsing: Array(refusal.body.utf8))) ?? .string(refusal.body)
            let (message, data) = SocketIO2.refusal(answer)
            engineClosed(reason: .transportError, detail: refusal.description, sessionGone: false,
                         error: .connectionRefused(namespace: "/", message: message, data: data))
            return
        }
        engineClosed(reason: .transportError, detail: refusal.description, sessionGone: false)
    }

    /// Engine.IO 3: every namespace's auth as query parameters of the Engine.IO URL (`/` first,
    /// each parameter once), where python-socketio 4.x reads it.
    private func legacyAuthQuery() -> String {
        var parameters: [(name: String, value: String)] = []
        for ns in namespaces.values.sorted(by: { $0.name < $1.name }) {
            for p in SocketIO2.queryParameters(ns.auth) where !parameters.contains(where: { $0 == p }) {
                parameters.append(p)
            }
        }
        return SocketIO2.queryString(parameters)
    }

    /// Sends the namespace CONNECT and waits for the answer. `implicit`: the server connects the
    /// namespace by itself (`/` on Socket.IO v2), so only the answer is awaited.
    private func sendConnect(_ ns: Namespace, implicit: Bool = false) {
        guard phase == .open, let engine else { return }
        ns.status = .connecting
        ns.early = []
        ns.earlyDropped = 0
        ns.connectTimer?.cancel()
        let generation = self.generation
        ns.connectTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(saturating: configuration.connectTimeout)) { [self] in
            guard self.generation == generation, ns.status == .connecting else { return }
            connectFailed(ns, error: .connectTimeout, message: "no answer to the namespace CONNECT", refused: false)
        }
        if implicit {
            logger.debug("waiting for the server to connect the namespace", metadata: ["sio.namespace": "\(ns.name)"])
            return
        }
        if revision == .eio3 {
            // Socket.IO v2: no CONNECT payload; the auth rides as a query after the namespace.
            let text = ns.name == "/" ? Array("40".utf8) : SocketIO2.connectPacket(namespace: ns.name, auth: ns.auth, prefix: UInt8(ascii: "4"))
            engine.send([OutgoingFrame(bytes: text, isBinary: false)], promise: nil)
        } else {
            let encoded = SocketIOCodec.encode(SocketIOPacket(.connect, namespace: ns.name, data: ns.auth), prefix: UInt8(ascii: "4"))
            engine.send(frames(encoded), promise: nil)
        }
        logger.debug("connecting namespace", metadata: ["sio.namespace": "\(ns.name)"])
    }

    /// The session ended or could not open. `refusal`: the server refused the connection (reported
    /// instead of a transport error, and to every waiter at once).
    private func engineClosed(reason: DisconnectReason, detail: String, sessionGone: Bool, error refusal: SocketIOError? = nil) {
        let wasOpen = phase == .open
        engine = nil
        connectTimer?.cancel()
        stableTimer?.cancel()
        stableTimer = nil
        assembler.reset()
        guard phase != .closed else { return }
        phase = .waiting
        if wasOpen {
            logger.info("connection lost", metadata: ["reason": "\(reason)", "detail": "\(detail)"])
        } else {
            logger.info("connection attempt failed", metadata: ["detail": "\(detail)"])
        }
        let error = refusal ?? SocketIOError.transport(detail)
        for ns in namespaces.values.sorted(by: { $0.name < $1.name }) {
            ns.retryTimer?.cancel()
            ns.connectTimer?.cancel()
            ns.early = []
            if ns.status == .connected {
                deliver(.disconnect(namespace: ns.name, reason: reason))
            }
            if ns.status != .kicked { ns.status = .idle }
            if !wasOpen && ns.status != .kicked {
                deliver(.connectError(namespace: ns.name, error: error))
            }
        }
        if !wasOpen {
            lastError = error
            failWaiters(error, onlyFailFast: refusal == nil)
        }
        // Emits written on the lost session and still waiting for an ack are sent again.
        for e in acks.elements where !e.inBuffer && !e.finished { enqueue(e, warnOnOverflow: true) }
        scheduleReconnect(immediate: sessionGone && wasOpen)
    }

    private func scheduleReconnect(immediate: Bool) {
        let policy = configuration.reconnection
        guard phase != .closed else { return }
        guard policy.enabled else {
            terminate(error: lastError ?? .disconnected)
            return
        }
        let wasExhausted = backoff.exhausted
        switch backoff.next(immediate: immediate, random: Double.random(in: 0..<1)) {
        case .stop:
            logger.error("giving up reconnecting; stopping", metadata: ["attempts": "\(policy.attempts)"])
            deliver(.reconnectFailed)
            stop(error: lastError ?? .disconnected)
        case .retry(let attempt, let delay, let slow):
            if slow && !wasExhausted {
                logger.warning("reconnection attempts used up; retrying on the slow path", metadata: [
                    "attempts": "\(policy.attempts)", "delay": "\(delay)",
                ])
                deliver(.reconnectFailed)
            }
            logger.debug("reconnecting", metadata: ["attempt": "\(attempt)", "delay": "\(delay)"])
            reconnectTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(saturating: delay)) { [self] in
                guard phase == .waiting else { return }
                deliver(.reconnectAttempt(attempt))
                startEngine()
            }
        }
    }

    /// Stops for good on the client's own decision (``SocketIOClientEvent/stopped(_:)``).
    private func stop(error: SocketIOError) {
        guard phase != .closed else { return }
        deliver(.stopped(error))
        shutdown(graceful: true)
    }

    // MARK: Receiving

    private func receive(_ packet: EngineIOPacket) {
        if packet.isBinary {
            do {
                if let complete = try assembler.add(packet.payload) { handle(complete) }
            } catch {
                logger.warning("ignoring binary data", metadata: ["error": "\(error)"])
            }
            return
        }
        let decoded: SocketIOPacket
        do {
            decoded = try packet.payload.withUnsafeBytes { bytes throws(SocketIOParseError) in try SocketIOCodec.decode(bytes) }
        } catch {
            // Socket.IO v2 ERROR packets may carry a list or nothing.
            guard revision == .eio3, let legacy = SocketIO2.decodeError(packet.payload) else {
                logger.warning("ignoring a malformed packet", metadata: ["error": "\(error)"])
                return
            }
            decoded = legacy
        }
        if assembler.isAssembling {
            logger.warning("a text packet arrived while binary attachments were expected; dropping the binary packet")
            assembler.reset()
        }
        if decoded.type == .binaryEvent || decoded.type == .binaryAck {
            do {
                if let complete = try assembler.start(decoded) { handle(complete) }
            } catch {
                logger.warning("ignoring a malformed binary packet", metadata: ["error": "\(error)"])
            }
            return
        }
        handle(decoded)
    }

    private func handle(_ packet: SocketIOPacket) {
        guard let ns = namespace(named: packet.namespace) else {
            logger.debug("ignoring a packet for an unknown namespace", metadata: ["sio.namespace": "\(packet.namespace)"])
            return
        }
        switch packet.type {
        case .event, .binaryEvent:
            guard case .array(let array) = packet.data, let first = array.first else { return }
            let name = first.stringValue ?? first.description
            var ack: SocketIOAck?
            if let id = packet.id {
                ack = SocketIOAck(responder: AckResponder(core: NIOLoopBound(self, eventLoop: loop), namespace: ns.name, id: id, generation: generation))
            }
            let event = SocketIOEvent(namespace: ns.name, name: name, args: Array(array.dropFirst()), ack: ack)
            switch ns.status {
            case .connected: deliver(.event(event))
            case .connecting:  // python sends connect-handler events before the CONNECT reply
                ns.early.append(event)
                if ns.early.count > max(configuration.earlyEventLimit, 0) {
                    ns.early.removeFirst()
                    if ns.earlyDropped == 0 {
                        logger.warning("too many events before the namespace CONNECT reply; dropping the oldest", metadata: [
                            "sio.namespace": "\(ns.name)", "limit": "\(configuration.earlyEventLimit)",
                        ])
                    }
                    ns.earlyDropped += 1
                }
            default: logger.debug("ignoring an event for a namespace that is not connected", metadata: ["sio.namespace": "\(ns.name)"])
            }
        case .ack, .binaryAck:
            guard let id = packet.id, let e = acks[id], e.namespace == ns.name else {
                logger.debug("ignoring an unknown ack", metadata: ["sio.namespace": "\(ns.name)", "id": "\(packet.id ?? -1)"])
                return
            }
            acks.resolve(id)
            e.ackTimer?.cancel()
            e.finished = true
            if e.inBuffer { removeFromBuffer(e) }
            if !e.writtenDone {
                e.writtenDone = true
                e.written.succeed()
            }
            e.ack?.succeed(packet.data?.arrayValue ?? [])
        case .connect:
            guard ns.status == .connecting else { return }
            ns.connectTimer?.cancel()
            ns.status = .connected
            ns.wasConnected = true
            logger.info("namespace connected", metadata: ["sio.namespace": "\(ns.name)", "sio.sid": "\(packet.data?["sid"]?.stringValue ?? "")"])
            armStability()
            // What waited in the offline buffer goes out before the hook hears of the connection,
            // so an emit made from the `connect` hook follows the older ones.
            flushBuffer(namespace: ns.name)
            deliver(.connect(namespace: ns.name))
            let early = ns.early
            ns.early = []
            for event in early where ns.status == .connected { deliver(.event(event)) }
            succeedWaiters(namespace: ns.name)
        case .connectError:
            guard ns.status == .connecting else { return }
            let (message, data) = SocketIO2.refusal(packet.data)
            connectFailed(ns, error: .connectionRefused(namespace: ns.name, message: message, data: data), message: "namespace refused", refused: true)
        case .disconnect:
            guard ns.status == .connected || ns.status == .connecting else { return }
            ns.status = .kicked
            ns.connectTimer?.cancel()
            ns.early = []
            if !namespaces.values.contains(where: { $0.status == .connected }) {
                // The stable period counts only while some namespace is connected.
                stableTimer?.cancel()
                stableTimer = nil
            }
            logger.info("namespace disconnected by the server", metadata: ["sio.namespace": "\(ns.name)"])
            deliver(.disconnect(namespace: ns.name, reason: .serverDisconnect))
            if configuration.reconnection.enabled && configuration.reconnection.reconnectAfterServerDisconnect {
                retryNamespace(ns)
            } else {
                failEmits(namespace: ns.name, error: .disconnected)
                failWaiters(.disconnected, namespace: ns.name)
                if namespaces.values.allSatisfy({ $0.status == .kicked }) {
                    everyNamespaceKicked()
                }
            }
        }
    }

    /// A namespace CONNECT was refused or not answered in time: reported, then retried later.
    /// A refusal fails every waiter of the namespace; a timeout only those that asked to fail fast.
    private func connectFailed(_ ns: Namespace, error: SocketIOError, message: String, refused: Bool) {
        ns.status = .refused
        ns.connectTimer?.cancel()
        ns.early = []
        lastError = error
        logger.info("\(message)", metadata: ["sio.namespace": "\(ns.name)", "error": "\(error)"])
        deliver(.connectError(namespace: ns.name, error: error))
        failWaiters(error, namespace: ns.name, onlyFailFast: !refused)
        retryNamespace(ns)
    }

    /// Every namespace was disconnected by the server (and `reconnectAfterServerDisconnect` is
    /// off): rather than stay connected to nothing, connect them again on the slow path, or stop.
    private func everyNamespaceKicked() {
        let policy = configuration.reconnection
        guard policy.enabled, policy.whenExhausted == .retrySlowly else {
            logger.error("every namespace was disconnected by the server; stopping")
            stop(error: .disconnected)
            return
        }
        let delay = max(policy.slowDelay, ReconnectBackoff.minimumRepeatDelay)
        logger.warning("every namespace was disconnected by the server; connecting them again later", metadata: ["delay": "\(delay)"])
        slowTimer?.cancel()
        slowTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(saturating: delay)) { [self] in
            guard phase != .closed else { return }
            for ns in namespaces.values.sorted(by: { $0.name < $1.name }) where ns.status == .kicked {
                ns.status = .idle
                if phase == .open { sendConnect(ns) }
            }
        }
    }

    /// Resets the reconnection counts once a namespace has stayed connected for a while.
    private func armStability() {
        guard stableTimer == nil, let engine else { return }
        let period = ReconnectBackoff.stabilityPeriod(pingInterval: engine.handshake?.pingInterval ?? 25_000)
        let generation = self.generation
        stableTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(saturating: period)) { [self] in
            guard self.generation == generation, phase == .open else { return }
            guard namespaces.values.contains(where: { $0.status == .connected }) else {
                stableTimer = nil
                return
            }
            backoff.stable()
            // A namespace that stayed connected starts its CONNECT retries over too (a server
            // that accepts and kicks at once keeps seeing them slow down).
            for ns in namespaces.values where ns.status == .connected { ns.refusals = 0 }
        }
    }

    /// Sends CONNECT again later (a refused, unanswered or kicked namespace), never sooner than
    /// a second; when the attempts run out, on the slow path or not at all (`whenExhausted`).
    private func retryNamespace(_ ns: Namespace) {
        let policy = configuration.reconnection
        guard policy.enabled else { return }
        if ns.refusals < Int.max { ns.refusals += 1 }
        var delay = max(policy.delay(forAttempt: ns.refusals), .seconds(1))
        if policy.attempts > 0 && ns.refusals > policy.attempts {
            if policy.whenExhausted == .stop {
                if !namespaces.values.contains(where: { $0.status == .connected }) {
                    logger.error("namespace CONNECT attempts used up and no namespace is connected; stopping", metadata: ["sio.namespace": "\(ns.name)"])
                    stop(error: lastError ?? .disconnected)
                }
                return
            }
            delay = max(policy.slowDelay, .seconds(1))
        }
        ns.retryTimer?.cancel()
        ns.retryTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(saturating: delay)) { [self] in
            guard phase == .open, ns.status == .refused || ns.status == .kicked else { return }
            sendConnect(ns)
        }
    }

    // MARK: Sending

    private func frames(_ encoded: EncodedSocketIOPacket) -> [OutgoingFrame] {
        var frames = [OutgoingFrame(bytes: encoded.text, isBinary: false)]
        for a in encoded.attachments { frames.append(OutgoingFrame(bytes: a, isBinary: true)) }
        return frames
    }

    func emit(name: String, args: [JSONValue], namespace: String, written: EventLoopPromise<Void>,
              ack: EventLoopPromise<[JSONValue]>?, ackTimeout: Duration?) {
        func refuse(_ error: SocketIOError) {
            written.fail(error)
            ack?.fail(error)
        }
        guard !isSocketIOReservedEventName(name) else { return refuse(.reservedEventName(name)) }
        guard let ns = self.namespace(named: Self.normalize(namespace)) else { return refuse(.unknownNamespace(namespace)) }
        guard phase != .closed else { return refuse(.disconnected) }
        if ns.status == .kicked && !(configuration.reconnection.enabled && configuration.reconnection.reconnectAfterServerDisconnect) {
            return refuse(.disconnected)
        }
        let e = Emit(seq: nextSeq, namespace: ns.name, name: name, args: args, written: written)
        nextSeq += 1
        if let ack, let ackTimeout {
            let id = acks.register(e)
            e.ackId = id
            e.ack = ack
            e.ackTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(saturating: ackTimeout)) { [self] in
                guard acks[id] === e else { return }
                acks.resolve(id)
                e.finished = true
                if e.inBuffer { removeFromBuffer(e) }
                if !e.writtenDone {
                    e.writtenDone = true
                    e.written.fail(SocketIOError.ackTimeout)
                }
                e.ack?.fail(SocketIOError.ackTimeout)
            }
        }
        if ns.status == .connected, phase == .open, let engine, engine.hasRoom,
            buffer.isEmpty || !buffer.contains(namespace: ns.name) {
            write(e)
        } else {
            enqueue(e, warnOnOverflow: true)
        }
    }

    private func write(_ e: Emit) {
        guard let engine else {
            enqueue(e, warnOnOverflow: true)
            return
        }
        var data: [JSONValue] = [.string(e.name)]
        data.append(contentsOf: e.args)
        let encoded = SocketIOCodec.encode(
            SocketIOPacket(.event, namespace: e.namespace, id: e.ackId, data: .array(data)),
            prefix: UInt8(ascii: "4")
        )
        let promise = loop.makePromise(of: Void.self)
        engine.send(frames(encoded), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success:
                if !e.writtenDone {
                    e.writtenDone = true
                    e.written.succeed()
                }
            case .failure:
                // The session ended before the packet was written: keep it for the next one.
                if !e.finished && !e.inBuffer {
                    if phase == .closed {
                        finish(e, .disconnected)
                    } else {
                        enqueue(e, warnOnOverflow: true)
                    }
                }
            }
        }
    }

    /// Puts an emit into the offline buffer, in emit order; drops the oldest beyond the limit.
    private func enqueue(_ e: Emit, warnOnOverflow: Bool) {
        e.inBuffer = true
        if let dropped = buffer.insert(e, seq: e.seq, namespace: e.namespace) {
            dropped.inBuffer = false
            logger.warning("offline buffer full; dropping the oldest emit", metadata: [
                "sio.namespace": "\(dropped.namespace)", "event": "\(dropped.name)",
                "limit": "\(configuration.offlineBufferLimit)",
            ])
            finish(dropped, .bufferOverflow)
        }
    }

    private func removeFromBuffer(_ e: Emit) {
        buffer.remove(seq: e.seq)
        e.inBuffer = false
    }

    private func finish(_ e: Emit, _ error: SocketIOError) {
        e.finished = true
        e.ackTimer?.cancel()
        if let id = e.ackId, acks[id] === e { acks.resolve(id) }
        if !e.writtenDone {
            e.writtenDone = true
            e.written.fail(error)
        }
        e.ack?.fail(error)
    }

    /// Writes the buffered emits of `namespace`, in order, as far as the transport takes them;
    /// the rest goes when the engine reports `.drained`.
    private func flushBuffer(namespace: String) {
        guard let engine, buffer.contains(namespace: namespace) else { return }
        let send = buffer.take(namespace: namespace)
        logger.debug("sending buffered emits", metadata: ["sio.namespace": "\(namespace)", "count": "\(send.count)"])
        for e in send {
            e.inBuffer = false
            if engine.hasRoom {
                write(e)
            } else {
                enqueue(e, warnOnOverflow: true)
            }
        }
    }

    private func failEmits(namespace: String, error: SocketIOError) {
        let failing = buffer.take(namespace: namespace)
        for e in failing {
            e.inBuffer = false
            finish(e, error)
        }
        for e in acks.elements where e.namespace == namespace { finish(e, error) }
    }

    func sendAck(namespace: String, id: Int, args: [JSONValue], generation: Int) {
        guard generation == self.generation, phase == .open, let engine else {
            logger.debug("dropping an ack reply for a closed session", metadata: ["sio.namespace": "\(namespace)"])
            return
        }
        let encoded = SocketIOCodec.encode(SocketIOPacket(.ack, namespace: namespace, id: id, data: .array(args)), prefix: UInt8(ascii: "4"))
        engine.send(frames(encoded), promise: nil)
    }

    // MARK: Waiting

    func addWaiter(namespace: String, timeout: Duration, failFast: Bool, promise: EventLoopPromise<Void>) {
        let name = Self.normalize(namespace)
        guard let ns = namespaces[name] else { return promise.fail(SocketIOError.unknownNamespace(namespace)) }
        if ns.status == .connected { return promise.succeed() }
        guard phase != .closed else { return promise.fail(lastError ?? SocketIOError.disconnected) }
        let id = nextWaiterId
        nextWaiterId += 1
        let timer = loop.assumeIsolated().scheduleTask(in: TimeAmount(saturating: timeout)) { [self] in
            guard let w = waiters.removeValue(forKey: id) else { return }
            w.promise.fail(lastError ?? SocketIOError.connectTimeout)
        }
        waiters[id] = Waiter(namespace: name, failFast: failFast, promise: promise, timer: timer)
    }

    private func succeedWaiters(namespace: String) {
        for (id, w) in waiters where w.namespace == namespace {
            waiters[id] = nil
            w.timer?.cancel()
            w.promise.succeed()
        }
    }

    private func failWaiters(_ error: SocketIOError, namespace: String? = nil, onlyFailFast: Bool = false) {
        for (id, w) in waiters where (namespace == nil || w.namespace == namespace) && (!onlyFailFast || w.failFast) {
            waiters[id] = nil
            w.timer?.cancel()
            w.promise.fail(error)
        }
    }

    // MARK: Closing

    /// Stops for good: fails what waits, ends the event sequences.
    private func terminate(error: SocketIOError) {
        guard phase != .closed else { return }
        phase = .closed
        connectTimer?.cancel()
        reconnectTimer?.cancel()
        stableTimer?.cancel()
        slowTimer?.cancel()
        for ns in namespaces.values {
            ns.retryTimer?.cancel()
            ns.connectTimer?.cancel()
        }
        let pending = buffer.removeAll()
        for e in pending {
            e.inBuffer = false
            finish(e, .disconnected)
        }
        for e in acks.elements { finish(e, .disconnected) }
        failWaiters(error)
        finishSubscribers()
    }

    @discardableResult
    func shutdown(graceful: Bool) -> EventLoopFuture<Void> {
        guard phase != .closed else { return loop.makeSucceededVoidFuture() }
        var closing = loop.makeSucceededVoidFuture()
        if let engine {
            if graceful && phase == .open {
                for ns in namespaces.values.sorted(by: { $0.name < $1.name }) where ns.status == .connected {
                    let encoded = SocketIOCodec.encode(SocketIOPacket(.disconnect, namespace: ns.name), prefix: UInt8(ascii: "4"))
                    engine.send(frames(encoded), promise: nil)
                    ns.status = .idle
                    deliver(.disconnect(namespace: ns.name, reason: .clientDisconnect))
                }
                closing = engine.close()
            } else {
                engine.abort()
            }
        }
        engine = nil
        terminate(error: .disconnected)
        return closing
    }
}

extension SocketIOClient {
    /// The transport of the open Engine.IO session (`"websocket"` or `"polling"`), nil while
    /// not connected. Read it on ``eventLoop`` (e.g. from the event hook).
    public var currentTransport: String? {
        core.value.currentTransport
    }
}

extension ClientCore {
    var currentTransport: String? { engine.flatMap { $0.isOpen ? $0.transportName : nil } }
}
