import DequeModule
import Logging
import NIOCore
import NIOHTTP1

/// One Engine.IO session (handshake, transports, upgrade, heartbeat, write queue). Lives on its
/// event loop; every method must be called there. Reports to its owner through `onEvent`.
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

    /// The transport in use. The upgrade probe belongs to the session: it is closed with it.
    enum Transport {
        case none
        case polling(get: HTTPLane, post: HTTPLane)
        /// Polling is paused while the probe WebSocket answers `3probe`.
        case upgrading(get: HTTPLane, post: HTTPLane, probe: WebSocketConnection)
        case websocket(WebSocketConnection)
    }

    /// A group of frames written together (a Socket.IO packet and its attachments).
    struct Unit {
        var frames: [OutgoingFrame]
        var sent = 0
        var promise: EventLoopPromise<Void>?
        var bytes: Int
    }

    /// Units queued beyond which `room` is zero, whatever their size.
    static let backlogUnits = 1024
    /// Largest ping payload echoed in a pong; a longer one is answered with an empty pong.
    static let maxPongPayload = 64

    let loop: any EventLoop
    let settings: EngineSettings
    let cookies: CookieStore
    var logger: Logger
    var onEvent: ((Event) -> Void)?

    /// The handshake, upgrade and heartbeat decisions (the dialect is chosen once, in `init`).
    var machine: EngineStateMachine
    var started = false
    /// The session ended (torn down): nothing more is reported.
    var closedReported = false
    var handshake: EngineIOHandshake? { machine.handshake }
    var transport = Transport.none
    var queue = Deque<Unit>()
    var queuedBytes = 0
    var backlogWasFull = false
    var postInFlight = 0
    /// The one heartbeat timer, at `machine.heartbeatDeadline`.
    var heartbeatTimer: Scheduled<Void>?
    var upgradeTimer: Scheduled<Void>?
    var isEIO3: Bool { settings.revision == .eio3 }
    var warnedPong = false
    /// Bytes accepted in one polling body, WebSocket message or packet's attachments.
    var payloadLimit: Int { machine.payloadLimit }

    init(loop: any EventLoop, settings: EngineSettings, cookies: CookieStore, logger: Logger) {
        self.loop = loop
        self.settings = settings
        self.cookies = cookies
        self.logger = logger
        self.machine = EngineStateMachine(revision: settings.revision, mode: settings.mode, upgradeTimeout: settings.upgradeTimeout,
                                          payloadCeiling: settings.payloadCeiling, now: .now())
    }

    var isOpen: Bool { machine.isOpen }
    var transportName: String {
        if case .websocket = transport { return "websocket" }
        return "polling"
    }

    /// The byte limit for a server that announced `maxPayload`: its value, at least 64 KiB (some
    /// servers announce less than they send), at most `ceiling`.
    static func payloadLimit(maxPayload: Int, ceiling: Int) -> Int {
        EngineStateMachine.payloadLimit(maxPayload: maxPayload, ceiling: ceiling)
    }

    /// How many more units the write queue takes before it is full (then `.drained` follows).
    var room: Int {
        let units = Self.backlogUnits - queue.count
        guard units > 0, queuedBytes < payloadLimit else {
            backlogWasFull = true
            return 0
        }
        return units
    }

    var hasRoom: Bool { room > 0 }

    // MARK: Opening

    func open() {
        loop.preconditionInEventLoop()
        guard !started else { return }
        started = true
        if settings.mode == .websocket {
            openWebSocketDirectly()
        } else {
            openPolling()
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

    func makeWebSocket() -> WebSocketConnection {
        let ws = WebSocketConnection(loop: loop, maxMessageSize: payloadLimit)
        let (cookies, logger) = (self.cookies, self.logger)
        ws.onUpgradeResponse = { head in cookies.absorb(head.headers, logger: logger) }
        return ws
    }

    func openWebSocketDirectly() {
        let ws = makeWebSocket()
        transport = .websocket(ws)
        attachMain(ws)
        ws.connect(target: settings.target, uri: uri(transport: "websocket", sid: nil), headers: headers())
            .assumeIsolated().whenFailure { [weak self] error in
                if let refusal = error as? HandshakeRefusal {
                    self?.refuse(refusal)
                } else {
                    self?.fail(.transportError, describeIOError(error))
                }
            }
    }

    /// Makes `ws` the session's transport for frames.
    func attachMain(_ ws: WebSocketConnection) {
        ws.onFrame = { [weak self] frame in self?.receiveFrame(frame) }
        ws.onClose = { [weak self] reason in self?.fail(.transportClose, reason) }
        ws.onWritable = { [weak self] in self?.flushQueue() }
    }

    /// Handles the open packet's payload; false when it was invalid (the session is then closed).
    func opened(_ payload: [UInt8]) -> Bool {
        do {
            let h = try EngineIOHandshake(payload: payload)
            guard case .open = machine.opened(h, websocket: true, now: .now()) else { return false }
            return reportOpen(h)
        } catch {
            fail(.parseError, "\(error)")
            return false
        }
    }

    /// The machine took the handshake: arm the heartbeat, tell the owner. False when the owner
    /// closed the session meanwhile.
    func reportOpen(_ h: EngineIOHandshake) -> Bool {
        logger[metadataKey: "eio.sid"] = "\(h.sid)"
        logger.debug("engine.io session open", metadata: [
            "pingInterval": "\(h.pingInterval)", "pingTimeout": "\(h.pingTimeout)", "upgrades": "\(h.upgrades)",
            "payloadLimit": "\(payloadLimit)",
        ])
        armHeartbeat()
        onEvent?(.open(h))
        return machine.isOpen
    }

    // MARK: Upgrade

    func startUpgrade(sid: String, get: HTTPLane, post: HTTPLane) {
        let probe = makeWebSocket()
        transport = .upgrading(get: get, post: post, probe: probe)
        probe.onClose = { [weak self] reason in
            guard let self, machine.probeFailed() == .abandon else { return }
            abandonUpgrade(reason)
        }
        probe.onFrame = { [weak self] frame in
            guard let self else { return }
            let result: EngineStateMachine.ProbeResult
            switch frame {
            case .text(let buffer): result = machine.probeAnswered(buffer.readableBytesView, now: .now())
            case .binary: result = machine.probeFailed()
            }
            switch result {
            case .complete: completeUpgrade()
            case .abandon: abandonUpgrade("unexpected answer to the probe")
            case .ignore: break
            }
        }
        if case .upgrading(let deadline) = machine.phase {
            upgradeTimer = loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
                guard let self, machine.upgradeTimerFired(now: .now()) == .abandon else { return }
                abandonUpgrade("timeout")
            }
        }
        probe.connect(target: settings.target, uri: uri(transport: "websocket", sid: sid), headers: headers())
            .assumeIsolated().whenComplete { [weak self, weak probe] result in
                switch result {
                case .success:
                    probe?.sendText(Array("2probe".utf8), flush: true, promise: nil)
                case .failure(let error):
                    guard let self, machine.probeFailed() == .abandon else { return }
                    abandonUpgrade(describeIOError(error))
                }
            }
    }

    /// The probe failed (the machine is back on polling): it is closed, and polling goes on.
    func abandonUpgrade(_ reason: String) {
        guard case .upgrading(let get, let post, let probe) = transport else { return }
        logger.debug("upgrade to websocket failed, staying on polling", metadata: ["reason": "\(reason)"])
        probe.onClose = nil
        probe.onFrame = nil
        probe.close()
        upgradeTimer?.cancel()
        transport = .polling(get: get, post: post)
        poll()
        flushQueue()
    }

    /// The probe answered (the machine is on WebSocket): it becomes the transport, and polling ends.
    func completeUpgrade() {
        guard case .upgrading(let get, let post, let probe) = transport else { return }
        upgradeTimer?.cancel()
        probe.sendText([UInt8(ascii: "5")], flush: true, promise: nil)
        get.close()
        post.close()
        transport = .websocket(probe)
        attachMain(probe)
        logger.debug("upgraded to websocket")
        flushQueue()
    }

    // MARK: Receiving

    func receiveFrame(_ frame: WebSocketConnection.Inbound) {
        switch frame {
        case .text(let buffer):
            let decoded = buffer.withUnsafeReadableBytes { bytes in
                Result { () throws(EngineIOParseError) in try EngineIOCodec.decodeText(bytes) }
            }
            switch decoded {
            case .success(let packet):
                if machine.phase == .opening {
                    guard packet.type == .open else {
                        fail(.parseError, "the first packet was not an open packet")
                        return
                    }
                    _ = opened(packet.payload)
                } else {
                    receive(packet)
                }
            case .failure(let error):
                machine.receivedMalformed(now: .now())
                logger.warning("ignoring a malformed packet", metadata: ["error": "\(error)"])
            }
        case .binary(let buffer):
            guard isEIO3 else {
                receive(.binaryMessage(Array(buffer.readableBytesView)))
                return
            }
            // Engine.IO 3: the frame starts with the packet type.
            do {
                receive(try EngineIO3Codec.decodeWebSocketBinary(Array(buffer.readableBytesView)))
            } catch {
                machine.receivedMalformed(now: .now())
                logger.warning("ignoring a malformed packet", metadata: ["error": "\(error)"])
            }
        }
    }

    func receive(_ packet: EngineIOPacket) {
        switch machine.received(packet.type, payloadCount: packet.payload.count, now: .now()) {
        case .deliver:
            onEvent?(.packet(packet))
        case .pong(let echo):
            var bytes: [UInt8] = [UInt8(ascii: "3")]
            if echo {
                bytes.append(contentsOf: packet.payload)
            } else if !warnedPong {
                warnedPong = true
                logger.warning("the server's ping carries a long payload; answering with an empty pong", metadata: [
                    "bytes": "\(packet.payload.count)", "limit": "\(Self.maxPongPayload)",
                ])
            }
            send([OutgoingFrame(bytes: bytes, isBinary: false)], promise: nil)
        case .close:
            fail(.transportClose, "the server closed the session")
        case .rescheduleHeartbeat:
            armHeartbeat()
        case .ignore:
            if packet.type == .open, machine.isOpen { logger.warning("ignoring a second open packet") }
        }
    }

    // MARK: Heartbeat

    /// Decodes a polling payload in this session's revision.
    func decodePayload(_ bytes: UnsafeRawBufferPointer) throws(EngineIOParseError) -> [EngineIOPacket] {
        isEIO3 ? try EngineIO3Codec.decodePayload(bytes) : try EngineIOCodec.decodePayload(bytes)
    }

    /// Keeps the heartbeat timer at the machine's deadline.
    func armHeartbeat() {
        heartbeatTimer?.cancel()
        heartbeatTimer = nil
        guard let deadline = machine.heartbeatDeadline else { return }
        heartbeatTimer = loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            heartbeatTimer = nil
            switch machine.heartbeatFired(now: .now()) {
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

    /// Closes every connection the session owns (the upgrade probe too) and fails what is queued.
    func teardown() {
        _ = machine.close()
        closedReported = true
        heartbeatTimer?.cancel()
        upgradeTimer?.cancel()
        switch transport {
        case .none: break
        case .polling(let get, let post):
            get.close()
            post.close()
        case .upgrading(let get, let post, let probe):
            get.close()
            post.close()
            probe.detachAndClose()
        case .websocket(let ws):
            ws.detachAndClose()
        }
        transport = .none
        let pending = queue
        queue.removeAll()
        queuedBytes = 0
        for unit in pending { unit.promise?.fail(SocketIOError.transport("session closed")) }
    }

    /// Closes the session on the client's initiative: sends the close packet (after what is
    /// queued), then closes the transports. No `closed` event is reported.
    func close() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        onEvent = nil
        guard machine.isOpen else {
            teardown()
            return loop.makeSucceededVoidFuture()
        }
        if case .upgrading = transport {
            teardown()
            return loop.makeSucceededVoidFuture()
        }
        let done = loop.makePromise(of: Void.self)
        queue.append(Unit(frames: [OutgoingFrame(bytes: [UInt8(ascii: "1")], isBinary: false)], promise: done, bytes: 1))
        queuedBytes &+= 1
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
