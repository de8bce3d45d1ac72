import DequeModule
import Logging
import NIOCore
import NIOHTTP1

/// The packets a polling transport was given and has not had accepted yet, cut into POST bodies:
/// a value with no I/O, shared by `PollingTransport` and the polling end of `InMemoryTransport`.
///
/// Bounded: it takes packets only while `isWritable` (no POST in flight, fewer than
/// ``maxPackets`` packets and `byteLimit` bytes waiting), so it holds at most one body's worth
/// plus the rest of the last unit written (a packet's attachments are written together).
struct PollingWriter {
    /// python-engineio drops payloads of more packets.
    static let maxPackets = 16
    let revision: EngineIORevision
    /// Bytes in one POST body. Batches also stop at 60 kB, because python-engineio reads a POST
    /// body with one `StreamReader.read(n)` that can return a truncated body when it arrives in
    /// several segments.
    var byteLimit = 60_000
    private(set) var pending = Deque<(frame: OutgoingFrame, promise: EventLoopPromise<Void>?)>()
    private(set) var pendingBytes = 0
    /// Packets in the POST in flight (0: none).
    private(set) var inFlight = 0

    init(revision: EngineIORevision) {
        self.revision = revision
    }

    var isWritable: Bool { inFlight == 0 && pending.count < Self.maxPackets && pendingBytes < byteLimit }
    var isEmpty: Bool { pending.isEmpty }

    mutating func append(_ frame: OutgoingFrame, promise: EventLoopPromise<Void>?) {
        pending.append((frame, promise))
        pendingBytes &+= frame.bytes.count
    }

    /// The body of the next POST, when none is in flight and something waits.
    mutating func nextBatch() -> [UInt8]? {
        guard inFlight == 0, !pending.isEmpty else { return nil }
        let (count, body) = Self.postBatch(pending.lazy.map(\.frame), byteLimit: byteLimit, revision: revision)
        inFlight = count
        return body
    }

    /// The POST in flight was accepted: its packets leave; returns their promises.
    mutating func accepted() -> [EventLoopPromise<Void>] {
        var promises: [EventLoopPromise<Void>] = []
        while inFlight > 0, let (frame, promise) = pending.popFirst() {
            inFlight -= 1
            pendingBytes &-= frame.bytes.count
            if let promise { promises.append(promise) }
        }
        inFlight = 0
        return promises
    }

    /// Everything leaves (the transport closed); returns the promises to fail.
    mutating func removeAll() -> [EventLoopPromise<Void>] {
        let promises = pending.compactMap(\.promise)
        pending.removeAll()
        pendingBytes = 0
        inFlight = 0
        return promises
    }

