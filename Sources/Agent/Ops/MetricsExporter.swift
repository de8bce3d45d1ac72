import Logging
import NIOCore
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
/// nothing waits). Its limits are ``MetricsListenerLimits``: at most 16 connections (the one idle
/// the longest makes room for a new one), one request at a time per connection, heads of at
/// most 8 KiB, idle connections closed after 10 s, and a client that does not read its answers
/// closed. Requests other than `GET`/`HEAD /metrics` get 404/405. The text file is written off the loop, to a temporary name in the
/// same directory and renamed over the old one, so the collector never reads half a file.
final class MetricsExporter: Sendable {
    static let maxConnections = MetricsListenerLimits.maxConnections

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
        let snapshot = self.snapshot
        // Created here, off the loop, and used only on it (checked on every access).
        let connections = NIOLoopBoundBox.makeBoxSendingValue(MetricsConnections(limit: Self.maxConnections), eventLoop: loop)
        let bound = try await ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Each connection asks for bytes only when it is ready for the next request.
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(MetricsListenerLimits.sendBufferBytes))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let registry = connections.value
                    guard registry.admit(channel, now: .now()) else {
                        channel.close(promise: nil)
                        return
                    }
                    try channel.pipeline.syncOperations.addHandler(MetricsConnectionHandler(snapshot: snapshot, connections: registry))
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

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
///
/// The temporary name is created, never reused: `O_CREAT|O_EXCL|O_NOFOLLOW`, so a file or a
/// symbolic link planted under that name is never written through (a leftover is removed, the
/// link itself and not what it points to, and creation is tried once more). The file is made
/// `mode` with `fchmod`, whatever the umask: metrics are for another user (node_exporter) to read,
/// and the unit's `UMask=0077` would otherwise leave them 0600.
func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
    let temporary = path + ".tmp." + String(getpid())
    let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
    var fd = open(temporary, flags, mode)
    if fd < 0 && errno == EEXIST {
        unlink(temporary)
        fd = open(temporary, flags, mode)
    }
    guard fd >= 0 else { throw systemError("cannot create \(temporary)") }
    guard fchmod(fd, mode) == 0 else {
        let error = systemError("cannot set the mode of \(temporary)")
        close(fd)
        unlink(temporary)
        throw error
    }
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

