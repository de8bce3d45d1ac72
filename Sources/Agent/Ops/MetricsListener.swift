import SIOCore
import NIOCore
import NIOPosix

/// The limits of the metrics listener (`metrics.listen`). Documented in docs/operations.md.
enum MetricsListenerLimits {
    /// Connections at once; at the limit the connection idle the longest is closed to make room,
    /// and a new connection is refused only when every connection is busy.
    static let maxConnections = 16
    /// A request head (request line and headers) is at most this long; longer gets 431 and a close.
    static let maxHeadBytes = 8 * 1024
    /// A connection that has no complete request this long after it opened or after its last
    /// answer is closed (a request head sent a byte at a time does not extend it).
    static let idleTimeout: TimeAmount = .seconds(10)
    /// An answer the client has not taken (read) this long after it was written closes the
    /// connection: a client that does not read gets no further answers.
    static let writeTimeout: TimeAmount = .seconds(5)
    /// At the connection limit with no idle connection, one whose answer has waited unread this
    /// long makes room too (the one waiting longest), so clients that never read cannot hold every
    /// slot for the whole write timeout.
    static let stalledAnswer: TimeAmount = .seconds(1)
    /// The kernel's send buffer for a scrape connection, so a client that does not read holds
    /// little memory in the kernel too.
    static let sendBufferBytes = 64 * 1024
}

/// A request head, as far as the metrics listener needs it.
struct MetricsRequest: Equatable {
    var method: String
    var path: String
    var keepAlive: Bool
    /// Content-Length other than 0, or any Transfer-Encoding: the listener reads no bodies, so
    /// the connection is closed after the answer.
    var hasBody: Bool
}

/// Parses one HTTP/1.x request head from the front of a buffer. Pure.
enum MetricsRequestParser {
    enum Result: Equatable {
        /// No complete head yet (and fewer than ``MetricsListenerLimits/maxHeadBytes`` bytes).
        case incomplete
        case tooLarge
        case malformed
        /// A head, and how many bytes it took (blank lines before it included).
        case request(MetricsRequest, consumed: Int)
    }

    static func parse(_ bytes: some RandomAccessCollection<UInt8>, maxHeadBytes: Int = MetricsListenerLimits.maxHeadBytes) -> Result {
        let a = Array(bytes.prefix(maxHeadBytes + 4))
        // Blank lines before a request are allowed (RFC 9112 2.2).
        var start = 0
        while start < a.count, a[start] == 0x0D || a[start] == 0x0A { start += 1 }
        // The end of the head: LF, optional CR, LF.
        var end: Int?
        var i = start
        while i < a.count {
            if a[i] == 0x0A {
                if i + 1 < a.count, a[i + 1] == 0x0A {
                    end = i + 2
                    break
                }
                if i + 2 < a.count, a[i + 1] == 0x0D, a[i + 2] == 0x0A {
                    end = i + 3
                    break
                }
            }
            i += 1
        }
        // Blank lines before the head count towards the bound: otherwise a client sending
        // nothing but CRLF would be asked for more bytes forever, and they would all be buffered.
        guard let end else { return a.count >= maxHeadBytes ? .tooLarge : .incomplete }
        guard end <= maxHeadBytes else { return .tooLarge }
        // Only visible ASCII, space, tab, CR, LF and (in header values) bytes >= 0x80.
        var lines: [ArraySlice<UInt8>] = []
        var lineStart = start
        for j in start..<end where a[j] == 0x0A {
            var line = a[lineStart..<j]
            if line.last == 0x0D { line = line.dropLast() }
            lines.append(line)
            lineStart = j + 1
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let requestLine = lines.first else { return .malformed }
        for line in lines where line.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) { return .malformed }
        let parts = requestLine.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty,
            parts[0].allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }),
            parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return .malformed }
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return .malformed }
        var keepAlive = version == "HTTP/1.1"
        var hasBody = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: 0x3A), colon > line.startIndex,
                !line[..<colon].contains(where: { $0 == 0x20 || $0 == 0x09 || $0 >= 0x80 })
            else { return .malformed }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingSpaces().lowercased()
            switch name {
            case "connection":
                let tokens = value.split(separator: ",").map { $0.trimmingSpaces() }
                if tokens.contains("close") { keepAlive = false }
                if tokens.contains("keep-alive") { keepAlive = true }
            case "content-length":
                if value != "0" { hasBody = true }
            case "transfer-encoding":
                hasBody = true
            default:
                break
            }
        }
        let target = String(decoding: parts[1], as: UTF8.self)
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        let request = MetricsRequest(
            method: String(decoding: parts[0], as: UTF8.self), path: path, keepAlive: keepAlive && !hasBody, hasBody: hasBody)
        return .request(request, consumed: end)
    }
}

