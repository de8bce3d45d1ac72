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
    let core: ClientCore
    let namespace: String
    let id: Int
    let generation: Int
    let replied = Atomic<Bool>(false)

    init(core: ClientCore, namespace: String, id: Int, generation: Int) {
        self.core = core
        self.namespace = namespace
        self.id = id
        self.generation = generation
    }

    func reply(_ args: [JSONValue]) {
        guard replied.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        let (core, namespace, id, generation) = (self.core, self.namespace, self.id, self.generation)
        core.onLoop { core.sendAck(namespace: namespace, id: id, args: args, generation: generation) }
    }
}

/// A Socket.IO v5 client (Engine.IO v4: polling, WebSocket, upgrade) with reconnection and an
/// offline buffer. Thread-safe: every method may be called from anywhere. All connections, timers
/// and the event hook run on one event loop, so the hook sees events serially, in order.
public final class SocketIOClient: Sendable {
    let core: ClientCore

    /// All connections, timers and the hook run on `eventLoop`. `onEvent` is called synchronously
    /// on that loop for every event (keep it short; it may call `send` directly).
    public init(
        configuration: SocketIOClientConfiguration,
        eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
        logger: Logger,
        onEvent: (@Sendable (SocketIOClientEvent) -> Void)? = nil
    ) {
        core = ClientCore(configuration: configuration, loop: eventLoop, logger: logger, hook: onEvent)
    }

    deinit {
        let core = self.core
        core.onLoop { core.shutdown(graceful: false) }
    }

    public var eventLoop: any EventLoop { core.loop }

    /// A new sequence of the events from now on (each access makes a new subscriber; access it before
    /// `connect()` to see the first ones). It ends when the client is closed for good.
    public var events: AsyncStream<SocketIOClientEvent> { core.subscribe() }

    /// Starts connecting (and reconnecting) in the background. Idempotent.
    public func connect() {
        let core = self.core
        core.onLoop { core.connect() }
    }

    /// Waits until `namespace` is connected. Throws the server's refusal (CONNECT_ERROR) at once;
    /// transport failures are retried until `timeout`, after which the last error (or
    /// `.connectTimeout`) is thrown. With `failFast`, the first failure of any kind is thrown.
    public func waitUntilConnected(namespace: String = "/", timeout: Duration, failFast: Bool = false) async throws {
        let core = self.core
        let promise = core.loop.makePromise(of: Void.self)
        core.onLoop { core.addWaiter(namespace: namespace, timeout: timeout, failFast: failFast, promise: promise) }
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
        let written = core.loop.makePromise(of: Void.self)
        core.onLoop {
            core.emit(name: event, args: args, namespace: namespace, written: written, ack: nil, ackTimeout: nil)
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
        let written = core.loop.makePromise(of: Void.self)
        let ack = core.loop.makePromise(of: [JSONValue].self)
        written.futureResult.whenFailure { _ in }  // the ack promise carries the outcome
        core.onLoop {
            core.emit(name: event, args: args, namespace: namespace, written: written, ack: ack, ackTimeout: timeout)
        }
        return ack.futureResult
    }

    /// Clean close: DISCONNECT for each connected namespace, Engine.IO close, no more reconnecting.
    /// Pending emits and acks fail with `.disconnected`.
    public func disconnect() async {
        let core = self.core
        let done = core.loop.makePromise(of: Void.self)
        core.onLoop { core.shutdown(graceful: true).cascade(to: done) }
        try? await done.futureResult.get()
    }
}

/// The client's state and logic, confined to its event loop (every method runs there).
final class ClientCore: @unchecked Sendable {
    private enum Phase { case idle, connecting, open, waiting, closed }

    private enum NamespaceStatus { case idle, connecting, connected, refused, kicked }

    private final class Namespace {
        let name: String
        let auth: JSONValue?
        var status = NamespaceStatus.idle
        var early: [SocketIOEvent] = []
        var retryTimer: Scheduled<Void>?
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

    private struct Subscribers {
        var continuations: [Int: AsyncStream<SocketIOClientEvent>.Continuation] = [:]
        var nextId = 0
        var finished = false
    }

    let loop: any EventLoop
    let configuration: SocketIOClientConfiguration
    private var logger: Logger
    private let hook: (@Sendable (SocketIOClientEvent) -> Void)?
    private let settings: Result<EngineSettings, SocketIOError>
    private let cookies = CookieStore()
    private let subscribers = Mutex(Subscribers())
    private let hasSubscribers = Atomic<Bool>(false)

