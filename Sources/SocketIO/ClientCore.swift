import DequeModule
import Logging
import NIOCore

/// The shell of the client on its event loop: it feeds inputs to ``ClientStateMachine`` and
/// carries out the actions after each update, and owns what the machine does not: the Engine.IO
/// session, timers, and each emit's data, promises and ack timer (``handles``; which emits wait
/// in the offline buffer or for an ack is the machine's).
///
/// Inputs never nest: one that arrives while another is handled (the event hook calling `send`,
/// an engine event raised by a write) runs right after it, in order (``busy``, ``deferred``).
/// Every method runs on `loop` (the client reaches it through a `NIOLoopBoundBox`, engine and
/// timer callbacks are scheduled on `loop` with `assumeIsolated()`, which checks).
final class ClientCore {
    /// Per-namespace data of the shell (the status lives in the machine).
    struct NamespaceData {
        /// Events that arrived before the CONNECT answer (python sends connect-handler events first).
        var early = Deque<SocketIOEvent>()
        var earlyDropped = 0
    }

    /// What the shell keeps of an emit the machine still owns: its data, promises and ack timer.
    final class Emit {
        let seq: Int
        let namespace: String
        let name: String
        let args: [JSONValue]
        let ackId: Int?
        let written: EventLoopPromise<Void>
        var writtenDone = false
        let ack: EventLoopPromise<[JSONValue]>?
        var ackTimer: Scheduled<Void>?

        init(seq: Int, namespace: String, name: String, args: [JSONValue], ackId: Int?,
             written: EventLoopPromise<Void>, ack: EventLoopPromise<[JSONValue]>?) {
            self.seq = seq
            self.namespace = namespace
            self.name = name
            self.args = args
            self.ackId = ackId
            self.written = written
            self.ack = ack
        }

        func succeedWritten() {
            guard !writtenDone else { return }
            writtenDone = true
            written.succeed()
        }
    }

    struct Waiter {
        var namespace: Int
        var failFast: Bool
        var promise: EventLoopPromise<Void>
        var timer: Scheduled<Void>?
    }

    let loop: any EventLoop
    let configuration: SocketIOClientConfiguration
    var logger: Logger
    private let hook: (@Sendable (SocketIOClientEvent) -> Void)?
    private let settings: Result<EngineSettings, SocketIOError>
    private let cookies = CookieStore()
    private let subscribers: EventSubscribers

    var machine: ClientStateMachine
    var engine: EngineSession?
    private var timers: [ClientStateMachine.Timer: Scheduled<Void>] = [:]
    var data: [NamespaceData]
    /// The emits the machine still owns, by sequence number.
    var handles: [Int: Emit] = [:]
    var waiters: [Int: Waiter] = [:]
    var nextWaiterId = 0
    var assembler = SocketIOBinaryAssembler()
    /// An input is being handled; others wait in `deferred`.
    private var busy = false
    private var deferred = Deque<() -> Void>()
    /// The clean close of the session under way (the future of `shutdown`).
    private var closing: EventLoopFuture<Void>?

    init(configuration: SocketIOClientConfiguration, loop: any EventLoop, logger: Logger,
         hook: (@Sendable (SocketIOClientEvent) -> Void)?, subscribers: EventSubscribers) {
        self.loop = loop
        self.subscribers = subscribers
        self.configuration = configuration
        self.logger = logger
        self.hook = hook
        self.settings = Result { () throws(SocketIOError) in try EngineSettings.make(configuration) }
        self.machine = ClientStateMachine(
            namespaces: configuration.namespaces.map { (name: $0.key, auth: $0.value ?? nil) },
            policy: configuration.reconnection, connectTimeout: configuration.connectTimeout,
            protocolVersion: configuration.protocolVersion, seed: UInt64.random(in: 0...UInt64.max),
            offlineBufferLimit: configuration.offlineBufferLimit)
        if case .success(let engineSettings) = settings {
            machine.connectTimeoutDetail = ConnectionErrorWording.handshakeTimeout(engineSettings.target)
        }
        self.data = Array(repeating: NamespaceData(), count: machine.namespaces.count)
    }

    var generation: Int { machine.generation }
    var currentTransport: String? { engine.flatMap { $0.isOpen ? $0.transportName : nil } }

    // MARK: Inputs, one at a time

    /// Runs one input: at once, or after the input being handled. (Only a deferred input costs a
    /// closure; the engine's per-packet path checks `busy` inline.)
    func run(_ body: @escaping () -> Void) {
        if busy {
            deferred.append(body)
            return
        }
        busy = true
        body()
        end()
    }

