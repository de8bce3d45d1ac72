import SIOCore
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The agent's log lines on standard error: JSON lines for journald and log shippers
/// (`{"time":…,"level":…,"label":…,"message":…, metadata…}`), or plain text for people.
/// One `write` per line, under a lock, so lines from different threads never interleave.
public struct AgentLogHandler: LogHandler {
    public enum Format: Sendable {
        case json, text
    }

    private static let lock = Mutex<Void>(())

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: Format
    private let fd: Int32

    public init(label: String, format: Format, level: Logger.Level, fileDescriptor: Int32 = 2) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.fd = fileDescriptor
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        var line: [UInt8] = []
        line.reserveCapacity(160)
        let time = Self.timestamp()
        switch format {
        case .json:
            var pairs: [(String, JSONValue)] = [
                ("time", .string(time)), ("level", .string(event.level.rawValue)), ("label", .string(label)),
                ("message", .string(event.message.description)),
            ]
            for key in merged.keys.sorted() {
                pairs.append((key, Self.json(merged[key]!)))
            }
            JSONValue.object(pairs: pairs).write(into: &line)
        case .text:
            // Message and values through the shared sanitiser (one event stays one line, and a
            // backslash in the data reads `\\`); values with spaces, quotes or `=` are quoted.
            var text = "\(time) \(event.level.rawValue) \(label): \(OutsideText.escaped(event.message.description))"
            for key in merged.keys.sorted() {
                let value = OutsideText.escaped("\(merged[key]!)")
                if value.isEmpty || value.unicodeScalars.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) {
                    text += " \(OutsideText.escaped(key))=\""
                    // Scalars, not Characters: a quote followed by a combining mark is one Character.
                    for c in value.unicodeScalars {
                        if c == "\"" { text += "\\\"" } else { text.unicodeScalars.append(c) }
                    }
                    text += "\""
                } else {
                    text += " \(OutsideText.escaped(key))=\(value)"
                }
            }
            line.append(contentsOf: text.utf8)
        }
        line.append(0x0A)
        Self.lock.withLock { _ in _ = writeAll(fd, line) }
    }

    private static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let s): return .string(s)
        case .stringConvertible(let c): return .string(c.description)
        case .array(let a): return .array(a.map(json))
        case .dictionary(let d): return .object(pairs: d.keys.sorted().map { ($0, json(d[$0]!)) })
        }
    }

    /// UTC time with milliseconds, RFC 3339.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var seconds = ts.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ n: Int32, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let millis = Int32(ts.tv_nsec / 1_000_000)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(millis, 3))Z"
    }
}

/// `text` made one safe line by the shared sanitiser (``OutsideText/escaped(_:)``): a rendered
/// `log` message never forges a second line in a log file, on standard output or in the agent's
/// own log, and a backslash in the data reads `\\`.
public func escapingControlCharacters(_ text: String) -> String {
    OutsideText.escaped(text)
}
