import DequeModule
import Logging
import NIOCore
import NIOHTTP1

/// Settings an Engine.IO session needs, derived once from the client configuration.
struct EngineSettings: Sendable {
    var target: ConnectionTarget
    var path: String
    var mode: TransportMode
    /// URL query and configured query, already encoded, joined by `&` (may be empty).
    var baseQuery: String
    var headers: [(name: String, value: String)]
    var upgradeTimeout: TimeAmount
    /// The most bytes accepted in one polling body, WebSocket message or packet's attachments,
    /// whatever the server's maxPayload says.
    var payloadCeiling: Int = 1_000_000
    /// The Engine.IO revision this session speaks.
    var revision: EngineIORevision = .eio4
    /// Engine.IO 3 only: the namespaces' auth as query parameters, encoded (may be empty).
    var legacyAuthQuery: String = ""
}

/// Cookies shared by every request of a client (loop only).
final class CookieStore {
    var jar = CookieJar()
    private var warned = false

    func absorb(_ headers: HTTPHeaders, logger: Logger) {
        for value in headers["Set-Cookie"] {
            if !jar.store(setCookie: value), !warned {
                warned = true
                logger.warning("ignoring cookies beyond the jar's limits", metadata: [
                    "max_cookies": "\(CookieJar.maxCookies)", "max_cookie_bytes": "\(CookieJar.maxCookieBytes)",
                ])
            }
        }
    }
}

/// One encoded Engine.IO packet ready for a transport: text bytes include the type digit.
struct OutgoingFrame {
    var bytes: [UInt8]
    var isBinary: Bool
}