    /// Ends an input, then runs those that arrived meanwhile, in order (each a body that assumes
    /// `busy`, so it never defers itself again).
    private func end() {
        while let next = deferred.popFirst() { next() }
        busy = false
    }

    /// Called from the facade through `run`.
    func connect() {
        switch settings {
        case .failure(let error): perform(machine.configurationFailed(error))
        case .success(let settings):
            if machine.phase == .idle { settings.warnAboutSecurity(configuration, logger: logger) }
            perform(machine.start())
        }
    }

    /// Called from the facade through `run`.
    @discardableResult
    func shutdown(graceful: Bool) -> EventLoopFuture<Void> {
        closing = nil
        perform(machine.shutdown(graceful: graceful))
        let done = closing ?? loop.makeSucceededVoidFuture()
        closing = nil
        return done
    }

    // MARK: Actions

    func perform(_ actions: [ClientStateMachine.Action]) {
        for action in actions {
            switch action {
            case .openEngine(let generation, let revision):
                openEngine(generation: generation, revision: revision)
            case .closeEngine(let graceful):
                guard let engine else { continue }
                self.engine = nil
                if graceful { closing = engine.close() } else { engine.abort() }
            case .schedule(let timer, let delay):
                timers[timer]?.cancel()
                timers[timer] = loop.assumeIsolated().scheduleTask(in: TimeAmount(saturating: delay)) { [self] in
                    timers[timer] = nil
                    run { [self] in perform(machine.timerFired(timer)) }
                }
            case .cancel(let timer):
                timers.removeValue(forKey: timer)?.cancel()
            case .sendConnect(let i, let implicit):
                sendConnect(i, implicit: implicit)
            case .sendDisconnect(let i):
                let encoded = SocketIOCodec.encode(SocketIOPacket(.disconnect, namespace: machine.namespaces[i].name), prefix: UInt8(ascii: "4"))
                engine?.send(encoded, promise: nil)
            case .deliver(let event):
                deliver(event)
            case .flushBuffer(let i):
                flushBuffer(namespace: i)
            case .deliverEarlyEvents(let i):
                let early = data[i].early
                data[i].early = []
                for event in early where machine.status(i) == .connected { deliver(.event(event)) }
            case .dropEarlyEvents(let i):
                data[i] = NamespaceData()
            case .failEmits(let i, let error):
                failEmits(namespace: i, error: error)
            case .requeueUnacknowledged:
                engine = nil
                assembler.reset()
                // Emits written on the lost session and still waiting for an ack are sent again.
                for (seq, error) in machine.requeueUnacknowledged() {
                    if error == .bufferOverflow { droppedFromBuffer(seq) } else { settle(seq, error) }
                }
            case .succeedWaiters(let i):
                succeedWaiters(namespace: i)
            case .failWaiters(let error, let i, let onlyFailFast):
                failWaiters(error, namespace: i, onlyFailFast: onlyFailFast)
            case .terminate(let error):
                terminate(error)
            case .log(let level, let message, let metadata):
                logger.log(level: level, "\(message)", metadata: metadata)
            }
        }
    }

    func deliver(_ event: SocketIOClientEvent) {
        hook?(event)
        subscribers.yield(event)
    }

    private func openEngine(generation: Int, revision: EngineIORevision) {
        guard case .success(var settings) = settings else { return }
        settings.revision = revision
        if revision == .eio3 { settings.legacyAuthQuery = EngineSettings.legacyAuthQuery(machine.namespaces) }
        var engineLogger = logger
        engineLogger[metadataKey: "sio.attempt"] = "\(machine.backoff.attempt)"
        let engine = EngineSession(loop: loop, settings: settings, cookies: cookies, logger: engineLogger)
        engine.onEvent = { [weak self] event in
            guard let self, self.generation == generation else { return }
            self.engineEvent(event, generation: generation)
        }
        self.engine = engine
        engine.open()
    }

    private func engineEvent(_ event: EngineSession.Event, generation: Int) {
        if busy { return deferred.append { [self] in handleEngineEvent(event, generation: generation) } }
        busy = true
        handleEngineEvent(event, generation: generation)
        end()
    }