    /// How many of `frames` go in the next POST: at most ``maxPackets`` packets and `byteLimit`
    /// bytes; a single larger packet still goes alone. Engine.IO 3 writes `<length>:<packet>`
    /// records instead of `\x1e`-separated ones.
    static func postBatch(_ frames: some Sequence<OutgoingFrame>, byteLimit: Int,
                          revision: EngineIORevision = .eio4) -> (count: Int, body: [UInt8]) {
        var body: [UInt8] = []
        var count = 0
        for frame in frames {
            if revision == .eio3 {
                // A record's size is known once it is encoded.
                var record: [UInt8] = []
                EngineIO3Codec.appendPayloadRecord(frame.bytes, isBinary: frame.isBinary, into: &record)
                if count == maxPackets || (count > 0 && body.count + record.count > byteLimit) { break }
                body.append(contentsOf: record)
                count += 1
                continue
            }
            let size = frame.isBinary ? 2 + (frame.bytes.count + 2) / 3 * 4 : frame.bytes.count + 1
            if count == maxPackets || (count > 0 && body.count + size > byteLimit) { break }
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
}

/// HTTP long-polling as an `EngineTransport`: the handshake GET, the poll loop on one
/// keep-alive connection and POSTs of what was written on another (so at most one GET and one
/// POST are in flight). A transport error or an answer other than 200 ends it (a 400 means the
/// server no longer knows the sid); cookies are kept from every answer. Used on its loop only.
final class PollingTransport: EngineTransport {
    let kind = TransportKind.polling
    private let loop: any EventLoop
    private let cookies: CookieStore
    private let logger: Logger
    private let get: HTTPLane
    private let post: HTTPLane
    private var writer: PollingWriter
    private var request: TransportRequestHead?
    private var polling = false
    private var closed = false
    var onFrame: ((TransportMessage) -> Void)?
    var onClose: ((TransportClosure) -> Void)?
    var onWritable: (() -> Void)?

    init(loop: any EventLoop, target: ConnectionTarget, revision: EngineIORevision, cookies: CookieStore, logger: Logger, maxBodySize: Int) {
        self.loop = loop
        self.cookies = cookies
        self.logger = logger
        self.get = HTTPLane(loop: loop, target: target, maxBodySize: maxBodySize)
        self.post = HTTPLane(loop: loop, target: target, maxBodySize: 4096)
        self.writer = PollingWriter(revision: revision)
    }

    var isWritable: Bool { !closed && request != nil && writer.isWritable }

    func open(uri: String, headers: HTTPHeaders) -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        let promise = loop.makePromise(of: Void.self)
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)
        head.headers = headers
        get.request(head, body: nil).assumeIsolated().whenComplete { [self] result in
            guard !closed else { return promise.fail(SocketIOError.transport("connection closed")) }
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let response):
                cookies.absorb(response.headers, logger: logger)
                guard response.status == .ok else {
                    let body = String(decoding: response.body.readableBytesView.prefix(HandshakeRefusal.maxBody), as: UTF8.self)
                    return promise.fail(HandshakeRefusal(status: Int(response.status.code), body: body))
                }
                promise.succeed()
                onFrame?(.payload(response.body))
            }
        }
        return promise.futureResult
    }

    func sessionOpened(_ handshake: EngineIOHandshake, maxMessageSize: Int, request: @escaping TransportRequestHead, paused: Bool) {
        loop.preconditionInEventLoop()
        get.maxBodySize = maxMessageSize
        writer.byteLimit = min(handshake.maxPayload, 60_000)
        self.request = request
        if !paused { resume() }
    }

    func resume() {
        guard !closed, !polling else { return }
        polling = true
        poll()
        flush()
    }

    private func poll() {
        guard polling, !closed, !get.isBusy else { return }
        exchange(.GET, on: get, body: nil, what: "poll") { [self] response in
            onFrame?(.payload(response.body))
            poll()
        }
    }

    func sendText(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?) {
        write(OutgoingFrame(bytes: bytes, isBinary: false), flush: flush, promise: promise)
    }

    func sendBinary(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?) {
        write(OutgoingFrame(bytes: bytes, isBinary: true), flush: flush, promise: promise)
    }

    private func write(_ frame: OutgoingFrame, flush: Bool, promise: EventLoopPromise<Void>?) {
        loop.preconditionInEventLoop()
        guard !closed else {
            promise?.fail(SocketIOError.transport("connection closed"))
            return
        }
        writer.append(frame, promise: promise)
        if flush { self.flush() }
    }

    func flush() {
        guard !closed, request != nil, !post.isBusy, let body = writer.nextBatch() else { return }
        exchange(.POST, on: post, body: body, what: "POST") { [self] _ in
            for promise in writer.accepted() { promise.succeed() }
            guard !closed else { return }
            if writer.isEmpty {
                onWritable?()
            } else {
                flush()
            }
        }
    }

    /// Sends one request of the open session; `onOK` gets a 200 answer, anything else ends the
    /// transport. Nothing happens once it was closed.
    private func exchange(_ method: HTTPMethod, on lane: HTTPLane, body: [UInt8]?, what: String,
                          onOK: @escaping (HTTPResponse) -> Void) {
        guard let request else { return }
        let (uri, headers) = request(method == .POST)
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
        head.headers = headers
        lane.request(head, body: body).assumeIsolated().whenComplete { [weak self] result in
            guard let self, !closed else { return }
            switch result {
            case .failure(let error):
                failed(TransportClosure(describeIOError(error), reason: .transportError))
            case .success(let response):
                cookies.absorb(response.headers, logger: logger)
                guard response.status == .ok else {
                    failed(TransportClosure("\(what) answered \(response.status.code): \(describeBody(response.body))",
                                            reason: .transportError, sessionGone: response.status == .badRequest))
                    return
                }
                onOK(response)
            }
        }
    }

    private func failed(_ closure: TransportClosure) {
        let callback = onClose
        detachAndClose()
        callback?(closure)
    }

    func close() {
        loop.preconditionInEventLoop()
        guard !closed else { return }
        closed = true
        polling = false
        get.close()
        post.close()
        for promise in writer.removeAll() { promise.fail(SocketIOError.transport("connection closed")) }
    }

    func detachAndClose() {
        onClose = nil
        onFrame = nil
        onWritable = nil
        close()
    }
}
