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
}

/// Cookies shared by every request of a client (loop only).
final class CookieStore: @unchecked Sendable {
    var jar = CookieJar()

    func absorb(_ headers: HTTPHeaders) {
        for value in headers["Set-Cookie"] { jar.store(setCookie: value) }
    }
}

/// One encoded Engine.IO packet ready for a transport: text bytes include the type digit.
struct OutgoingFrame {
    var bytes: [UInt8]
    var isBinary: Bool
}

/// One Engine.IO session (handshake, transports, upgrade, heartbeat, write queue). Lives on its
/// event loop; every method must be called there. Reports to its owner through `onEvent`.
final class EngineSession: @unchecked Sendable {
    enum Event {
        case open(EngineIOHandshake)
        case packet(EngineIOPacket)
        /// The session is over. `sessionGone`: the server no longer knows the sid (reconnect at once).
        case closed(reason: DisconnectReason, detail: String, sessionGone: Bool)
    }

    private enum State { case idle, opening, open, closed }

    /// A group of frames written together (a Socket.IO packet and its attachments).
    private struct Unit {
        var frames: [OutgoingFrame]
        var sent = 0
        var promise: EventLoopPromise<Void>?
    }

    let loop: any EventLoop
    private let settings: EngineSettings
    private let cookies: CookieStore
    private var logger: Logger
    var onEvent: ((Event) -> Void)?

    private var state = State.idle
    private(set) var handshake: EngineIOHandshake?
    private var ws: WebSocketConnection?
    private var getLane: HTTPLane?
    private var postLane: HTTPLane?
    private var upgrading = false
    private var queue = Deque<Unit>()
    private var postInFlight = 0
    private var lastReceived = NIODeadline.now()
    private var livenessTimer: Scheduled<Void>?
    private var upgradeTimer: Scheduled<Void>?

    init(loop: any EventLoop, settings: EngineSettings, cookies: CookieStore, logger: Logger) {
        self.loop = loop
        self.settings = settings
        self.cookies = cookies
        self.logger = logger
    }

    var isOpen: Bool { state == .open }
    var transportName: String { ws != nil ? "websocket" : "polling" }

    // MARK: Opening

    func open() {
        loop.preconditionInEventLoop()
        guard state == .idle else { return }
        state = .opening
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
        uri += "EIO=4&transport=" + transport + "&t=" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
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

    private func openWebSocketDirectly() {
        let ws = WebSocketConnection(loop: loop)
        self.ws = ws
        ws.onUpgradeResponse = { [cookies] head in cookies.absorb(head.headers) }
        ws.onFrame = { [unowned self] frame in self.receiveFrame(frame) }
        ws.onClose = { [unowned self] reason in self.fail(.transportClose, reason) }
        ws.connect(target: settings.target, uri: uri(transport: "websocket", sid: nil), headers: headers())
            .assumeIsolated().whenFailure { [self] error in
                self.fail(.transportError, describeIOError(error))
            }
    }

    private func openPolling() {
        let get = HTTPLane(loop: loop, target: settings.target)
        getLane = get
        postLane = HTTPLane(loop: loop, target: settings.target)
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri(transport: "polling", sid: nil))
        head.headers = headers()
        get.request(head, body: nil).assumeIsolated().whenComplete { [self] result in
            guard state == .opening else { return }
            switch result {
            case .failure(let error):
                fail(.transportError, describeIOError(error))
            case .success(let response):
                cookies.absorb(response.headers)
                guard response.status == .ok else {
                    fail(.transportError, "handshake answered \(response.status.code): \(String(buffer: response.body))")
                    return
                }
                let packets: [EngineIOPacket]
                do {
                    packets = try response.body.withUnsafeReadableBytes { buffer in
                        try EngineIOCodec.decodePayload(buffer)
                    }
                } catch {
                    fail(.parseError, "\(error)")
                    return
                }
                guard let first = packets.first, first.type == .open, !first.isBinary else {
                    fail(.parseError, "the handshake did not start with an open packet")
                    return
                }
                let willUpgrade = settings.mode == .auto
                upgrading = willUpgrade
                guard opened(first.payload) else { return }
                for packet in packets.dropFirst() {
                    receive(packet)
                    guard state == .open else { return }
                }
                if willUpgrade, handshake?.upgrades.contains("websocket") == true {
                    startUpgrade()
                } else {
                    upgrading = false
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
            handshake = h
            state = .open
            logger[metadataKey: "eio.sid"] = "\(h.sid)"
            logger.debug("engine.io session open", metadata: [
                "pingInterval": "\(h.pingInterval)", "pingTimeout": "\(h.pingTimeout)", "upgrades": "\(h.upgrades)",
            ])
            lastReceived = .now()
            armLiveness()
            onEvent?(.open(h))
            return state == .open
        } catch {
            fail(.parseError, "\(error)")
            return false
        }
    }

    // MARK: Upgrade

    private func startUpgrade() {
        guard let sid = handshake?.sid else { return }
        let ws = WebSocketConnection(loop: loop)
        var probed = false
        let abandon: (String) -> Void = { [unowned self, unowned ws] reason in
            guard self.upgrading, self.state == .open else { return }
            self.logger.debug("upgrade to websocket failed, staying on polling", metadata: ["reason": "\(reason)"])
            ws.onClose = nil
            ws.onFrame = nil
            ws.close()
            self.upgradeTimer?.cancel()
            self.upgrading = false
            self.poll()
            self.flushQueue()
        }
        ws.onUpgradeResponse = { [cookies] head in cookies.absorb(head.headers) }
        ws.onClose = { reason in abandon(reason) }
        ws.onFrame = { [unowned self, unowned ws] frame in
            guard !probed, case .text(let buffer) = frame, String(buffer: buffer) == "3probe" else {
                abandon("unexpected answer to the probe")
                return
            }
            probed = true
            guard self.upgrading, self.state == .open else { return }
            self.upgradeTimer?.cancel()
            ws.sendText([UInt8(ascii: "5")], flush: true, promise: nil)
            self.ws = ws
            self.getLane?.close()
            self.postLane?.close()
            self.getLane = nil
            self.postLane = nil
            ws.onFrame = { [unowned self] frame in self.receiveFrame(frame) }
            ws.onClose = { [unowned self] reason in self.fail(.transportClose, reason) }
            self.upgrading = false
            self.lastReceived = .now()
            self.logger.debug("upgraded to websocket")
            self.flushQueue()
        }
        upgradeTimer = loop.assumeIsolated().scheduleTask(in: settings.upgradeTimeout) { abandon("timeout") }
        ws.connect(target: settings.target, uri: uri(transport: "websocket", sid: sid), headers: headers())
            .assumeIsolated().whenComplete { result in
                switch result {
                case .success:
                    ws.sendText(Array("2probe".utf8), flush: true, promise: nil)
                case .failure(let error):
                    abandon(describeIOError(error))
                }
            }
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
                if state == .opening {
                    guard packet.type == .open else {
                        fail(.parseError, "the first packet was not an open packet")
                        return
                    }
                    _ = opened(packet.payload)
                } else {
                    receive(packet)
                }
            case .failure(let error):
                lastReceived = .now()
                logger.warning("ignoring a malformed packet", metadata: ["error": "\(error)"])
            }
        case .binary(let buffer):
            receive(.binaryMessage(Array(buffer.readableBytesView)))
        }
    }

