import DequeModule
import Logging
import NIOCore
import NIOHTTP1

/// One Engine.IO session: the shell of ``EngineStateMachine``. It feeds the machine what the
/// transports and timers report and carries out its decisions: the handshake, the upgrade probe
/// (EngineSession+Upgrade.swift), the heartbeat, and the write backlog (EngineSession+Sending.swift,
/// kept in the machine). Polling and WebSocket are both an ``EngineTransport``. Lives on its event
/// loop; every method must be called there. Reports to its owner through `onEvent`.
final class EngineSession {
    enum Event {
        case open(EngineIOHandshake)
        case packet(EngineIOPacket)
        /// The session is over. `sessionGone`: the server no longer knows the sid (reconnect at once).
        case closed(reason: DisconnectReason, detail: String, sessionGone: Bool)
        /// The write backlog went down after it was full: writes are taken again.
        case drained
        /// The handshake got an HTTP answer other than success (the session is over).
        case refused(HandshakeRefusal)
    }

    /// Units queued beyond which `room` is zero, whatever their size.
    static let backlogUnits = EngineStateMachine.backlogUnits
    /// Largest ping payload echoed in a pong; a longer one is answered with an empty pong.
    static let maxPongPayload = 64

    let loop: any EventLoop
    let settings: EngineSettings
    let cookies: CookieStore
    var logger: Logger
    var onEvent: ((Event) -> Void)?

    /// The handshake, upgrade, heartbeat and backlog decisions (the dialect is chosen once, in `init`).
    var machine: EngineStateMachine
    var started = false
    /// The session ended (torn down): nothing more is reported.
    var closedReported = false
    var handshake: EngineIOHandshake? { machine.handshake }
    /// The transport packets flow on (polling until an upgrade completes, or the WebSocket).
    var transport: (any EngineTransport)?
    /// The upgrade probe while it runs; it is closed with the session.
    var probe: (any EngineTransport)?
    /// The one heartbeat timer, at `machine.heartbeatDeadline`.
    var heartbeatTimer: Scheduled<Void>?
    var upgradeTimer: Scheduled<Void>?
    var isEIO3: Bool { settings.revision == .eio3 }
    var warnedPong = false
    /// Bytes accepted in one polling body, WebSocket message or packet's attachments.
    var payloadLimit: Int { machine.payloadLimit }

    /// Makes the transports (tests pass ends of `InMemoryTransport` pairs).
    let transportFactory: EngineTransportFactory?

    /// `transports` replaces polling and the WebSocket (tests pass ends of `InMemoryTransport`
    /// pairs); time is the loop's (`loop.now`), so a test loop's clock drives the heartbeat.
    init(loop: any EventLoop, settings: EngineSettings, cookies: CookieStore, logger: Logger,
         transports: EngineTransportFactory? = nil) {
        self.loop = loop
        self.settings = settings
        self.cookies = cookies
        self.logger = logger
        self.transportFactory = transports
        self.machine = EngineStateMachine(revision: settings.revision, mode: settings.mode, upgradeTimeout: settings.upgradeTimeout,
                                          payloadCeiling: settings.payloadCeiling, now: loop.now)
    }

    var isOpen: Bool { machine.isOpen }
    var transportName: String { transport?.kind.rawValue ?? TransportKind.polling.rawValue }

    /// The byte limit for a server that announced `maxPayload`: its value, at least 64 KiB (some
    /// servers announce less than they send), at most `ceiling`.
    static func payloadLimit(maxPayload: Int, ceiling: Int) -> Int {
        EngineStateMachine.payloadLimit(maxPayload: maxPayload, ceiling: ceiling)
    }

    // MARK: Opening

    func open() {
        loop.preconditionInEventLoop()
        guard !started else { return }
        started = true
        let kind: TransportKind = settings.mode == .websocket ? .websocket : .polling
        let main = makeTransport(kind)
        transport = main
        attachMain(main)
        main.open(uri: uri(transport: kind.rawValue, sid: nil), headers: headers())
            .assumeIsolated().whenFailure { [weak self] error in
                guard let self, machine.phase == .opening else { return }
                if let refusal = error as? HandshakeRefusal {
                    refuse(refusal)
                } else {
                    fail(.transportError, describeIOError(error))
                }
            }
    }

    func uri(transport: String, sid: String?) -> String {
        var uri = settings.path
        uri += "?"
        if !settings.baseQuery.isEmpty { uri += settings.baseQuery + "&" }
        if isEIO3 {
            if !settings.legacyAuthQuery.isEmpty { uri += settings.legacyAuthQuery + "&" }
            uri += "EIO=3&b64=1&transport=" + transport
        } else {
            uri += "EIO=4&transport=" + transport
        }
        uri += "&t=" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        if let sid { uri += "&sid=" + percentEncodeQuery(sid) }
        return uri
    }

    func headers(post: Bool = false) -> HTTPHeaders {
        var h = HTTPHeaders()
        h.add(name: "Host", value: settings.target.url.hostHeader)
        h.add(name: "Accept", value: "*/*")
        for (name, value) in settings.headers { h.add(name: name, value: value) }
        if let cookie = cookies.jar.header { h.replaceOrAdd(name: "Cookie", value: cookie) }
        if post { h.add(name: "Content-Type", value: "text/plain;charset=UTF-8") }
        return h
    }