/// The open scrape connections, confined to the listener's event loop: which are idle since
/// when, and which wait since when for the client to take an answer, so that at the limit the one
/// idle the longest, or else the one whose answer waits longest unread, makes room.
final class MetricsConnections {
    private struct Entry {
        var channel: any Channel
        /// Nil while a request is being answered.
        var idleSince: NIODeadline?
        /// Set while an answer is written and not yet taken by the kernel.
        var writingSince: NIODeadline?
    }

    private var entries: [ObjectIdentifier: Entry] = [:]
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    var count: Int { entries.count }

    /// Admits `channel`; at the limit first closes the connection idle the longest or, with none
    /// idle, the one whose answer has waited unread longest, if at least
    /// ``MetricsListenerLimits/stalledAnswer``. False (the caller closes `channel`) when every
    /// connection is busy otherwise.
    func admit(_ channel: any Channel, now: NIODeadline) -> Bool {
        if entries.count >= limit {
            var victim: (key: ObjectIdentifier, since: NIODeadline)?
            for (key, entry) in entries {
                if let since = entry.idleSince, victim.map({ since < $0.since }) ?? true { victim = (key, since) }
            }
            if victim == nil {
                let stalledBefore = now - MetricsListenerLimits.stalledAnswer
                for (key, entry) in entries {
                    guard let since = entry.writingSince, since <= stalledBefore else { continue }
                    if victim.map({ since < $0.since }) ?? true { victim = (key, since) }
                }
            }
            guard let victim, let entry = entries.removeValue(forKey: victim.key) else { return false }
            entry.channel.close(promise: nil)
        }
        entries[ObjectIdentifier(channel)] = Entry(channel: channel, idleSince: now)
        return true
    }

    func busy(_ channel: any Channel) {
        entries[ObjectIdentifier(channel)]?.idleSince = nil
    }

    /// An answer is being written to `channel` since `since`.
    func writing(_ channel: any Channel, since: NIODeadline) {
        entries[ObjectIdentifier(channel)]?.idleSince = nil
        entries[ObjectIdentifier(channel)]?.writingSince = since
    }

    func idle(_ channel: any Channel, since: NIODeadline) {
        entries[ObjectIdentifier(channel)]?.writingSince = nil
        entries[ObjectIdentifier(channel)]?.idleSince = since
    }

    func remove(_ channel: any Channel) {
        entries[ObjectIdentifier(channel)] = nil
    }
}

