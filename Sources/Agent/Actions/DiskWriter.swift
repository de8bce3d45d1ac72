import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A thread that writes to disk. The agent has two: ``shared`` writes `log` action lines and the
/// `--record` file; each ``LiveExecutor`` has one for its spool (alerts with their `fsync`,
/// removals, payloads read back, `failed/`), so that a `log` target that blocks (a FIFO nobody
/// reads, a hung NFS file) never delays a spool write. The event loop only hands work over; it
/// never waits for the disk.
///
/// Work is taken in batches: everything queued while the previous batch was being written is
/// written together. In a batch each `log` or record file gets one `write` (two around a
/// rotation), and the alerts stored into one spool directory become one file: one `write`, one
/// `fsync`, one `rename`, then one `fsync` of the directory. Lines keep their order per file, and
/// alerts theirs.
///
/// The queue is bounded: at most ``maxQueuedLines`` lines or ``maxQueuedLineBytes`` bytes of
/// lines wait at a time; ``submit(_:)`` refuses a line beyond that (the caller warns and drops
/// it). Alerts waiting to be stored, and those being written, hold at most ``maxQueuedStoreBytes``:
/// beyond it a store is refused, and the outbox keeps the alert in memory within its own budget
/// and tries again (a disk that hangs cannot make the queue grow). The spool's writer gets half of
/// `spool.max_memory`, at least 1 MiB (``spoolStoreBound(maxMemory:)``). Writes into
/// `spool/failed/` are not refused: the alert has already left the outbox.
public final class DiskWriter: Sendable {
    /// Where a line goes.
    public enum LineTarget: Hashable, Sendable {
        /// A descriptor (standard output or error).
        case descriptor(Int32)
        /// A file, rotated by size like `log` files.
        case file(path: String, maxBytes: Int, keep: Int)
    }

    enum Job: Sendable {
        case line(LineTarget, [UInt8], failed: (@Sendable (DiskError) -> Void)?)
        /// Appends `bytes` to the batch's new file in `directory` (a new file every 1 MiB). The
        /// file is named `name` of its first store, written to `name.tmp` (new, 0600, `O_EXCL | O_NOFOLLOW`),
        /// fsynced, renamed, and the directory fsynced. `done` gets the file's name and how many
        /// stores it holds, or the error; the stores of one file report one after the other.
        case store(directory: String, name: String, bytes: [UInt8], done: @Sendable (StoreResult) -> Void)
        case remove(path: String)
        /// Runs on the writer thread, in order with the other jobs (reading a spool file back,
        /// copying one, moving one aside).
        case task(@Sendable () -> Void)
        case closeFile(String)
        case flush(@Sendable () -> Void)
    }

    private struct Queue {
        var jobs: [Job] = []
        /// Lines queued (the bounds count these).
        var lines = 0
        var lineBytes = 0
        /// Bytes of the stores queued and of those being written.
        var storeBytes = 0
        /// Lines and stores of the batch being written.
        var writingLines = 0
        var writingStores = 0
        var stores = 0
        var draining = false
    }

    /// Where a `store` job ended up.
    struct StoreResult: Sendable {
        /// The file's name in its directory.
        var file: String
        /// How many stores the file holds (this one included).
        var storesInFile: Int
        var error: DiskError?
    }

    /// Counts of the system calls made, for tests and diagnostics.
    public struct Statistics: Sendable {
        public var batches = 0
        /// `write` calls to `log` and record files.
        public var fileWrites = 0
        /// `fsync` of spool files (one per spool directory per batch, however many alerts).
        public var fileSyncs = 0
        public var directorySyncs = 0
        /// Stores refused because ``maxQueuedStoreBytes`` of alerts already waited.
        public var storesRefused = 0
    }

    private let stats = Mutex(Statistics())
    public var statistics: Statistics { stats.withLock { $0 } }

    /// Alerts stored together share a file up to this size (a single larger alert gets a file
    /// of its own).
    static let maxSpoolFileBytes = 1 << 20

    public let maxQueuedLines: Int
    public let maxQueuedLineBytes: Int
    public let maxQueuedStoreBytes: Int
    private let queue = Mutex(Queue())
    private let thread: NIOThreadPool
    /// Touched only by the writer thread.
    private let files: FileTable

    /// The process's writer of lines, shared by the `log` actions and the recorder. The spool has
    /// its own (``forSpool(maxMemory:)``).
    public static let shared = DiskWriter()

    /// The least ``maxQueuedStoreBytes`` of a spool's writer: a burst of alerts faster than a
    /// healthy disk's `fsync` waits here rather than being refused.
    public static let minimumSpoolStoreBytes = 1 << 20

    /// What a spool's writer may hold of alerts being stored: half of `spool.max_memory`, at
    /// least ``minimumSpoolStoreBytes`` (1 MiB). The alerts the disk or this bound refused are
    /// kept by the outbox within `spool.max_memory`, where the payloads being written do not
    /// count: a refused alert is never dropped at once because the writer holds its bound.
    public static func spoolStoreBound(maxMemory: Int) -> Int {
        max(minimumSpoolStoreBytes, maxMemory / 2)
    }

