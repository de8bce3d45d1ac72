import Rules

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An alert waiting to be delivered.
public struct SpoolItem: Sendable, Equatable {
    /// The longest wait for an acknowledgement: longer `ack:` durations count as this.
    public static let maxAckTimeout: Duration = .seconds(86_400)

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
        self.ackTimeout = ackTimeout.map(Self.clampAck)
        self.rule = rule
    }

    /// `ack` limited to 1 ms … ``maxAckTimeout``.
    static func clampAck(_ d: Duration) -> Duration {
        min(max(d, .milliseconds(1)), maxAckTimeout)
    }

    /// One JSON line: `{"seq":7,"namespace":"/","event":"alert","args":[…],"rule":"r","ack":5}`.
    package func encoded() -> [UInt8] {
        var pairs: [(String, JSONValue)] = [
            ("seq", .number(Double(sequence))), ("namespace", .string(namespace)), ("event", .string(event)),
            ("args", .array(args)), ("rule", .string(rule)),
        ]
        if let ackTimeout { pairs.append(("ack", .number(ackTimeout.secondsValue))) }
        var out: [UInt8] = []
        JSONValue.object(pairs: pairs).write(into: &out)
        out.append(0x0A)
        return out
    }

    /// Reads one line of a spool file; nil when anything in it is missing, of the wrong type or
    /// out of range. `sequence` is used when the line has no `seq`.
    init?(sequence: UInt64, decoding bytes: some Collection<UInt8>) {
        guard let value = try? JSONValue(parsing: Array(bytes)),
            case .string(let namespace)? = value["namespace"], namespace.hasPrefix("/"),
            case .string(let event)? = value["event"], !event.isEmpty,
            case .array(let args)? = value["args"],
            let decodedArgs = JSONValue.array(args).decodingBinaryMarkers()?.arrayValue
        else { return nil }
        var ackTimeout: Duration?
        switch value["ack"] {
        case nil, .null?: break
        case .number(let seconds)?:
            // Checked before converting: 1e19 seconds does not fit a Duration.
            guard seconds.isFinite, seconds > 0, seconds <= Self.maxAckTimeout.secondsValue else { return nil }
            ackTimeout = durationFromSeconds(seconds)
        default: return nil
        }
        var sequence = sequence
        switch value["seq"] {
        case nil: break
        case .number(let n)?:
            guard n.isFinite, n >= 1, n <= Double(Spool.maxLoadedSequence), n == n.rounded() else { return nil }
            sequence = UInt64(n)
        default: return nil
        }
        switch value["rule"] {
        case nil, .null?: self.rule = ""
        case .string(let rule)?: self.rule = rule
        default: return nil
        }
        self.sequence = sequence
        self.namespace = namespace
        self.event = event
        self.args = decodedArgs
        self.ackTimeout = ackTimeout
    }
}

/// Alerts kept on disk until delivered, so that they survive the agent's restarts and are re-sent
/// in order. A file holds the alerts stored together (one JSON line each, with its sequence
/// number `seq`), and is named by the first one's number; it is deleted once all of them are
/// delivered.
///
/// A file is written to a new temporary name, synced, renamed, and its directory synced, so a
/// crash leaves either the whole file or none of it. At start, a spool file (`*.alert`,
/// `*.alert.tmp`; other names are not the spool's and are left alone) that cannot be read
/// (a bad name, an out-of-range sequence, a truncated or invalid alert, an out-of-range `ack`,
/// a FIFO or anything not a regular file, more than ``maxFileBytes``, a `.tmp` left by a
/// crash) is moved to `corrupt/` and reported; an alert the server can never accept goes to
/// `failed/`.
///
/// The outbox writes through the ``DiskWriter`` thread; ``append(_:)`` and ``remove(_:)``
/// write at once, for tools and tests. Not thread-safe: its owner serialises access.
public final class Spool {
    /// The largest spool file read; larger ones are corrupt.
    public static let maxFileBytes = 16 << 20
    /// The highest sequence number read from a file name; higher ones are corrupt (the numbers
    /// after it still fit the 16-digit names, and never overflow).
    public static let maxLoadedSequence: UInt64 = 999_999_999_999_999
    public let directory: String
    public let maxItems: Int
    /// The alerts on disk, in bytes (`spool.max_bytes`).
    public let maxBytes: Int
    /// Payload bytes the outbox holds in memory (`spool.max_memory`).
    public let maxMemory: Int
    private var nextSequence: UInt64 = 1
    private var sequences: [UInt64] = []
    /// For each alert read by ``load()``, the name of the file that holds it.
    public private(set) var fileNames: [UInt64: String] = [:]
    /// Where the files are (the machine's disk, or the simulation's).
    let storage: any Storage
    /// The fault put back for the simulation: ``load()`` takes every name as its own, a state
    /// file kept in the spool directory included. Never set by the agent.
    package var quarantinesForeignFiles = false

