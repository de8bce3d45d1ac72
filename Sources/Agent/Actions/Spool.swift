import Rules

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An alert waiting to be delivered.
public struct SpoolItem: Sendable, Equatable {
    /// Position in the spool; items are delivered in this order.
    public var sequence: UInt64
    public var namespace: String
    public var event: String
    public var args: [JSONValue]
    /// Wait this long for the server's acknowledgement; nil sends without asking for one.
    public var ackTimeout: Duration?
    /// The rule that planned it, for the logs.
    public var rule: String

    public init(sequence: UInt64 = 0, namespace: String, event: String, args: [JSONValue], ackTimeout: Duration?, rule: String) {
        self.sequence = sequence
        self.namespace = namespace
        self.event = event
        self.args = args
        self.ackTimeout = ackTimeout
        self.rule = rule
    }

    func encoded() -> [UInt8] {
        var pairs: [(String, JSONValue)] = [
            ("namespace", .string(namespace)), ("event", .string(event)), ("args", .array(args)), ("rule", .string(rule)),
        ]
        if let ackTimeout { pairs.append(("ack", .number(ackTimeout.secondsValue))) }
        var out: [UInt8] = []
        JSONValue.object(pairs: pairs).write(into: &out)
        out.append(0x0A)
        return out
    }

    init?(sequence: UInt64, decoding bytes: [UInt8]) {
        guard let value = try? JSONValue(parsing: bytes),
            case .string(let namespace)? = value["namespace"],
            case .string(let event)? = value["event"],
            case .array(let args)? = value["args"],
            let decodedArgs = JSONValue.array(args).decodingBinaryMarkers()?.arrayValue
        else { return nil }
        self.sequence = sequence
        self.namespace = namespace
        self.event = event
        self.args = decodedArgs
        self.rule = value["rule"]?.stringValue ?? ""
        self.ackTimeout = value["ack"]?.numberValue.map(durationFromSeconds)
    }
}

/// Alerts kept on disk until delivered: one file per alert, named by its sequence number, so
/// that they survive the agent's restarts and are re-sent in order.
///
/// A file is written to a temporary name, synced, then renamed, so a crash leaves either the whole
/// alert or none of it. Not thread-safe: its owner serialises access.
public final class Spool {
    public let directory: String
    public let maxItems: Int
    private var nextSequence: UInt64 = 1
    private var sequences: [UInt64] = []

    /// Opens (creating it if needed) the spool directory and reads what is there.
    /// - Returns: the spool and the alerts already in it, oldest first; unreadable files are
    ///   reported in `skipped` and left in place for a human to look at.
    public init(directory: String, maxItems: Int) throws {
        self.directory = directory
        self.maxItems = max(1, maxItems)
        try makeDirectories(directory)
    }

    /// The alerts on disk, oldest first, and the names of files that could not be read.
    public func load() -> (items: [SpoolItem], skipped: [String]) {
        var items: [SpoolItem] = []
        var skipped: [String] = []
        for name in listDirectory(directory).sorted() {
            guard name.hasSuffix(".alert"), let sequence = UInt64(name.dropLast(6)) else { continue }
            nextSequence = max(nextSequence, sequence + 1)
            guard let bytes = try? readFile(directory + "/" + name), let item = SpoolItem(sequence: sequence, decoding: bytes) else {
                skipped.append(name)
                continue
            }
            items.append(item)
        }
        sequences = items.map(\.sequence)
        return (items, skipped)
    }

    public var count: Int { sequences.count }

    /// Writes `item` to disk and gives it the next sequence number.
    /// - Returns: the stored item and the alerts dropped to keep within `maxItems` (oldest first).
    public func append(_ item: SpoolItem) throws -> (stored: SpoolItem, dropped: [UInt64]) {
        var item = item
        item.sequence = nextSequence
        nextSequence += 1
        let path = fileName(item.sequence)
        let temporary = path + ".tmp"
        try writeFile(temporary, item.encoded(), sync: true)
        guard rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw FileError(description: "cannot store alert in \(directory): \(message)")
        }
        sequences.append(item.sequence)
        var dropped: [UInt64] = []
        while sequences.count > maxItems {
            let oldest = sequences.removeFirst()
            unlink(fileName(oldest))
            dropped.append(oldest)
        }
        return (item, dropped)
    }

    /// Deletes a delivered alert.
    public func remove(_ sequence: UInt64) {
        unlink(fileName(sequence))
        if let i = sequences.firstIndex(of: sequence) { sequences.remove(at: i) }
    }

    private func fileName(_ sequence: UInt64) -> String {
        let digits = String(sequence)
        return directory + "/" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits + ".alert"
    }
}
