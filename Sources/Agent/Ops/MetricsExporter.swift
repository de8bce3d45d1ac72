import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Serves `GET /metrics` (Prometheus text format) on `metrics.listen`, and writes
/// `metrics.textfile` every `metrics.interval` for node_exporter's textfile collector.
///
/// The listener runs on the agent's event loop (a scrape takes a snapshot there and renders it;
/// nothing waits). At most ``maxConnections`` scrapers at once; requests other than
/// `GET /metrics` get 404/405. The text file is written off the loop, to a temporary name in the
/// same directory and renamed over the old one, so the collector never reads half a file.
final class MetricsExporter: Sendable {
    static let maxConnections = 16

    private let loop: any EventLoop
    private let logger: Logger
    private let snapshot: @Sendable () -> EventLoopFuture<String>
    private let channel = Mutex<(any Channel)?>(nil)
    private let writer = Mutex<Task<Void, Never>?>(nil)

    /// - Parameter render: produces the exposition text; called on `loop`.
    init(loop: any EventLoop, logger: Logger, render: @escaping @Sendable () -> String) {
        self.loop = loop
        self.logger = logger
        self.snapshot = { loop.submit { render() } }
    }

    /// Binds the listener. Throws when the address cannot be bound.
    func listen(host: String, port: Int) async throws -> SocketAddress? {
        let active = ConnectionCount()
        let snapshot = self.snapshot
        let bound = try await ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if active.value.wrappingAdd(1, ordering: .relaxed).newValue > Self.maxConnections {
                        active.value.wrappingSubtract(1, ordering: .relaxed)
                        channel.close(promise: nil)
                        return
                    }
                    channel.closeFuture.whenComplete { _ in active.value.wrappingSubtract(1, ordering: .relaxed) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(snapshot: snapshot))
                }
            }
            .bind(host: host, port: port).get()
        channel.withLock { $0 = bound }
        logger.info("metrics listening", metadata: ["metrics.address": "\(bound.localAddress.map { "\($0)" } ?? "")"])
        return bound.localAddress
    }

    /// Writes `path` now and then every `interval`, until ``stop()``.
    func startTextfile(path: String, interval: Duration) {
        let snapshot = self.snapshot
        let logger = self.logger
        let task = Task.detached {
            var failing = false
            while !Task.isCancelled {
                if let text = try? await snapshot().get() {
                    do {
                        try await NIOThreadPool.singleton.runIfActive { try writeAtomically(path, Array(text.utf8)) }
                        if failing { logger.info("metrics text file written again", metadata: ["metrics.textfile": "\(path)"]) }
                        failing = false
                    } catch {
                        // Once per failure streak, not every interval.
                        if !failing { logger.warning("cannot write the metrics text file", metadata: ["metrics.textfile": "\(path)", "error": "\(error)"]) }
                        failing = true
                    }
                }
                try? await Task.sleep(for: interval)
            }
        }
        writer.withLock { $0 = task }
    }

    /// Closes the listener and stops the text file writer.
    func stop() async {
        writer.withLock { $0 }?.cancel()
        let c = channel.withLock { c -> (any Channel)? in
            defer { c = nil }
            return c
        }
        try? await c?.close()
    }
}

private final class ConnectionCount: Sendable {
    let value = Atomic<Int>(0)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
    let temporary = path + ".tmp." + String(getpid())
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw systemError("cannot create \(temporary)") }
    let ok = writeAll(fd, bytes)
    close(fd)
    guard ok else {
        unlink(temporary)
        throw systemError("cannot write \(temporary)")
    }
    guard rename(temporary, path) == 0 else {
        let error = systemError("cannot rename \(temporary) to \(path)")
        unlink(temporary)
        throw error
    }
}

private final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let snapshot: @Sendable () -> EventLoopFuture<String>
    private var head: HTTPRequestHead?

    init(snapshot: @escaping @Sendable () -> EventLoopFuture<String>) {
        self.snapshot = snapshot
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break  // ignored (and bounded by the decoder)
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            let keepAlive = head.isKeepAlive
            if head.method != .GET && head.method != .HEAD {
                respond(context, .methodNotAllowed, "only GET\n", keepAlive: keepAlive, extra: [("Allow", "GET, HEAD")])
            } else if path != "/metrics" {
                respond(context, .notFound, "metrics are at /metrics\n", keepAlive: keepAlive)
            } else {
                let isHead = head.method == .HEAD
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                snapshot().hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
                    let context = bound.value
                    switch result {
                    case .success(let text):
                        self.respond(
                            context, .ok, isHead ? "" : text, keepAlive: keepAlive,
                            contentType: "text/plain; version=0.0.4; charset=utf-8")
                    case .failure:
                        self.respond(context, .serviceUnavailable, "shutting down\n", keepAlive: false)
                    }
                }
            }
        }
    }

    private func respond(
        _ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ body: String, keepAlive: Bool,
        contentType: String = "text/plain; charset=utf-8", extra: [(String, String)] = []
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        for (k, v) in extra { headers.add(name: k, value: v) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !body.isEmpty {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        }
        let done = context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