    private func receive(_ packet: EngineIOPacket) {
        guard state == .open else { return }
        lastReceived = .now()
        switch packet.type {
        case .message:
            onEvent?(.packet(packet))
        case .ping:
            var bytes: [UInt8] = [UInt8(ascii: "3")]
            bytes.append(contentsOf: packet.payload)
            queue.append(Unit(frames: [OutgoingFrame(bytes: bytes, isBinary: false)]))
            flushQueue()
        case .close:
            fail(.transportClose, "the server closed the session")
        case .pong, .noop, .upgrade:
            break
        case .open:
            logger.warning("ignoring a second open packet")
        }
    }

    private func poll() {
        guard state == .open, ws == nil, !upgrading, let lane = getLane, !lane.isBusy, let sid = handshake?.sid else { return }
        pollingRequest(.GET, on: lane, sid: sid, body: nil, what: "poll", isCurrent: { [self] in getLane === lane }) { [self] response in
            let decoded = response.body.withUnsafeReadableBytes { bytes in
                Result { () throws(EngineIOParseError) in try EngineIOCodec.decodePayload(bytes) }
            }
            switch decoded {
            case .success(let packets):
                for packet in packets {
                    receive(packet)
                    guard state == .open else { return }
                }
            case .failure(let error):
                lastReceived = .now()
                logger.warning("ignoring a malformed polling payload", metadata: ["error": "\(error)"])
            }
            poll()
        }
    }