    public var corruptDirectory: String { directory + "/corrupt" }
    public var failedDirectory: String { directory + "/failed" }

    /// Opens (creating it, 0700, if needed) the spool directory.
    public convenience init(directory: String, maxItems: Int, maxBytes: Int = 64 << 20, maxMemory: Int = 4 << 20) throws {
        try self.init(directory: directory, maxItems: maxItems, maxBytes: maxBytes, maxMemory: maxMemory, storage: POSIXStorage.shared)
    }

    package init(directory: String, maxItems: Int, maxBytes: Int = 64 << 20, maxMemory: Int = 4 << 20, storage: any Storage) throws {
        self.directory = directory
        self.maxItems = max(1, maxItems)
        self.maxBytes = max(1, maxBytes)
        self.maxMemory = max(0, maxMemory)
        self.storage = storage
        try storage.makeDirectories(directory)
    }

    /// One alert found by ``loadIndex(payloadBudget:)``.
    package struct Indexed {
        /// The alert; its `args` are empty unless `hasPayload`.
        package var item: SpoolItem
        package var hasPayload: Bool
        /// Its line in the file, newline included.
        package var bytes: Int
        package var file: String
    }

    /// Reads the alerts on disk, oldest first, and moves the files that cannot be read to
    /// `corrupt/`. Blocks on the disk: call it at start, not on the event loop.
    /// - Returns: the alerts, and each moved file with the reason.
    public func load() -> (items: [SpoolItem], corrupt: [(name: String, reason: String)]) {
        let (index, corrupt) = loadIndex(payloadBudget: .max)
        return (index.map(\.item), corrupt)
    }