/// The first bytes of an HTTP body for a log line or an error: at most `limit` bytes, control
/// characters escaped, and the full size when it was cut.
func describeBody(_ body: ByteBuffer, limit: Int = 200) -> String {
    let bytes = body.readableBytesView.prefix(limit)
    var text = ""
    for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
        if scalar.value < 0x20 || scalar.value == 0x7F {
            text += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
            text.unicodeScalars.append(scalar)
        }
    }
    if body.readableBytes > limit { text += "… (\(body.readableBytes) bytes)" }
    return text
}

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
    private enum Transport {
        case none
        case polling(get: HTTPLane, post: HTTPLane)
        /// Polling is paused while the probe WebSocket answers `3probe`.
        case upgrading(get: HTTPLane, post: HTTPLane, probe: WebSocketConnection)
        case websocket(WebSocketConnection)
    }

    /// A group of frames written together (a Socket.IO packet and its attachments).
    private struct Unit {
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
    private let settings: EngineSettings
    private let cookies: CookieStore
    private var logger: Logger
    var onEvent: ((Event) -> Void)?

    /// The handshake, upgrade and heartbeat decisions (the dialect is chosen once, in `init`).
    private var machine: EngineStateMachine
    private var started = false
    /// The session ended (torn down): nothing more is reported.
    private var closedReported = false
    var handshake: EngineIOHandshake? { machine.handshake }
    private var transport = Transport.none
    private var queue = Deque<Unit>()
    private var queuedBytes = 0
    private var backlogWasFull = false
    private var postInFlight = 0
    /// The one heartbeat timer, at `machine.heartbeatDeadline`.
    private var heartbeatTimer: Scheduled<Void>?
    private var upgradeTimer: Scheduled<Void>?
    private var isEIO3: Bool { settings.revision == .eio3 }
    private var warnedPong = false
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

    private func uri(transport: String, sid: String?) -> String {
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

    private func headers(post: Bool = false) -> HTTPHeaders {
        var h = HTTPHeaders()
        h.add(name: "Host", value: settings.target.url.hostHeader)
        h.add(name: "Accept", value: "*/*")
        for (name, value) in settings.headers { h.add(name: name, value: value) }
        if let cookie = cookies.jar.header { h.replaceOrAdd(name: "Cookie", value: cookie) }
        if post { h.add(name: "Content-Type", value: "text/plain;charset=UTF-8") }
        return h
    }

    private func makeWebSocket() -> WebSocketConnection {
        let ws = WebSocketConnection(loop: loop, maxMessageSize: payloadLimit)
        let (cookies, logger) = (self.cookies, self.logger)
        ws.onUpgradeResponse = { head in cookies.absorb(head.headers, logger: logger) }
        return ws
    }

    private func openWebSocketDirectly() {
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
    private func attachMain(_ ws: WebSocketConnection) {
        ws.onFrame = { [weak self] frame in self?.receiveFrame(frame) }
        ws.onClose = { [weak self] reason in self?.fail(.transportClose, reason) }
        ws.onWritable = { [weak self] in self?.flushQueue() }
    }

    private func openPolling() {
        let get = HTTPLane(loop: loop, target: settings.target, maxBodySize: payloadLimit)
        let post = HTTPLane(loop: loop, target: settings.target, maxBodySize: 4096)
        transport = .polling(get: get, post: post)
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri(transport: "polling", sid: nil))
        head.headers = headers()
        get.request(head, body: nil).assumeIsolated().whenComplete { [weak self] result in
            guard let self, machine.phase == .opening else { return }
            switch result {
            case .failure(let error):
                fail(.transportError, describeIOError(error))
            case .success(let response):
                cookies.absorb(response.headers, logger: logger)
                guard response.status == .ok else {
                    let body = String(decoding: response.body.readableBytesView.prefix(HandshakeRefusal.maxBody), as: UTF8.self)
                    refuse(HandshakeRefusal(status: Int(response.status.code), body: body))
                    return
                }
                let packets: [EngineIOPacket]
                do {
                    packets = try response.body.withUnsafeReadableBytes { buffer in
                        try decodePayload(buffer)
                    }
                } catch {
                    fail(.parseError, "\(error)")
                    return
                }
                guard let first = packets.first, first.type == .open, !first.isBinary else {
                    fail(.parseError, "the handshake did not start with an open packet")
                    return
                }
                let h: EngineIOHandshake
                do {
                    h = try EngineIOHandshake(payload: first.payload)
                } catch {
                    fail(.parseError, "\(error)")
                    return
                }
                guard case .open(let willUpgrade) = machine.opened(h, websocket: false, now: .now()) else { return }
                // The upgrade starts before the owner hears of the session, so nothing is POSTed
                // while the probe runs.
                if willUpgrade { startUpgrade(sid: h.sid, get: get, post: post) }
                guard reportOpen(h) else { return }
                get.maxBodySize = payloadLimit
                for packet in packets.dropFirst() {
                    receive(packet)
                    guard machine.isOpen else { return }
                }
                if !willUpgrade {
                    poll()
                    flushQueue()
                }
            }
        }
    }

    /// Handles the open packet's payload; false when it was invalid (the session is then closed).
    private func opened(_ payload: [UInt8]) -> Bool {
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
    private func reportOpen(_ h: EngineIOHandshake) -> Bool {
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

    private func startUpgrade(sid: String, get: HTTPLane, post: HTTPLane) {
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
    private func abandonUpgrade(_ reason: String) {
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
    private func completeUpgrade() {
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

    private func receiveFrame(_ frame: WebSocketConnection.Inbound) {
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

    private func receive(_ packet: EngineIOPacket) {
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

    private func poll() {
        guard machine.isOpen, case .polling(let lane, _) = transport, !lane.isBusy, let sid = handshake?.sid else { return }
        pollingRequest(.GET, on: lane, sid: sid, body: nil, what: "poll") { [weak self] response in
            guard let self else { return }
            let decoded = response.body.withUnsafeReadableBytes { bytes in
                Result { () throws(EngineIOParseError) in try decodePayload(bytes) }
            }
            switch decoded {
            case .success(let packets):
                for packet in packets {
                    receive(packet)
                    guard machine.isOpen else { return }
                }
            case .failure(let error):
                machine.receivedMalformed(now: .now())
                logger.warning("ignoring a malformed polling payload", metadata: ["error": "\(error)"])
            }
            poll()
        }
    }

    /// The polling lanes while they are in use (polling, or upgrading); nil otherwise.
    private var lanes: (get: HTTPLane, post: HTTPLane)? {
        switch transport {
        case .polling(let get, let post), .upgrading(let get, let post, _): return (get, post)
        case .none, .websocket: return nil
        }
    }

    /// Sends one long-polling request on `lane`. A transport error or an answer other than 200
    /// ends the session (a 400 means the server no longer knows the sid); cookies are kept from
    /// every answer; `onOK` gets a 200 answer. Nothing happens once the session or the lane has
    /// been replaced.
    private func pollingRequest(
        _ method: HTTPMethod, on lane: HTTPLane, sid: String, body: [UInt8]?, what: String,
        onOK: @escaping (HTTPResponse) -> Void
    ) {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri(transport: "polling", sid: sid))
        head.headers = headers(post: method == .POST)
        lane.request(head, body: body).assumeIsolated().whenComplete { [weak self] result in
            guard let self, machine.isOpen, let lanes, lanes.get === lane || lanes.post === lane else { return }
            switch result {
            case .failure(let error):
                fail(.transportError, describeIOError(error))
            case .success(let response):
                cookies.absorb(response.headers, logger: logger)
                guard response.status == .ok else {
                    fail(.transportError, "\(what) answered \(response.status.code): \(describeBody(response.body))",
                         sessionGone: response.status == .badRequest)
                    return
                }
                onOK(response)
            }
        }
    }

    // MARK: Sending

    /// Queues frames written together; `promise` completes when they were written (WebSocket) or
    /// the POST that carried them was accepted (polling), and fails if the session ends first or
    /// the write backlog is far beyond its bound (callers check `room` first for emits).
    func send(_ frames: [OutgoingFrame], promise: EventLoopPromise<Void>?) {
        loop.preconditionInEventLoop()
        guard machine.phase != .closed else {
            promise?.fail(SocketIOError.transport("session closed"))
            return
        }
        var bytes = 0
        for f in frames { bytes &+= f.bytes.count }
        if queue.count >= 4 * Self.backlogUnits || queuedBytes > 4 * payloadLimit {
            logger.warning("write backlog full; dropping a packet", metadata: ["queued": "\(queue.count)", "bytes": "\(queuedBytes)"])
            promise?.fail(SocketIOError.transport("write backlog full"))
            return
        }
        queue.append(Unit(frames: frames, promise: promise, bytes: bytes))
        queuedBytes &+= bytes
        flushQueue()
    }

    private func dequeued(_ unit: Unit) {
        queuedBytes &-= unit.bytes
    }

    /// Reports `.drained` once the backlog that was full is down to half.
    private func checkDrained() {
        guard backlogWasFull, queue.count <= Self.backlogUnits / 2, queuedBytes <= payloadLimit / 2 else { return }
        backlogWasFull = false
        onEvent?(.drained)
    }

    private func flushQueue() {
        guard machine.isOpen, !queue.isEmpty else { return }
        switch transport {
        case .websocket(let ws):
            // Only while the channel is writable: the rest waits here, bounded, and goes out
            // when the channel reports it is writable again.
            var wrote = false
            while ws.isWritable, let unit = queue.popFirst() {
                dequeued(unit)
                for (i, frame) in unit.frames.enumerated() {
                    let promise = i == unit.frames.count - 1 ? unit.promise : nil
                    if frame.isBinary {
                        ws.sendBinary(isEIO3 ? EngineIO3Codec.webSocketBinaryFrame(frame.bytes) : frame.bytes, flush: false, promise: promise)
                    } else {
                        ws.sendText(frame.bytes, flush: false, promise: promise)
                    }
                }
                wrote = true
            }
            if wrote {
                ws.flush()
                checkDrained()
            }
        case .polling(_, let post):
            flushPost(on: post)
        case .upgrading, .none:
            return
        }
    }

    /// How many frames of `queue` go in the next POST: at most 16 packets (python-engineio drops
    /// bigger payloads) and `byteLimit` bytes; a single larger packet still goes alone. Engine.IO 3
    /// writes `<length>:<packet>` records instead of `\x1e`-separated ones.
    static func postBatch(_ frames: some Sequence<OutgoingFrame>, byteLimit: Int,
                          revision: EngineIORevision = .eio4) -> (count: Int, body: [UInt8]) {
        var body: [UInt8] = []
        var count = 0
        for frame in frames {
            if revision == .eio3 {
                // A record's size is known once it is encoded.
                var record: [UInt8] = []
                EngineIO3Codec.appendPayloadRecord(frame.bytes, isBinary: frame.isBinary, into: &record)
                if count == 16 || (count > 0 && body.count + record.count > byteLimit) { break }
                body.append(contentsOf: record)
                count += 1
                continue
            }
            let size = frame.isBinary ? 2 + (frame.bytes.count + 2) / 3 * 4 : frame.bytes.count + 1
            if count == 16 || (count > 0 && body.count + size > byteLimit) { break }
            if !body.isEmpty { body.append(EngineIOCodec.recordSeparator) }
            if frame.isBinary {
                body.append(UInt8(ascii: "b"))
                Base64.encode(frame.bytes, into: &body)
            } else {
                body.append(contentsOf: frame.bytes)
            }
            count += 1
        }
        return (count, body)
    }

    private func flushPost(on lane: HTTPLane) {
        guard postInFlight == 0, !lane.isBusy, let h = handshake else { return }
        // Batches also stop at 60 kB, because python-engineio reads a POST body with one
        // `StreamReader.read(n)` that can return a truncated body when it arrives in several
        // segments.
        let byteLimit = min(h.maxPayload, 60_000)
        let (count, body) = Self.postBatch(queue.lazy.flatMap { $0.frames[$0.sent...] }, byteLimit: byteLimit, revision: settings.revision)
        postInFlight = count
        pollingRequest(.POST, on: lane, sid: h.sid, body: body, what: "POST") { [weak self] _ in
            guard let self else { return }
            var done = postInFlight
            postInFlight = 0
            while done > 0, var unit = queue.first {
                let take = min(done, unit.frames.count - unit.sent)
                unit.sent += take
                done -= take
                if unit.sent == unit.frames.count {
                    queue.removeFirst()
                    dequeued(unit)
                    unit.promise?.succeed()
                } else {
                    queue[queue.startIndex] = unit
                }
            }
            checkDrained()
            flushQueue()
        }
    }

    // MARK: Heartbeat

    /// Decodes a polling payload in this session's revision.
    private func decodePayload(_ bytes: UnsafeRawBufferPointer) throws(EngineIOParseError) -> [EngineIOPacket] {
        isEIO3 ? try EngineIO3Codec.decodePayload(bytes) : try EngineIOCodec.decodePayload(bytes)
    }

    /// Keeps the heartbeat timer at the machine's deadline.
    private func armHeartbeat() {
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
    private func fail(_ reason: DisconnectReason, _ detail: String, sessionGone: Bool = false) {
        guard !closedReported else { return }
        logger.debug("engine.io session closed", metadata: ["reason": "\(reason)", "detail": "\(detail)"])
        teardown()
        onEvent?(.closed(reason: reason, detail: detail, sessionGone: sessionGone))
        onEvent = nil
    }

    /// Ends the session because the handshake was answered with an HTTP error.
    private func refuse(_ refusal: HandshakeRefusal) {
        guard !closedReported else { return }
        logger.debug("engine.io handshake refused", metadata: ["status": "\(refusal.status)", "body": "\(refusal.body)"])
        teardown()
        onEvent?(.refused(refusal))
        onEvent = nil
    }

    /// Closes every connection the session owns (the upgrade probe too) and fails what is queued.
    private func teardown() {
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