    private var phase = Phase.idle
    private var engine: EngineSession?
    private(set) var generation = 0
    private var attempt = 0
    private var connectTimer: Scheduled<Void>?
    private var reconnectTimer: Scheduled<Void>?
    private var namespaces: [String: Namespace] = [:]
    private var buffer = Deque<Emit>()
    private var acks: [Int: Emit] = [:]
    private var nextAckId = 0
    private var nextSeq = 0
    private var waiters: [Int: Waiter] = [:]
    private var nextWaiterId = 0
    private var assembler = SocketIOBinaryAssembler()
    private var lastError: SocketIOError?

    init(configuration: SocketIOClientConfiguration, loop: any EventLoop, logger: Logger,
         hook: (@Sendable (SocketIOClientEvent) -> Void)?) {
        self.loop = loop
        self.configuration = configuration
        self.logger = logger
        self.hook = hook
        self.settings = Result { () throws(SocketIOError) in try Self.makeSettings(configuration) }
        for (name, auth) in configuration.namespaces {
            let name = Self.normalize(name)
            namespaces[name] = Namespace(name: name, auth: auth ?? nil)
        }
        if namespaces.isEmpty { namespaces["/"] = Namespace(name: "/", auth: nil) }
    }

    static func normalize(_ namespace: String) -> String {
        namespace.hasPrefix("/") ? namespace : "/" + namespace
    }

    private static func makeSettings(_ c: SocketIOClientConfiguration) throws(SocketIOError) -> EngineSettings {
        let url = try ServerURL(c.url)
        var sslContext: NIOSSLContext?
        if url.secure {
            var tls = TLSConfiguration.makeClientConfiguration()
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
        let connectTimeout = TimeAmount(c.connectTimeout)
        let proxy = try ProxyURL.resolve(c.proxy, for: url, environment: c.environment ?? processEnvironment())
        return EngineSettings(
            target: ConnectionTarget(url: url, sslContext: sslContext, connectTimeout: connectTimeout, proxy: proxy),
            path: path,
            mode: c.transports,
            baseQuery: query.joined(separator: "&"),
            headers: c.headers,
            upgradeTimeout: min(connectTimeout, .seconds(10))
        )
    }

    func onLoop(_ body: @escaping @Sendable () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }

    // MARK: Events out

    func subscribe() -> AsyncStream<SocketIOClientEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: SocketIOClientEvent.self)
        let id: Int? = subscribers.withLock { s in
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
        hasSubscribers.store(true, ordering: .releasing)
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    private func deliver(_ event: SocketIOClientEvent) {
        hook?(event)
        if hasSubscribers.load(ordering: .acquiring) {
            subscribers.withLock { s in
                for c in s.continuations.values { c.yield(event) }
            }
        }
    }

    private func finishSubscribers() {
        let continuations = subscribers.withLock { s in
            s.finished = true
            let c = s.continuations
            s.continuations = [:]
            return c
        }
        for c in continuations.values { c.finish() }
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
        case .success:
            startEngine()
        }
    }

    private func startEngine() {
        guard case .success(let settings) = settings, phase != .closed else { return }
        generation += 1
        let generation = self.generation
        var engineLogger = logger
        engineLogger[metadataKey: "sio.attempt"] = "\(attempt)"
        let engine = EngineSession(loop: loop, settings: settings, cookies: cookies, logger: engineLogger)
        engine.onEvent = { [unowned self] event in
            guard self.generation == generation else { return }
            self.engineEvent(event)
        }
        self.engine = engine
        phase = .connecting
        connectTimer = loop.assumeIsolated().scheduleTask(in: settings.target.connectTimeout) { [self] in
            guard self.generation == generation, phase == .connecting else { return }
            engine.abort()
            engineClosed(reason: .transportError, detail: "timed out while connecting", sessionGone: false)
        }
        engine.open()
    }

    private func engineEvent(_ event: EngineSession.Event) {
        switch event {
        case .open(let handshake):
            connectTimer?.cancel()
            phase = .open
            logger[metadataKey: "eio.sid"] = "\(handshake.sid)"
            if attempt > 0 { deliver(.reconnect(attempt: attempt)) }
            attempt = 0
            lastError = nil
            for ns in namespaces.values.sorted(by: { $0.name < $1.name }) where ns.status != .kicked {
                sendConnect(ns)
            }
        case .packet(let packet):
            receive(packet)
        case .closed(let reason, let detail, let sessionGone):
            engineClosed(reason: reason, detail: detail, sessionGone: sessionGone)
        }
    }

    private func sendConnect(_ ns: Namespace) {
        guard phase == .open, let engine else { return }
        ns.status = .connecting
        ns.early = []
        let encoded = SocketIOCodec.encode(SocketIOPacket(.connect, namespace: ns.name, data: ns.auth), prefix: UInt8(ascii: "4"))
        engine.send(frames(encoded), promise: nil)
        logger.debug("connecting namespace", metadata: ["sio.namespace": "\(ns.name)"])
    }