    private func handleEngineEvent(_ event: EngineSession.Event, generation: Int) {
        guard self.generation == generation else { return }
        switch event {
        case .open(let handshake):
            logger[metadataKey: "eio.sid"] = "\(handshake.sid)"
            assembler.byteLimit = engine?.payloadLimit ?? configuration.maxPayloadCeiling
            perform(machine.engineOpened(pingInterval: handshake.pingInterval))
        case .packet(let packet):
            receive(packet)
        case .closed(let reason, let detail, let sessionGone):
            engine = nil
            perform(machine.engineClosed(reason: reason, detail: detail, sessionGone: sessionGone))
        case .refused(let refusal):
            engine = nil
            perform(machine.handshakeRefused(refusal))
        case .drained:
            // The transport takes writes again: what waited in the buffer goes first.
            for i in machine.namespaces.indices where machine.status(i) == .connected {
                flushBuffer(namespace: i)
            }
        }
    }

    /// Sends the namespace CONNECT (`implicit`: Socket.IO v2 connects `/` by itself; only wait).
    private func sendConnect(_ i: Int, implicit: Bool) {
        guard let engine else { return }
        let ns = machine.namespaces[i]
        if implicit {
            logger.debug("waiting for the server to connect the namespace", metadata: ["sio.namespace": "\(ns.name)"])
            return
        }
        if machine.revision == .eio3 {
            // Socket.IO v2: no CONNECT payload; the auth rides as a query after the namespace.
            let text = ns.name == "/" ? Array("40".utf8) : SocketIO2.connectPacket(namespace: ns.name, auth: ns.auth, prefix: UInt8(ascii: "4"))
            engine.send([OutgoingFrame(bytes: text, isBinary: false)], promise: nil)
        } else {
            let encoded = SocketIOCodec.encode(SocketIOPacket(.connect, namespace: ns.name, data: ns.auth), prefix: UInt8(ascii: "4"))
            engine.send(encoded, promise: nil)
        }
        logger.debug("connecting namespace", metadata: ["sio.namespace": "\(ns.name)"])
    }

    /// Closed for good: fails what waits, ends the event sequences.
    private func terminate(_ error: SocketIOError) {
        for timer in timers.values { timer.cancel() }
        timers = [:]
        for seq in machine.removeAllEmits() { settle(seq, .disconnected) }
        failWaiters(error)
        subscribers.finish()
    }

    // MARK: Facade inputs (each called through `run`)

    func emit(name: String, args: [JSONValue], namespace: String, written: EventLoopPromise<Void>,
              ack: EventLoopPromise<[JSONValue]>?, ackTimeout: Duration?, delivery: EmitDelivery = .buffered) {
        queueEmit(name: name, args: args, namespace: namespace, written: written, ack: ack, ackTimeout: ackTimeout, delivery: delivery)
    }

    func sendAck(namespace: String, id: Int, args: [JSONValue], generation: Int) {
        guard generation == self.generation, machine.phase == .open, let engine else {
            logger.debug("dropping an ack reply for a closed session", metadata: ["sio.namespace": "\(namespace)"])
            return
        }
        let encoded = SocketIOCodec.encode(SocketIOPacket(.ack, namespace: namespace, id: id, data: .array(args)), prefix: UInt8(ascii: "4"))
        engine.send(encoded, promise: nil)
    }

    func addWaiter(namespace: String, timeout: Duration, failFast: Bool, promise: EventLoopPromise<Void>) {
        guard let i = machine.index(of: ClientStateMachine.normalize(namespace)) else {
            return promise.fail(SocketIOError.unknownNamespace(namespace))
        }
        if machine.status(i) == .connected { return promise.succeed() }
        guard machine.phase != .closed else { return promise.fail(machine.lastError ?? SocketIOError.disconnected) }
        let id = nextWaiterId
        nextWaiterId &+= 1
        let timer = loop.assumeIsolated().scheduleTask(in: TimeAmount(saturating: timeout)) { [self] in
            guard let w = waiters.removeValue(forKey: id) else { return }
            w.promise.fail(machine.lastError ?? SocketIOError.connectTimeout)
        }
        waiters[id] = Waiter(namespace: i, failFast: failFast, promise: promise, timer: timer)
    }

    private func succeedWaiters(namespace: Int) {
        for (id, w) in waiters where w.namespace == namespace {
            waiters[id] = nil
            w.timer?.cancel()
            w.promise.succeed()
        }
    }

    func failWaiters(_ error: SocketIOError, namespace: Int? = nil, onlyFailFast: Bool = false) {
        for (id, w) in waiters where (namespace == nil || w.namespace == namespace) && (!onlyFailFast || w.failFast) {
            waiters[id] = nil
            w.timer?.cancel()
            w.promise.fail(error)
        }
    }
}