    /// A writer for a spool whose payloads are bounded by `maxMemory` (`spool.max_memory`).
    public static func forSpool(maxMemory: Int) -> DiskWriter {
        DiskWriter(maxQueuedLines: 1, maxQueuedLineBytes: 1, maxQueuedStoreBytes: spoolStoreBound(maxMemory: maxMemory))
    }

    /// What was handed over and is not yet written: lines and stores queued, and those of the
    /// batch being written. At shutdown, what a deadline leaves behind.
    public var unwritten: (lines: Int, stores: Int) {
        queue.withLock { ($0.lines + $0.writingLines, $0.stores + $0.writingStores) }
    }

    /// Where spool files go (the machine's disk; the one storage interface of spool and state).
    private let storage: any Storage

    public convenience init(maxQueuedLines: Int = 10_000, maxQueuedLineBytes: Int = 8 << 20, maxQueuedStoreBytes: Int = 8 << 20) {
        self.init(maxQueuedLines: maxQueuedLines, maxQueuedLineBytes: maxQueuedLineBytes, maxQueuedStoreBytes: maxQueuedStoreBytes,
                  storage: POSIXStorage.shared)
    }

    package init(maxQueuedLines: Int, maxQueuedLineBytes: Int, maxQueuedStoreBytes: Int = 8 << 20, storage: any Storage) {
        self.storage = storage
        self.maxQueuedLines = max(1, maxQueuedLines)
        self.maxQueuedLineBytes = max(1, maxQueuedLineBytes)
        self.maxQueuedStoreBytes = max(1, maxQueuedStoreBytes)
        self.files = FileTable()
        self.thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
    }

    deinit {
        // Not waiting: the last reference may go on the writer thread itself.
        let files = self.files
        thread.shutdownGracefully { _ in files.closeAll() }
    }

    /// Queues a line (`bytes` must end with a newline). False when the queue is full: nothing
    /// was queued.
    @discardableResult
    public func append(_ bytes: [UInt8], to target: LineTarget, failed: (@Sendable (DiskError) -> Void)? = nil) -> Bool {
        submit(.line(target, bytes, failed: failed))
    }

    /// Calls `done` (on the writer thread) once everything submitted before has been written.
    public func flush(_ done: @escaping @Sendable () -> Void) {
        submit(.flush(done))
    }