    private func engineClosed(reason: DisconnectReason, detail: String, sessionGone: Bool) {
        let wasOpen = phase == .open
        engine = nil
        connectTimer?.cancel()
        assembler.reset()
        guard phase != .closed else { return }
        phase = .waiting
        if wasOpen {
            logger.info("connection lost", metadata: ["reason": "\(reason)", "detail": "\(detail)"])
        } else {
            logger.info("connection attempt failed", metadata: ["detail": "\(detail)"])
        }
        let error = SocketIOError.transport(detail)
        for ns in namespaces.values.sorted(by: { $0.name < $1.name }) {
            ns.retryTimer?.cancel()
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
            failWaiters(error, onlyFailFast: true)
        }
        // Emits written on the lost session and still waiting for an ack are sent again.
        for e in acks.values where !e.inBuffer && !e.finished { enqueue(e, warnOnOverflow: true) }
        scheduleReconnect(immediate: sessionGone && wasOpen)
    }

    private func scheduleReconnect(immediate: Bool) {
        let policy = configuration.reconnection
        guard phase != .closed else { return }
        guard policy.enabled else {
            terminate(error: lastError ?? .disconnected)
            return
        }
        attempt += 1
        if policy.attempts > 0 && attempt > policy.attempts {
            logger.warning("giving up reconnecting", metadata: ["attempts": "\(policy.attempts)"])
            deliver(.reconnectFailed)
            terminate(error: lastError ?? .disconnected)
            return
        }
        let delay = immediate && attempt == 1 ? .zero : policy.delay(forAttempt: attempt)
        logger.debug("reconnecting", metadata: ["attempt": "\(attempt)", "delay": "\(delay)"])
        reconnectTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
            guard phase == .waiting else { return }
            deliver(.reconnectAttempt(attempt))
            startEngine()
        }
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
            logger.warning("ignoring a malformed packet", metadata: ["error": "\(error)"])
            return
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
        guard let ns = namespaces[packet.namespace] else {
            logger.debug("ignoring a packet for an unknown namespace", metadata: ["sio.namespace": "\(packet.namespace)"])
            return
        }
        switch packet.type {
        case .event, .binaryEvent:
            guard case .array(let array) = packet.data, let first = array.first else { return }
            let name = first.stringValue ?? first.description
            var ack: SocketIOAck?
            if let id = packet.id {
                ack = SocketIOAck(responder: AckResponder(core: self, namespace: ns.name, id: id, generation: generation))
            }
            let event = SocketIOEvent(namespace: ns.name, name: name, args: Array(array.dropFirst()), ack: ack)
            switch ns.status {
            case .connected: deliver(.event(event))
            case .connecting: ns.early.append(event)  // python sends connect-handler events before the CONNECT reply
            default: logger.debug("ignoring an event for a namespace that is not connected", metadata: ["sio.namespace": "\(ns.name)"])
            }
        case .ack, .binaryAck:
            guard let id = packet.id, let e = acks[id], e.namespace == ns.name else {
                logger.debug("ignoring an unknown ack", metadata: ["sio.namespace": "\(ns.name)", "id": "\(packet.id ?? -1)"])
                return
            }
            acks[id] = nil
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
            ns.status = .connected
            ns.refusals = 0
            ns.wasConnected = true
            logger.info("namespace connected", metadata: ["sio.namespace": "\(ns.name)", "sio.sid": "\(packet.data?["sid"]?.stringValue ?? "")"])
            deliver(.connect(namespace: ns.name))
            let early = ns.early
            ns.early = []
            for event in early where ns.status == .connected { deliver(.event(event)) }
            flushBuffer(namespace: ns.name)
            succeedWaiters(namespace: ns.name)
        case .connectError:
            guard ns.status == .connecting else { return }
            ns.status = .refused
            ns.early = []
            let message: String
            var data: JSONValue?
            if let s = packet.data?.stringValue {
                message = s
            } else {
                message = packet.data?["message"]?.stringValue ?? packet.data?.description ?? "refused"
                data = packet.data?["data"]
            }
            let error = SocketIOError.connectionRefused(namespace: ns.name, message: message, data: data)
            lastError = error
            logger.info("namespace refused", metadata: ["sio.namespace": "\(ns.name)", "message": "\(message)"])
            deliver(.connectError(namespace: ns.name, error: error))
            failWaiters(error, namespace: ns.name)
            retryNamespace(ns)
        case .disconnect:
            guard ns.status == .connected || ns.status == .connecting else { return }
            ns.status = .kicked
            ns.early = []
            logger.info("namespace disconnected by the server", metadata: ["sio.namespace": "\(ns.name)"])
            deliver(.disconnect(namespace: ns.name, reason: .serverDisconnect))
            if configuration.reconnection.enabled && configuration.reconnection.reconnectAfterServerDisconnect {
                retryNamespace(ns)
            } else {
                failEmits(namespace: ns.name, error: .disconnected)
                failWaiters(.disconnected, namespace: ns.name)
                if namespaces.values.allSatisfy({ $0.status == .kicked }) {
                    logger.info("every namespace was disconnected by the server; closing")
                    shutdown(graceful: true)
                }
            }
        }
    }