    /// Sends one long-polling request on `lane`. A transport error or an answer other than 200
    /// ends the session (a 400 means the server no longer knows the sid); cookies are kept from
    /// every answer; `onOK` gets a 200 answer. Nothing happens once the session or the lane has
    /// been replaced (`isCurrent` false).
    private func pollingRequest(
        _ method: HTTPMethod, on lane: HTTPLane, sid: String, body: [UInt8]?, what: String,
        isCurrent: @escaping () -> Bool, onOK: @escaping (HTTPResponse) -> Void
    ) {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri(transport: "polling", sid: sid))
        head.headers = headers(post: method == .POST)
        lane.request(head, body: body).assumeIsolated().whenComplete { [self] result in
            guard state == .open, isCurrent() else { return }
            switch result {
            case .failure(let error):
                fail(.transportError, describeIOError(error))
            case .success(let response):
                cookies.absorb(response.headers)
                guard response.status == .ok else {
                    fail(.transportError, "\(what) answered \(response.status.code): \(String(buffer: response.body))",
                         sessionGone: response.status == .badRequest)
                    return
                }
                onOK(response)
            }
        }
    }

    // MARK: Sending

    /// Queues frames written together; `promise` completes when they were written (WebSocket) or
    /// the POST that carried them was accepted (polling), and fails if the session ends first.
    func send(_ frames: [OutgoingFrame], promise: EventLoopPromise<Void>?) {
        loop.preconditionInEventLoop()
        guard state == .open || state == .opening else {
            promise?.fail(SocketIOError.transport("session closed"))
            return
        }
        queue.append(Unit(frames: frames, promise: promise))
        flushQueue()
    }

    private func flushQueue() {
        guard state == .open, !upgrading, !queue.isEmpty else { return }
        if let ws {
            while let unit = queue.popFirst() {
                for (i, frame) in unit.frames.enumerated() {
                    let promise = i == unit.frames.count - 1 ? unit.promise : nil
                    if frame.isBinary {
                        ws.sendBinary(frame.bytes, flush: false, promise: promise)
                    } else {
                        ws.sendText(frame.bytes, flush: false, promise: promise)
                    }
                }
            }
            ws.flush()
            return
        }
        guard postInFlight == 0, let lane = postLane, !lane.isBusy, let h = handshake else { return }
        // At most 16 packets (python-engineio drops bigger payloads) and maxPayload bytes per POST;
        // batches also stop at 60 kB, because python-engineio reads a POST body with one
        // `StreamReader.read(n)` that can return a truncated body when it arrives in several
        // segments (a single larger packet still goes alone).
        let byteLimit = min(h.maxPayload, 60_000)
        var body: [UInt8] = []
        var count = 0
        outer: for unit in queue {
            for frame in unit.frames[unit.sent...] {
                let size = frame.isBinary ? 2 + (frame.bytes.count + 2) / 3 * 4 : frame.bytes.count + 1
                if count == 16 || (count > 0 && body.count + size > byteLimit) { break outer }
                if !body.isEmpty { body.append(EngineIOCodec.recordSeparator) }
                if frame.isBinary {
                    body.append(UInt8(ascii: "b"))
                    Base64.encode(frame.bytes, into: &body)
                } else {
                    body.append(contentsOf: frame.bytes)
                }
                count += 1
            }
        }
        postInFlight = count
        pollingRequest(.POST, on: lane, sid: h.sid, body: body, what: "POST", isCurrent: { [self] in postLane === lane }) { [self] _ in
            var done = postInFlight
            postInFlight = 0
            while done > 0, var unit = queue.first {
                let take = min(done, unit.frames.count - unit.sent)
                unit.sent += take
                done -= take
                if unit.sent == unit.frames.count {
                    queue.removeFirst()
                    unit.promise?.succeed()
                } else {
                    queue[queue.startIndex] = unit
                }
            }
            flushQueue()
        }
    }

    // MARK: Heartbeat

    private func armLiveness() {
        guard let h = handshake else { return }
        let timeout = TimeAmount(h.livenessTimeout)
        livenessTimer = loop.assumeIsolated().scheduleTask(deadline: lastReceived + timeout) { [self] in
            guard state == .open else { return }
            if NIODeadline.now() - lastReceived >= timeout {
                fail(.pingTimeout, "no ping from the server within \(h.pingInterval + h.pingTimeout) ms")
            } else {
                armLiveness()
            }
        }
    }

    // MARK: Closing

    /// Ends the session after a failure and reports it.
    private func fail(_ reason: DisconnectReason, _ detail: String, sessionGone: Bool = false) {
        guard state != .closed else { return }
        logger.debug("engine.io session closed", metadata: ["reason": "\(reason)", "detail": "\(detail)"])
        teardown()
        onEvent?(.closed(reason: reason, detail: detail, sessionGone: sessionGone))
        onEvent = nil
    }

    private func teardown() {
        state = .closed
        livenessTimer?.cancel()
        upgradeTimer?.cancel()
        ws?.onClose = nil
        ws?.onFrame = nil
        ws?.close()
        ws = nil
        getLane?.close()
        postLane?.close()
        let pending = queue
        queue.removeAll()
        for unit in pending { unit.promise?.fail(SocketIOError.transport("session closed")) }
    }

    /// Closes the session on the client's initiative: sends the close packet (after what is
    /// queued), then closes the transports. No `closed` event is reported.
    func close() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        onEvent = nil
        guard state == .open, !upgrading else {
            teardown()
            return loop.makeSucceededVoidFuture()
        }
        let done = loop.makePromise(of: Void.self)
        queue.append(Unit(frames: [OutgoingFrame(bytes: [UInt8(ascii: "1")], isBinary: false)], promise: done))
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
