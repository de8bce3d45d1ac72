import Rules
import SocketIO
import SIOYAML

extension AgentConfiguration {
    /// The `metrics:` section: Prometheus metrics, off unless `listen` or `textfile` is set.
    public struct Metrics: Sendable, Equatable {
        /// `host:port` to serve `GET /metrics` on (e.g. `127.0.0.1:9464`).
        public var listen: (host: String, port: Int)?
        /// A `.prom` file for node_exporter's textfile collector, rewritten every `interval`.
        public var textfile: String?
        /// How often `textfile` is written (default 15 s; 1 s to 1 h).
        public var interval: Duration = .seconds(15)

        public init() {}

        public var enabled: Bool { listen != nil || textfile != nil }

        public static func == (a: Metrics, b: Metrics) -> Bool {
            a.listen?.host == b.listen?.host && a.listen?.port == b.listen?.port && a.textfile == b.textfile
                && a.interval == b.interval
        }
    }

    /// `host:port`, `[v6]:port`; nil when malformed.
    public static func parseListenAddress(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(" ") else { return nil }
        return (host, port)
    }

    mutating func readMetrics(_ node: YAMLNode, reader: inout ConfigReader, base: String) {
        for (k, _, v) in reader.mapping(node, "metrics", known: ["listen", "textfile", "interval"]) {
            switch k {
            case "listen":
                guard let s = reader.string(v, "metrics.listen") else { continue }
                if let address = Self.parseListenAddress(s) {
                    metrics.listen = address
                } else {
                    reader.error("metrics.listen must be host:port, e.g. 127.0.0.1:9464", at: v)
                }
            case "textfile":
                if let s = reader.string(v, "metrics.textfile") { metrics.textfile = resolve(s, base: base) }
            default:
                guard let d = reader.duration(v, "metrics.interval") else { continue }
                if d < .seconds(1) || d > .seconds(3600) {
                    reader.error("metrics.interval must be between 1s and 1h", at: v)
                } else {
                    metrics.interval = d
                }
            }
        }
    }

    mutating func readProxy(_ node: YAMLNode, reader: inout ConfigReader) {
        guard let s = reader.string(node, "server.proxy") else { return }
        if s.isEmpty || s == "none" || s == "direct" {
            server.proxy = .direct
            return
        }
        do {
            _ = try ProxyURL(s)
            server.proxy = .url(s)
        } catch {
            // Without the source line: it may hold the proxy's password. An unencoded reserved
            // character in the user info is pointed at (in a plain or single-line quoted scalar,
            // the value's column plus its offset; plus the opening quote).
            var column = node.mark.column
            if let offset = ProxyURL.reservedCharacterOffset(s), case .scalar(let scalar) = node {
                switch scalar.style {
                case .plain: column += offset
                case .singleQuoted, .doubleQuoted: column += offset + 1
                default: break
                }
            }
            reader.errors.append(
                Diagnostic(file: reader.file, line: node.mark.line, column: column, message: "server.proxy: \(error)"))
        }
    }
}
