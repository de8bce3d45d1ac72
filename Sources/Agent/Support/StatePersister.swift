import Logging
import NIOPosix
import Rules
import SIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Keeps the rules' shared state (`set:`/`unset:`) in its own file (`state.file`, by default
/// `state.json` beside the spool directory, never inside it: the spool quarantines what it
/// cannot read), so it survives restarts.
///
/// Writes leave the event loop: the loop hands over the latest snapshot (a copy-on-write
/// dictionary, no encoding on the loop) and a thread of its own writes it, batched (changes
/// within `batchDelay` make one write) and bounded (only the latest snapshot waits). Each write
/// goes to a temporary file opened with `O_EXCL | O_NOFOLLOW` (0600), is fsynced, renamed over
/// the old file, and the directory is fsynced.
///
/// Self-contained on purpose: it can move onto the agent's shared writer thread later.
final class StatePersister: Sendable {
    static let fileName = "state.json"
    /// A state file larger than this is not read (moved aside as corrupt).
    static let maxFileBytes = 8 << 20

    let path: String
    private let directory: String
    private let logger: Logger
    private let batchDelay: Duration
    private let pool: NIOThreadPool
    /// The snapshot waiting to be written, and whether a write is scheduled.
    private let pending = Mutex<(snapshot: [String: StateEntry]?, scheduled: Bool)>((nil, false))

    /// `state.json` in `directory`.
    convenience init(directory: String, logger: Logger, batchDelay: Duration = .milliseconds(200)) {
        self.init(path: directory.hasSuffix("/") ? directory + Self.fileName : directory + "/" + Self.fileName, logger: logger, batchDelay: batchDelay)
    }

    init(path: String, logger: Logger, batchDelay: Duration = .milliseconds(200)) {
        self.directory = directoryOf(path)
        self.path = path
        self.logger = logger
        self.batchDelay = batchDelay
        self.pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
    }

    /// Reads the state file (at start, before the loop runs). Expired values are dropped; a file
    /// that cannot be read is moved to `state.json.corrupt` with a warning.
    func load(now: Double, from source: String? = nil) -> [String: StateEntry] {
        let path = source ?? self.path
        let (state, warning) = StateFile.load(storage: POSIXStorage.shared, path: path, now: now, quarantine: path == self.path)
        if let warning {
            logger.warning("state file unreadable; starting with no state", metadata: ["path": "\(path)", "error": "\(warning)"])
        }
        return state
    }

    /// Older versions kept `state.json` inside the spool directory, whose start then moved it to
    /// `corrupt/` (with a numbered suffix when one was there already). When this persister's file
    /// does not exist, the newest of those is moved to it, with an info line; with `dryRun` it is
    /// only read from where it is. Blocks on the disk: at start, before the loop runs.
    /// - Returns: the file to read.
    @discardableResult
    func migrateLegacy(spoolDirectory: String, dryRun: Bool) -> String {
        guard fileStamp(path) == nil else { return path }
        var candidates = [spoolDirectory + "/" + Self.fileName]
        let corrupt = spoolDirectory + "/corrupt"
        for name in listDirectory(corrupt) where name == Self.fileName || Self.isNumberedCopy(name) {
            candidates.append(corrupt + "/" + name)
        }
        // The newest: the one written last before the agent moved it aside.
        let found = candidates.compactMap { c in fileStamp(c).flatMap { $0.isDirectory ? nil : (path: c, modified: $0.modified) } }
        guard let newest = found.max(by: { $0.modified < $1.modified })?.path, newest != path else { return path }
        if dryRun { return newest }
        do {
            try makeDirectories(directory)
        } catch {
            logger.warning("cannot create the state file's directory; reading the old state file in place", metadata: ["path": "\(path)", "error": "\(error)"])
            return newest
        }
        guard rename(newest, path) == 0 else {
            logger.warning("cannot move the old state file; reading it in place", metadata: ["from": "\(newest)", "path": "\(path)"])
            return newest
        }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            Glibc.close(dfd)
        }
        logger.info("state file moved out of the spool directory", metadata: ["from": "\(newest)", "path": "\(path)"])
        return path
    }

    /// `state.json.N`, the name the spool gave a second `state.json` it moved to `corrupt/`.
    private static func isNumberedCopy(_ name: String) -> Bool {
        guard name.hasPrefix(fileName + ".") else { return false }
        let suffix = name.utf8.dropFirst(fileName.utf8.count + 1)
        return !suffix.isEmpty && suffix.count <= 4 && suffix.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    /// Hands over the latest state; returns at once.
    func submit(_ snapshot: [String: StateEntry]) {
        let schedule = pending.withLock { p -> Bool in
            p.snapshot = snapshot
            if p.scheduled { return false }
            p.scheduled = true
            return true
        }
        guard schedule else { return }
        let delay = batchDelay
        pool.submit { [self] _ in
            let nanos = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
            if nanos > 0 {
                // Batching, not synchronisation: changes in this interval coalesce into one write.
                var ts = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
                var rest = timespec()
                while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
            }
            writePending()
        }
    }

    private func writePending() {
        let snapshot = pending.withLock { p -> [String: StateEntry]? in
            defer { p.snapshot = nil; p.scheduled = false }
            return p.snapshot
        }
        guard let snapshot else { return }
        do {
            try write(snapshot)
        } catch {
            logger.warning("cannot write the state file", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// Writes what is waiting and stops the thread (at shutdown).
    func close() async {
        try? await pool.runIfActive { self.writePending() }
        try? await pool.shutdownGracefully()
    }

    /// The state as JSON: `{"version":1,"state":{"NAME":{"value":…,"expires":SECONDS}}}` (no
    /// `expires` without ttl), names sorted.
    static func encode(_ state: [String: StateEntry]) -> String {
        var entries: [(String, JSONValue)] = []
        for name in state.keys.sorted() {
            let e = state[name]!
            var o: [(String, JSONValue)] = [("value", e.value)]
            if e.expires.isFinite { o.append(("expires", .number(e.expires))) }
            entries.append((name, .object(.init(o, uniquingKeysWith: { a, _ in a }))))
        }
        let top: JSONValue = .object(.init([("version", .number(1)), ("state", .object(.init(entries, uniquingKeysWith: { a, _ in a })))],
                                           uniquingKeysWith: { a, _ in a }))
        return top.jsonString()
    }

    private func write(_ state: [String: StateEntry]) throws {
        try StateFile.store(state, storage: POSIXStorage.shared, directory: directory, name: String(path.split(separator: "/").last ?? Substring(Self.fileName)))
    }
}
