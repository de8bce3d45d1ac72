import ArgumentParser
import Logging
import NIOCore
import NIOPosix
import SocketIO
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Options shared by `listen` and `emit`.
struct ClientOptions: ParsableArguments {
    @Argument(help: "Server URL: http, https, ws or wss (may carry a query).")
    var url: String

    @Option(name: .customLong("namespace"), help: "Namespace to join (repeatable; default /).")
    var namespaces: [String] = []

    @Option(help: "Auth payload (a JSON object) sent with every namespace CONNECT.")
    var auth: String?

    @Option(name: .customLong("header"), help: "Extra HTTP header 'Name: value' (repeatable).")
    var headers: [String] = []

    @Option(help: "Transport: auto (polling, then upgrade), websocket or polling.")
    var transport: TransportMode = .auto

    @Option(help: "Engine.IO path.")
    var path: String = "/socket.io/"

    @Option(name: .customLong("ca-file"), help: "PEM file of CA certificates to trust instead of the system roots.")
    var caFile: String?

    @Flag(help: "Do not verify TLS certificates.")
    var insecure = false

    @Option(help: "HTTP proxy: http://[user:password@]host:port, or 'none'. Default: https_proxy/http_proxy/no_proxy.")
    var proxy: String?

    @Flag(help: "Log connection details to stderr.")
    var verbose = false

    func validate() throws {
        if let auth {
            guard let value = try? JSONValue(parsing: auth), value.objectValue != nil else {
                throw ValidationError("--auth must be a JSON object")
            }
        }
        for header in headers {
            guard let colon = header.firstIndex(of: ":"), colon != header.startIndex else {
                throw ValidationError("--header must look like 'Name: value', got '\(header)'")
            }
        }
        do {
            _ = try ServerURLCheck.check(url)
        } catch {
            throw ValidationError("\(error)")
        }
        if let proxy, proxy != "none" {
            do {
                _ = try ProxyURL(proxy)
            } catch {
                throw ValidationError("--proxy: \(error)")
            }
        }
    }

    func configuration() -> SocketIOClientConfiguration {
        let authValue = auth.flatMap { try? JSONValue(parsing: $0) }?.decodingBinaryMarkers()
        var namespaceMap: [String: JSONValue?] = [:]
        for ns in namespaces.isEmpty ? ["/"] : namespaces {
            namespaceMap[ns.hasPrefix("/") ? ns : "/" + ns] = .some(authValue)
        }
        let headerPairs = headers.map { header -> (name: String, value: String) in
            let colon = header.firstIndex(of: ":")!
            let value = header[header.index(after: colon)...].drop { $0 == " " }
            return (String(header[..<colon]), String(value))
        }
        return SocketIOClientConfiguration(
            url: url,
            path: path,
            transports: transport,
            namespaces: namespaceMap,
            headers: headerPairs,
            tls: TLSOptions(caFile: caFile, insecure: insecure)
        ).withProxy(proxy)
    }

    func logger() -> Logger {
        var logger = Logger(label: "sioagent") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = verbose ? .debug : .warning
        return logger
    }

    var namespaceList: [String] {
        (namespaces.isEmpty ? ["/"] : namespaces).map { $0.hasPrefix("/") ? $0 : "/" + $0 }
    }
}

enum ServerURLCheck {
    static func check(_ url: String) throws -> Bool {
        let lower = url.lowercased()
        guard ["http://", "https://", "ws://", "wss://"].contains(where: { lower.hasPrefix($0) }),
            url.count > lower.prefix(while: { $0 != "/" }).count + 2
        else {
            throw ValidationError("the URL must start with http://, https://, ws:// or wss:// and name a host")
        }
        return true
    }
}

extension TransportMode: ExpressibleByArgument {}

/// A duration option: `500ms`, `5s`, `2m`, `1h`, or a number of seconds.
struct DurationArgument: ExpressibleByArgument, Sendable {
    var duration: Duration

    init(duration: Duration) {
        self.duration = duration
    }

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(argument)
        var scale = 1.0
        for (suffix, factor) in units where argument.hasSuffix(suffix) {
            number = argument.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        duration = .nanoseconds(Int64(value * scale * 1e9))
    }

    var timeAmount: TimeAmount {
        .nanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }
}

/// Writes a line to stdout at once (unbuffered, so pipes see it).
func printLine(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(1, buffer.baseAddress! + offset, buffer.count - offset)
            if n <= 0 { return }
            offset += n
        }
    }
}

/// A one-line error on stderr, then exit 1.
func fail(_ message: String) -> ExitCode {
    FileHandleStderr.write("sioagent: \(message)\n")
    return ExitCode(1)
}

struct ListenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listen",
        abstract: "Print every incoming event as one JSON line; stays connected through reconnects."
    )

    @OptionGroup var client: ClientOptions

    @Option(help: "Exit 0 after this many events.")
    var count: Int?

    @Option(help: "Give up (exit 1) if not connected, or if --count events did not arrive, within this time (e.g. 10s).")
    var timeout: DurationArgument?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        let namespaces = Set(client.namespaceList)
        let limit = count
        let done = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
        let seen = Mutex(0)
        let socket = SocketIOClient(configuration: client.configuration(), logger: client.logger()) { event in
            switch event {
            case .event(let e):
                guard namespaces.contains(e.namespace) else { return }
                let n = seen.withLock { n -> Int in
                    n += 1
                    return n
                }
                if let limit, n > limit { return }
                printLine(e.jsonLine)
                if let limit, n == limit { done.succeed() }
            case .connectError(let ns, let error):
                if case .connectionRefused = error {
                    done.fail(error)
                } else {
                    FileHandleStderr.write("sioagent: \(ns): \(error)\n")
                }
            case .disconnect(let ns, let reason) where reason == .serverDisconnect:
                FileHandleStderr.write("sioagent: \(ns): disconnected by the server\n")
            case .reconnectFailed:
                done.fail(SocketIOError.disconnected)
            default:
                break
            }
        }
        let events = socket.events
        socket.connect()
        do {
            for ns in namespaces {
                try await socket.waitUntilConnected(namespace: ns, timeout: timeout?.duration ?? .seconds(30))
            }
        } catch {
            await socket.disconnect()
            throw fail("\(error)")
        }
        // Ends when the client closes for good (e.g. every namespace kicked by the server).
        let closedWatcher = Task {
            for await _ in events {}
            done.fail(SocketIOError.disconnected)
        }
        defer { closedWatcher.cancel() }
        if let timeout {
            let deadline = done.futureResult.eventLoop.scheduleTask(in: timeout.timeAmount) {
                done.fail(SocketIOError.connectTimeout)
            }
            done.futureResult.whenComplete { _ in deadline.cancel() }
        }
        do {
            try await done.futureResult.get()
            await socket.disconnect()
        } catch SocketIOError.connectTimeout {
            await socket.disconnect()
            throw fail("timed out after \(timeout!.duration) waiting for \(limit.map(String.init) ?? "more") events")
        } catch {
            await socket.disconnect()
            throw fail("\(error)")
        }
    }
}

extension SocketIOClientConfiguration {
    /// `--proxy`: a URL, `none` (direct), or nil (the environment's).
    func withProxy(_ proxy: String?) -> SocketIOClientConfiguration {
        var c = self
        if let proxy { c.proxy = proxy == "none" ? .direct : .url(proxy) }
        return c
    }
}