    func makeTransport(_ kind: TransportKind) -> any EngineTransport {
        if let transportFactory { return transportFactory(kind, payloadLimit) }
        switch kind {
        case .polling:
            return PollingTransport(loop: loop, target: settings.target, revision: settings.revision,
                                    cookies: cookies, logger: logger, maxBodySize: payloadLimit)
        case .websocket:
            let ws = WebSocketConnection(loop: loop, target: settings.target, maxMessageSize: payloadLimit)
            let (cookies, logger) = (self.cookies, self.logger)
            ws.onUpgradeResponse = { head in cookies.absorb(head.headers, logger: logger) }
            return ws
        }
    }

    /// Makes `main` the session's transport.
    func attachMain(_ main: any EngineTransport) {
        main.onFrame = { [weak self] frame in self?.receiveFrame(frame) }
        main.onClose = { [weak self] closure in self?.fail(closure.reason, closure.detail, sessionGone: closure.sessionGone) }
        main.onWritable = { [weak self] in self?.flushQueue() }
    }

    /// Handles the open packet's payload; false when it was invalid or the session is closed.
    func opened(_ payload: [UInt8]) -> Bool {
        let h: EngineIOHandshake
        do {
            h = try EngineIOHandshake(payload: payload)
        } catch {
            fail(.parseError, "\(error)")
            return false
        }
        guard let main = transport, case .open(let upgrade) = machine.opened(h, websocket: main.kind == .websocket, now: loop.now) else {
            return false
        }
        let sid = h.sid
        main.sessionOpened(h, maxMessageSize: payloadLimit, request: { [weak self] post in
            guard let self else { return ("", HTTPHeaders()) }
            return (uri(transport: TransportKind.polling.rawValue, sid: sid), headers(post: post))
        }, paused: upgrade)
        // The upgrade starts before the owner hears of the session, so nothing is POSTed while
        // the probe runs.
        if upgrade { startUpgrade(sid: sid) }
        return reportOpen(h)
    }

    /// The machine took the handshake: arm the heartbeat, tell the owner. False when the owner
    /// closed the session meanwhile.
    func reportOpen(_ h: EngineIOHandshake) -> Bool {
        logger[metadataKey: "eio.sid"] = "\(h.sid)"
        logger.debug("engine.io session open", metadata: [
            "pingInterval": "\(h.pingInterval)", "pingTimeout": "\(h.pingTimeout)", "upgrades": "\(h.upgrades)",
            "payloadLimit": "\(payloadLimit)", "transport": "\(transportName)",
        ])
        armHeartbeat()
        onEvent?(.open(h))
        return machine.isOpen
    }

    // MARK: Heartbeat

    /// Keeps the heartbeat timer at the machine's deadline.
    func armHeartbeat() {
        heartbeatTimer?.cancel()
        heartbeatTimer = nil
        guard let deadline = machine.heartbeatDeadline else { return }
        heartbeatTimer = loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            heartbeatTimer = nil
            switch machine.heartbeatFired(now: loop.now) {
            case .sendPing:
                armHeartbeat()
                send([OutgoingFrame(bytes: [UInt8(ascii: "2")], isBinary: false)], promise: nil)
            case .wait:
                armHeartbeat()
            case .timeout(let detail):
                fail(.pingTimeout, detail)
            case .ignore:
                break
            }
        }
    }

    // MARK: Closing

    /// Ends the session after a failure and reports it.
    func fail(_ reason: DisconnectReason, _ detail: String, sessionGone: Bool = false) {
        guard !closedReported else { return }
        logger.debug("engine.io session closed", metadata: ["reason": "\(reason)", "detail": "\(detail)"])
        teardown()
        onEvent?(.closed(reason: reason, detail: detail, sessionGone: sessionGone))
        onEvent = nil
    }

    /// Ends the session because the handshake was answered with an HTTP error.
    func refuse(_ refusal: HandshakeRefusal) {
        guard !closedReported else { return }
        logger.debug("engine.io handshake refused", metadata: ["status": "\(refusal.status)", "body": "\(refusal.body)"])
        teardown()
        onEvent?(.refused(refusal))
        onEvent = nil
    }

    /// Closes every transport the session owns (the upgrade probe too) and fails what is queued.
    func teardown() {
        _ = machine.close()
        closedReported = true
        heartbeatTimer?.cancel()
        upgradeTimer?.cancel()
        probe?.detachAndClose()
        probe = nil
        transport?.detachAndClose()
        transport = nil
        for unit in machine.takeBacklog() { unit.promise?.fail(SocketIOError.transport("session closed")) }
    }

    /// Closes the session on the client's initiative: sends the close packet (after what is
    /// queued), then closes the transports. No `closed` event is reported.
    func close() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        onEvent = nil
        guard machine.isOpen, probe == nil else {
            teardown()
            return loop.makeSucceededVoidFuture()
        }
        let done = loop.makePromise(of: Void.self)
        _ = machine.enqueue(OutgoingUnit(OutgoingFrame(bytes: [UInt8(ascii: "1")], isBinary: false), promise: done), force: true)
        flushQueue()
        let finished = loop.makePromise(of: Void.self)
        var completed = false
        let complete: () -> Void = { [self] in
            guard !completed else { return }
            completed = true
            teardown()
            finished.succeed()
        }
        let deadline = loop.assumeIsolated().scheduleTask(in: .seconds(2)) { complete() }
        done.futureResult.assumeIsolated().whenComplete { _ in
            deadline.cancel()
            complete()
        }
        return finished.futureResult
    }

    /// Drops the session at once (no close packet), without reporting.
    func abort() {
        onEvent = nil
        teardown()
    }
}