    /// Sends CONNECT again later (a refused or kicked namespace), on the slow path.
    private func retryNamespace(_ ns: Namespace) {
        let policy = configuration.reconnection
        guard policy.enabled else { return }
        ns.refusals += 1
        if policy.attempts > 0 && ns.refusals > policy.attempts { return }
        let delay = max(policy.delay(forAttempt: ns.refusals), .seconds(1))
        ns.retryTimer?.cancel()
        ns.retryTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
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
        guard !socketIOReservedEventNames.contains(name) else { return refuse(.reservedEventName(name)) }
        guard let ns = namespaces[Self.normalize(namespace)] else { return refuse(.unknownNamespace(namespace)) }
        guard phase != .closed else { return refuse(.disconnected) }
        if ns.status == .kicked && !(configuration.reconnection.enabled && configuration.reconnection.reconnectAfterServerDisconnect) {
            return refuse(.disconnected)
        }
        let e = Emit(seq: nextSeq, namespace: ns.name, name: name, args: args, written: written)
        nextSeq += 1
        if let ack, let ackTimeout {
            let id = nextAckId
            nextAckId += 1
            e.ackId = id
            e.ack = ack
            acks[id] = e
            e.ackTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(ackTimeout)) { [self] in
                guard acks[id] === e else { return }
                acks[id] = nil
                e.finished = true
                if e.inBuffer { removeFromBuffer(e) }
                if !e.writtenDone {
                    e.writtenDone = true
                    e.written.fail(SocketIOError.ackTimeout)
                }
                e.ack?.fail(SocketIOError.ackTimeout)
            }
        }
        if ns.status == .connected, phase == .open {
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
        if let last = buffer.last, last.seq > e.seq {
            let index = buffer.firstIndex { $0.seq > e.seq } ?? buffer.endIndex
            buffer.insert(e, at: index)
        } else {
            buffer.append(e)
        }
        while buffer.count > max(configuration.offlineBufferLimit, 0) {
            let dropped = buffer.removeFirst()
            dropped.inBuffer = false
            logger.warning("offline buffer full; dropping the oldest emit", metadata: [
                "sio.namespace": "\(dropped.namespace)", "event": "\(dropped.name)",
                "limit": "\(configuration.offlineBufferLimit)",
            ])
            finish(dropped, .bufferOverflow)
        }
    }

    private func removeFromBuffer(_ e: Emit) {
        if let i = buffer.firstIndex(where: { $0 === e }) { buffer.remove(at: i) }
        e.inBuffer = false
    }

    private func finish(_ e: Emit, _ error: SocketIOError) {
        e.finished = true
        e.ackTimer?.cancel()
        if let id = e.ackId, acks[id] === e { acks[id] = nil }
        if !e.writtenDone {
            e.writtenDone = true
            e.written.fail(error)
        }
        e.ack?.fail(error)
    }

    private func flushBuffer(namespace: String) {
        guard buffer.contains(where: { $0.namespace == namespace }) else { return }
        var keep = Deque<Emit>()
        var send: [Emit] = []
        for e in buffer {
            if e.namespace == namespace { send.append(e) } else { keep.append(e) }
        }
        buffer = keep
        logger.debug("sending buffered emits", metadata: ["sio.namespace": "\(namespace)", "count": "\(send.count)"])
        for e in send {
            e.inBuffer = false
            write(e)
        }
    }

    private func failEmits(namespace: String, error: SocketIOError) {
        let failing = buffer.filter { $0.namespace == namespace }
        buffer.removeAll { $0.namespace == namespace }
        for e in failing {
            e.inBuffer = false
            finish(e, error)
        }
        for e in acks.values where e.namespace == namespace { finish(e, error) }
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
        let timer = loop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) { [self] in
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
        for ns in namespaces.values { ns.retryTimer?.cancel() }
        let pending = Array(buffer)
        buffer.removeAll()
        for e in pending {
            e.inBuffer = false
            finish(e, .disconnected)
        }
        for e in acks.values { finish(e, .disconnected) }
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
        core.loop.preconditionInEventLoop()
        return core.currentTransport
    }
}

extension ClientCore {
    var currentTransport: String? { engine.flatMap { $0.isOpen ? $0.transportName : nil } }
}
