import DequeModule
import Logging
import NIOCore
import NIOHTTP1

/// Long-polling: the handshake GET, the poll loop, and POST batches of the write queue.
extension EngineSession {
    func openPolling() {
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

    func poll() {
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
    func pollingRequest(
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

    func flushPost(on lane: HTTPLane) {
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
}