    /// Waits until everything submitted before has been written. Not for the event loop.
    public func flush() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            flush { c.resume() }
        }
    }

    /// Waits until everything submitted before has been written, or `deadline`; true when written.
    public func flush(until deadline: ContinuousClock.Instant) async -> Bool {
        await finishes(before: deadline) { done in self.flush { done() } }
    }

    /// Closes `path` if it is open (it reopens on the next line).
    func closeFile(_ path: String) {
        submit(.closeFile(path))
    }

    /// Queues `job`. False when it was refused (nothing was queued): a line beyond the lines'
    /// bounds, or, when `refusable`, a store beyond ``maxQueuedStoreBytes`` (one store is always
    /// taken when none waits, however large).
    @discardableResult
    func submit(_ job: Job, refusable: Bool = true) -> Bool {
        let start = queue.withLock { q -> Bool? in
            switch job {
            case .line(_, let bytes, _):
                guard q.lines < maxQueuedLines, q.lineBytes + bytes.count <= maxQueuedLineBytes else { return nil }
                q.lines += 1
                q.lineBytes += bytes.count
            case .store(_, _, let bytes, _):
                if refusable, q.storeBytes > 0, q.storeBytes + bytes.count > maxQueuedStoreBytes { return nil }
                q.storeBytes += bytes.count
                q.stores += 1
            default:
                break
            }
            q.jobs.append(job)
            if q.draining { return false }
            q.draining = true
            return true
        }
        guard let start else {
            if case .store = job { stats.withLock { $0.storesRefused += 1 } }
            return false
        }
        if start {
            thread.submit { [self] _ in drain() }
        }
        return true
    }

    /// Queues `lines` (`.line` jobs) in order, under one lock and with at most one wakeup of the
    /// thread (what ``LineBatcher`` hands over).
    /// - Returns: how many were queued: a prefix, ending before the first that did not fit.
    func submit(lines: ArraySlice<Job>) -> Int {
        let (queued, start) = queue.withLock { q -> (Int, Bool) in
            var n = 0
            for job in lines {
                guard case .line(_, let bytes, _) = job, q.lines < maxQueuedLines,
                    q.lineBytes + bytes.count <= maxQueuedLineBytes
                else { break }
                q.lines += 1
                q.lineBytes += bytes.count
                q.jobs.append(job)
                n += 1
            }
            if n == 0 || q.draining { return (n, false) }
            q.draining = true
            return (n, true)
        }
        if start {
            thread.submit { [self] _ in drain() }
        }
        return queued
    }

    private func drain() {
        var written = 0
        while true {
            let batch = queue.withLock { q -> [Job] in
                // The bytes of the batch just written leave the bound now, not when it was taken:
                // the outbox holds those alerts' payloads until their write reports.
                q.storeBytes -= written
                q.writingLines = 0
                q.writingStores = 0
                if q.jobs.isEmpty {
                    q.draining = false
                    return []
                }
                defer {
                    q.jobs = []
                    q.writingLines = q.lines
                    q.writingStores = q.stores
                    q.lines = 0
                    q.lineBytes = 0
                    q.stores = 0
                }
                return q.jobs
            }
            if batch.isEmpty { return }
            written = write(batch)
        }
    }

    /// One batch, on the writer thread; returns the bytes of its stores.
    private func write(_ batch: [Job]) -> Int {
        var order: [LineTarget] = []
        var groups: [LineTarget: (lines: [[UInt8]], failed: (@Sendable (DiskError) -> Void)?)] = [:]
        // Per directory, the file being filled; a new one starts beyond `maxSpoolFileBytes`.
        var stores: [(directory: String, name: String, bytes: [UInt8], done: [@Sendable (StoreResult) -> Void])] = []
        var filling: [String: Int] = [:]
        var after: [@Sendable () -> Void] = []
        var closing: [String] = []
        var storeBytes = 0

        for job in batch {
            switch job {
            case .line(let target, let bytes, let failed):
                if groups[target] == nil {
                    order.append(target)
                    groups[target] = ([bytes], failed)
                } else {
                    groups[target]!.lines.append(bytes)
                }
            case .store(let directory, let name, let bytes, let done):
                storeBytes += bytes.count
                if let i = filling[directory], stores[i].bytes.count + bytes.count <= Self.maxSpoolFileBytes {
                    stores[i].bytes.append(contentsOf: bytes)
                    stores[i].done.append(done)
                } else {
                    filling[directory] = stores.count
                    stores.append((directory, name, bytes, [done]))
                }
            case .remove(let path):
                storage.remove(path)
            case .task(let work):
                work()
            case .closeFile(let path):
                closing.append(path)
            case .flush(let done):
                after.append(done)
            }
        }
        for target in order {
            guard let group = groups[target] else { continue }
            if let error = files.write(group.lines, to: target) { group.failed?(error) }
        }
        var results: [(done: [@Sendable (StoreResult) -> Void], name: String, error: DiskError?)] = []
        var synced = 0
        var renamedIn: [String] = []
        for store in stores {
            do {
                try storage.storeDurably(directory: store.directory, name: store.name, bytes: store.bytes)
                synced += 1
                if !renamedIn.contains(store.directory) { renamedIn.append(store.directory) }
                results.append((store.done, store.name, nil))
            } catch let error as DiskError {
                results.append((store.done, store.name, error))
            } catch {
                results.append((store.done, store.name, DiskError(description: "\(error)")))
            }
        }
        // The renames are durable once their directory is: one fsync per directory. A failure
        // here leaves the files in place (renamed), so the alerts still count as stored.
        for directory in renamedIn { try? storage.syncDirectory(directory) }
        stats.withLock {
            $0.batches += 1
            $0.fileWrites += files.takeWriteCount()
            $0.fileSyncs += synced
            $0.directorySyncs += renamedIn.count
        }
        for path in closing { files.close(path) }
        for result in results {
            let outcome = StoreResult(file: result.name, storesInFile: result.done.count, error: result.error)
            for done in result.done { done(outcome) }
        }
        for done in after { done() }
        return storeBytes
    }
}

/// The open files of `log` actions and of the recording, with their sizes.
///
/// `@unchecked Sendable`, safe by this invariant: only ``DiskWriter``'s `drain` touches it, on
/// the writer's one-thread pool, and one drain runs at a time (`Queue.draining`, set and cleared
/// under the queue's lock); `closeAll` runs after that thread has stopped.
private final class FileTable: @unchecked Sendable {
    private var writers: [String: LogFileWriter] = [:]
    private var writeCount = 0

    func takeWriteCount() -> Int {
        defer { writeCount = 0 }
        return writeCount
    }

    func write(_ lines: [[UInt8]], to target: DiskWriter.LineTarget) -> DiskError? {
        switch target {
        case .descriptor(let fd):
            var bytes: [UInt8] = []
            for line in lines { bytes.append(contentsOf: line) }
            return writeAll(fd, bytes) ? nil : systemError("cannot write to descriptor \(fd)")
        case .file(let path, let maxBytes, let keep):
            let key = "\(maxBytes)/\(keep)"
            let writer = writers[key] ?? LogFileWriter(maxBytes: maxBytes, keep: keep)
            writers[key] = writer
            do {
                writeCount += try writer.append(lines: lines, to: path)
                return nil
            } catch let error as DiskError {
                return error
            } catch {
                return DiskError(description: "\(error)")
            }
        }
    }

    func close(_ path: String) {
        for writer in writers.values { writer.close(path) }
    }

    func closeAll() {
        for writer in writers.values { writer.closeAll() }
    }
}