/// One scrape connection: reads only when it has no complete request buffered and is not
/// answering one, answers one request at a time, and writes the next answer only once the
/// previous one was taken by the kernel. Confined to the connection's loop (a handler).
final class MetricsConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let snapshot: @Sendable () -> EventLoopFuture<String>
    private let connections: MetricsConnections
    private var buffer = ByteBuffer()
    private var answering = false
    private var closing = false
    private var idleTimer: Scheduled<Void>?
    private var writeTimer: Scheduled<Void>?

    init(snapshot: @escaping @Sendable () -> EventLoopFuture<String>, connections: MetricsConnections) {
        self.snapshot = snapshot
        self.connections = connections
    }

    func channelActive(context: ChannelHandlerContext) {
        armIdleTimer(context)
        context.read()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        idleTimer?.cancel()
        writeTimer?.cancel()
        connections.remove(context.channel)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = Self.unwrapInboundIn(data)
        buffer.writeBuffer(&chunk)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        next(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close(context)
    }

    /// Answers the next buffered request, or asks for more bytes.
    private func next(_ context: ChannelHandlerContext) {
        guard !answering, !closing else { return }
        switch MetricsRequestParser.parse(buffer.readableBytesView) {
        case .incomplete:
            if buffer.readableBytes == 0 { buffer.clear() } else { buffer.discardReadBytes() }
            context.read()
        case .tooLarge:
            answer(context, .requestHeaderFieldsTooLarge, "request head over \(MetricsListenerLimits.maxHeadBytes) bytes\n", keepAlive: false)
        case .malformed:
            answer(context, .badRequest, "malformed request\n", keepAlive: false)
        case .request(let request, let consumed):
            buffer.moveReaderIndex(forwardBy: consumed)
            if request.method != "GET" && request.method != "HEAD" {
                answer(context, .methodNotAllowed, "only GET\n", keepAlive: request.keepAlive, extra: "Allow: GET, HEAD\r\n")
            } else if request.path != "/metrics" {
                answer(context, .notFound, "metrics are at /metrics\n", keepAlive: request.keepAlive, head: request.method == "HEAD")
            } else {
                let isHead = request.method == "HEAD"
                answering = true
                connections.busy(context.channel)
                idleTimer?.cancel()
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                snapshot().hop(to: context.eventLoop).whenComplete { result in
                    let (handler, context) = bound.value
                    switch result {
                    case .success(let text):
                        handler.answer(
                            context, .ok, text, keepAlive: request.keepAlive, head: isHead,
                            contentType: "text/plain; version=0.0.4; charset=utf-8")
                    case .failure:
                        handler.answer(context, .serviceUnavailable, "shutting down\n", keepAlive: false)
                    }
                }
            }
        }
    }

    /// Writes one answer; the next request is looked at once the kernel took all of it.
    private func answer(
        _ context: ChannelHandlerContext, _ status: HTTPStatusLine, _ body: String, keepAlive: Bool, head: Bool = false,
        contentType: String = "text/plain; charset=utf-8", extra: String = ""
    ) {
        answering = true
        connections.writing(context.channel, since: .now())
        idleTimer?.cancel()
        let bodyBytes = body.utf8.count
        var text = "HTTP/1.1 \(status.code) \(status.reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(bodyBytes)\r\n" + extra
        if !keepAlive { text += "Connection: close\r\n" }
        text += "\r\n"
        var out = context.channel.allocator.buffer(capacity: text.utf8.count + (head ? 0 : bodyBytes))
        out.writeString(text)
        if !head { out.writeString(body) }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        writeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: MetricsListenerLimits.writeTimeout) {
            let (handler, context) = bound.value
            handler.close(context)
        }
        context.writeAndFlush(Self.wrapOutboundOut(out)).assumeIsolated().whenComplete { result in
            let (handler, context) = bound.value
            handler.writeTimer?.cancel()
            handler.writeTimer = nil
            guard case .success = result, keepAlive else { return handler.close(context) }
            handler.answering = false
            handler.connections.idle(context.channel, since: .now())
            handler.armIdleTimer(context)
            handler.next(context)
        }
    }

    private func armIdleTimer(_ context: ChannelHandlerContext) {
        idleTimer?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: MetricsListenerLimits.idleTimeout) {
            let (handler, context) = bound.value
            handler.close(context)
        }
    }

    private func close(_ context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        idleTimer?.cancel()
        writeTimer?.cancel()
        context.close(promise: nil)
    }
}

/// The status lines the listener answers with.
struct HTTPStatusLine {
    var code: Int
    var reason: String
    static let ok = HTTPStatusLine(code: 200, reason: "OK")
    static let badRequest = HTTPStatusLine(code: 400, reason: "Bad Request")
    static let notFound = HTTPStatusLine(code: 404, reason: "Not Found")
    static let methodNotAllowed = HTTPStatusLine(code: 405, reason: "Method Not Allowed")
    static let requestHeaderFieldsTooLarge = HTTPStatusLine(code: 431, reason: "Request Header Fields Too Large")
    static let serviceUnavailable = HTTPStatusLine(code: 503, reason: "Service Unavailable")
}