    /// Like ``load()``, but keeps the payloads (`args`) of the oldest alerts only, within
    /// `payloadBudget` bytes; the others are read again when their turn comes
    /// (``readPayloads(file:)``). Every file is still read and checked, one at a time.
    package func loadIndex(payloadBudget: Int) -> (items: [Indexed], corrupt: [(name: String, reason: String)]) {
        var items: [Indexed] = []
        var corrupt: [(name: String, reason: String)] = []
        var budget = payloadBudget
        // Sorted: the zero-padded names of the spool's files sort as their numbers, oldest first,
        // so the payloads kept are those sent first.
        // Only what the spool writes is its own: `*.alert` and the `*.alert.tmp` of a write
        // a crash interrupted. Anything else (a state file of an older version, say) is left alone.
        for name in storage.list(directory).sorted() where Self.owns(name) || (quarantinesForeignFiles && name != "corrupt" && name != "failed") {
            let path = directory + "/" + name
            let reason: String
            if name.hasSuffix(".tmp") {
                reason = "a temporary file left by an interrupted write"
            } else if let sequence = Self.sequence(ofName: name) {
                nextSequence = max(nextSequence, sequence + 1)
                do {
                    let bytes = try storage.read(path, maxBytes: Self.maxFileBytes)
                    var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: true)
                    if lines.isEmpty { lines = [bytes[...]] }
                    var fileItems: [Indexed] = []
                    var seen: Set<UInt64> = []
                    for (i, line) in lines.enumerated() {
                        // A line without `seq` (one alert per file, as older versions wrote) takes
                        // its number from the file name.
                        guard var item = SpoolItem(sequence: sequence &+ UInt64(i), decoding: line),
                            fileNames[item.sequence] == nil, seen.insert(item.sequence).inserted
                        else { break }
                        let size = line.count + 1
                        let keep = size <= budget
                        if keep { budget -= size } else { item.args = [] }
                        fileItems.append(Indexed(item: item, hasPayload: keep, bytes: size, file: name))
                    }
                    if fileItems.count == lines.count {
                        for entry in fileItems {
                            items.append(entry)
                            fileNames[entry.item.sequence] = name
                            nextSequence = max(nextSequence, entry.item.sequence + 1)
                        }
                        continue
                    }
                    for entry in fileItems where entry.hasPayload { budget += entry.bytes }
                    reason = "not a valid alert at line \(fileItems.count + 1) (JSON with namespace, event, args, and ack within 0–\(Int(SpoolItem.maxAckTimeout.secondsValue)) s)"
                } catch {
                    reason = "\(error)"
                }
            } else {
                reason = "not a spool file name (1 to \(String(Self.maxLoadedSequence).count) digits, then .alert)"
            }
            if moveAside(name, into: corruptDirectory) {
                corrupt.append((name: name, reason: reason))
            } else {
                corrupt.append((name: name, reason: reason + "; and it could not be moved to \(corruptDirectory)"))
            }
        }
        items.sort { $0.item.sequence < $1.item.sequence }
        sequences = items.map(\.item.sequence)
        return (items, corrupt)
    }

    /// The alerts of spool file `file`, by sequence number (on the writer thread, when their
    /// payloads were not kept in memory).
    package static func readPayloads(directory: String, file: String, storage: any Storage = POSIXStorage.shared) throws -> [UInt64: SpoolItem] {
        guard let first = sequence(ofName: file) else { throw DiskError(description: "not a spool file name: \(file)") }
        let bytes = try storage.read(directory + "/" + file, maxBytes: maxFileBytes)
        var out: [UInt64: SpoolItem] = [:]
        for (i, line) in bytes.split(separator: 0x0A, omittingEmptySubsequences: true).enumerated() {
            guard let item = SpoolItem(sequence: first &+ UInt64(i), decoding: line) else {
                throw DiskError(description: "\(file): not a valid alert at line \(i + 1)")
            }
            out[item.sequence] = item
        }
        return out
    }

    /// Whether `name` in the spool directory is the spool's to read or quarantine.
    static func owns(_ name: String) -> Bool {
        name.hasSuffix(".alert") || name.hasSuffix(".alert.tmp")
    }

    /// The sequence number in a spool file name, when it is one.
    static func sequence(ofName name: String) -> UInt64? {
        guard name.hasSuffix(".alert") else { return nil }
        let digits = name.utf8.dropLast(6)
        guard !digits.isEmpty, digits.count <= 20, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let n = UInt64(String(decoding: digits, as: UTF8.self)), n >= 1, n <= maxLoadedSequence
        else { return nil }
        return n
    }

    /// Moves a file of the spool directory into `target` (created if needed) without blocking on
    /// its contents; a name already there gets a numbered suffix.
    @discardableResult
    func moveAside(_ name: String, into target: String) -> Bool {
        guard (try? storage.makeDirectories(target)) != nil else { return false }
        var destination = target + "/" + name
        var n = 1
        while storage.exists(destination), n < 1000 {
            destination = target + "/" + name + "." + String(n)
            n += 1
        }
        return storage.rename(directory + "/" + name, destination)
    }

    public var count: Int { sequences.count }

    /// Above every sequence number read by ``load()``.
    package var sequenceAfterLoad: UInt64 { nextSequence }

    /// The next sequence number (never wraps: saturates far beyond anything reachable).
    func takeSequence() -> UInt64 {
        let s = nextSequence
        if nextSequence < UInt64.max { nextSequence += 1 }
        return s
    }

    /// Writes `item` to disk now and gives it the next sequence number.
    /// - Returns: the stored item and the alerts dropped to keep within `maxItems` (oldest first).
    public func append(_ item: SpoolItem) throws -> (stored: SpoolItem, dropped: [UInt64]) {
        var item = item
        item.sequence = takeSequence()
        try storage.storeDurably(directory: directory, name: Self.fileName(item.sequence), bytes: item.encoded())
        try? storage.syncDirectory(directory)
        sequences.append(item.sequence)
        var dropped: [UInt64] = []
        while sequences.count > maxItems {
            let oldest = sequences.removeFirst()
            storage.remove(path(oldest))
            dropped.append(oldest)
        }
        return (item, dropped)
    }

    /// Deletes a delivered alert now.
    public func remove(_ sequence: UInt64) {
        storage.remove(path(sequence))
        if let i = sequences.firstIndex(of: sequence) { sequences.remove(at: i) }
    }

    package static func fileName(_ sequence: UInt64) -> String {
        let digits = String(sequence)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits + ".alert"
    }

    func path(_ sequence: UInt64) -> String {
        directory + "/" + Self.fileName(sequence)
    }
}
