import SIOCore
import Logging
import NIOCore
import Rules
import SocketIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Options shared by `listen` and `emit`.
struct ClientOptions {
    /// The positional URL, then the options, in the order the help lists them.
    static let urlArgument = ArgumentSpec(name: "url", help: "Server URL: http, https, ws or wss (may carry a query).")
    static let options: [OptionSpec] = [
        .option("namespace", "Namespace to join (repeatable; default /).", repeatable: true),
        .option("auth", "Auth payload (a JSON object) sent with every namespace CONNECT."),
        .option("header", "Extra HTTP header 'Name: value' (repeatable).", repeatable: true),
        .option("transport", "Transport: auto (polling, then upgrade), websocket or polling.", default: "auto"),
        .option("protocol", value: "protocol-version", "Protocol: auto (4, falling back to 3), 4, or 3 (Socket.IO v2 / Engine.IO 3 servers).", default: "auto"),
        .option("path", "Engine.IO path.", default: "/socket.io/"),
        .option("ca-file", "PEM file of CA certificates to trust instead of the system roots."),
        .flag("insecure", "Do not verify TLS certificates."),
        .option("proxy", "HTTP proxy: http://[user:password@]host:port, or 'none'. Default: https_proxy/http_proxy/no_proxy."),
        .flag("verbose", "Log connection details to stderr."),
    ]

    var url: String
    var namespaces: [String]
    var auth: String?
    var headers: [String]
    var transport: TransportMode
    var protocolVersion: ProtocolVersion
    var path: String
    var caFile: String?
    var insecure: Bool
    var proxy: String?
    var verbose: Bool

    init(_ arguments: ParsedArguments) throws(ValidationError) {
        url = arguments.argument("url") ?? ""
        namespaces = arguments.strings("namespace")
        auth = arguments.string("auth")
        headers = arguments.strings("header")
        transport = try arguments.value("transport", choices: choiceList(TransportMode.self)) ?? .auto
        protocolVersion = try arguments.value("protocol", valueName: "protocol-version", choices: choiceList(ProtocolVersion.self)) ?? .auto
        path = arguments.string("path") ?? "/socket.io/"
        caFile = arguments.string("ca-file")
        insecure = arguments.flag("insecure")
        proxy = arguments.string("proxy")
        verbose = arguments.flag("verbose")
    }

    func validate() throws(ValidationError) {
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
        var configuration = SocketIOClientConfiguration(
            url: url,
            path: path,
            transports: transport,
            namespaces: namespaceMap,
            headers: headerPairs,
            tls: TLSOptions(caFile: caFile, insecure: insecure)
        )
        configuration.protocolVersion = protocolVersion
        if let proxy { configuration.proxy = proxy == "none" ? .direct : .url(proxy) }
        return configuration
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

extension TransportMode: ArgumentValue {}
extension ProtocolVersion: ArgumentValue {}

/// A duration option: a number of seconds, or a duration as rule files write it (`500ms`, `5s`,
/// `2m`, `1h`, `1d`, `1h30m`).
struct DurationArgument: ArgumentValue, Sendable {
    var duration: Duration

    init(duration: Duration) {
        self.duration = duration
    }

    init?(argument: String) {
        if let seconds = Double(argument) {
            guard seconds >= 0, seconds <= longestDuration else { return nil }
            duration = durationFromSeconds(seconds)
        } else if let d = parseDuration(argument) {
            duration = d
        } else {
            return nil
        }
    }

    var timeAmount: TimeAmount {
        TimeAmount(duration)
    }
}

/// Writes a line to stdout at once (unbuffered, so pipes see it).
func printLine(_ text: String) {
    writeAll(1, text + "\n")
}

/// Writes all of `text` to `fd`, retrying short writes and interrupted calls; stops at an error.
func writeAll(_ fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}

/// A one-line error on stderr, then exit 1. The message may hold the server's words (a refusal,
/// an error reason): it goes through the shared sanitiser, so it stays one line.
func fail(_ message: String) -> ExitCode {
    FileHandleStderr.write("sioagent: \(OutsideText.escaped(message))\n")
    return ExitCode(1)
}
