import DequeModule
import Logging
import SocketIO

/// The outbox's decisions, as a value: each input (an alert fired, a spool write done or
/// refused, a namespace up or down, a send completed, a timer) returns the actions to carry
/// out. It does no I/O and reads no clock; ``AlertOutbox`` is the shell that performs the
/// actions on the event loop, and the deterministic simulation drives the same value.
///
/// What it guarantees (the simulation checks these):
/// - an alert is sent only once it is durable in the spool, or kept in memory because the disk
///   refused it; an `ack:` alert always goes through the spool;
/// - per namespace, spooled alerts are sent one at a time, oldest first;
/// - a spool file is removed only when no undelivered alert it holds remains (the alerts
///   written together into one file are all counted before any of them is released);
/// - an alert leaves only delivered, moved to `failed/` with a reason, or dropped by a budget
///   with a warning (``OutboxAction/discarded(_:reason:)``).
package struct OutboxState {
    package struct Configuration: Sendable {
        /// The namespaces the client connects to.
        package var namespaces: Set<String>
        /// `spool.max_items`: undelivered alerts on disk (and in `failed/`).
        package var maxItems: Int
        /// Alerts kept in memory when the disk refuses them: at most this many, and this many bytes.
        package var maxInMemory: Int
        package var maxInMemoryBytes: Int
        /// The pause before a failed send is tried again, and before a refused write.
        package var retryDelay: Duration
        /// A fault put back on purpose, for the simulation to catch; nil in the agent.
        package var mutation: OutboxMutation?

        package init(namespaces: Set<String>, maxItems: Int, retryDelay: Duration, maxInMemoryBytes: Int = 8 << 20) {
            self.namespaces = namespaces
            self.maxItems = max(1, maxItems)
            self.maxInMemory = min(self.maxItems, 1000)
            self.maxInMemoryBytes = maxInMemoryBytes
            self.retryDelay = max(retryDelay, .seconds(1))
        }
    }

    package enum Storage: Equatable, Sendable {
        /// Being written; not sent before it is durable.
        case writing
        case disk(file: String)
        /// The disk refused it.
        case memory
    }

    package struct Entry: Sendable {
        package var item: SpoolItem
        package var storage: Storage
        /// Bytes of its spool line, counted once the disk refused it (what it costs in memory).
        package var size = 0
    }

    package let configuration: Configuration
    private let soleNamespace: String?
    package private(set) var queue: Deque<Entry> = []
    /// Undelivered alerts in each spool file; a file is removed when its count reaches zero.
    private var fileCounts = SpoolFileCounts()
    /// The counts of ``OutboxMutation/batchReleasedEarly``: one per report, released at once.
    private var faultyCounts: [String: Int] = [:]
    private var connected: Set<String> = []
    private var unknownToServer: Set<String> = []
    /// The spooled alert being sent.
    package private(set) var sending: UInt64?
    private var retryArmed = false
    private var persistRetryArmed = false
    /// Alerts handed to the client directly (no ack, namespace up, nothing waiting), not yet written.
    private var direct = InFlight<(item: SpoolItem, plannedAt: Double?)>()
    private var failedKept: Int
    private var nextSequence: UInt64

    /// - Parameters:
    ///   - loaded: the alerts read from the spool, oldest first, with the file that holds each.
    ///   - failedCount: files already in `failed/`.
    ///   - nextSequence: above every sequence seen on disk.
    package init(configuration: Configuration, loaded: [(item: SpoolItem, file: String)], failedCount: Int, nextSequence: UInt64) {
        self.configuration = configuration
        self.soleNamespace = configuration.namespaces.count == 1 ? configuration.namespaces.first : nil
        self.failedKept = failedCount
        self.nextSequence = max(1, nextSequence)
        var perFile: [String: Int] = [:]
        for (item, file) in loaded {
            queue.append(Entry(item: item, storage: .disk(file: file)))
            perFile[file, default: 0] += 1
            if item.sequence >= self.nextSequence { self.nextSequence = item.sequence &+ 1 }
        }
        for (file, alerts) in perFile {
            fileCounts.loaded(file, alerts: alerts)
            faultyCounts[file] = alerts
        }
    }

    /// The actions for the alerts loaded at start that can never be delivered.
    package mutating func start() -> [OutboxAction] {
        var out: [OutboxAction] = []
        failAll(queue.compactMap { e in permanentProblem(e.item).map { (e, $0) } }, &out)
        // A batch file keeps the alerts dropped while it was written: within spool.max_items again.
        let excess = queue.count - configuration.maxItems
        if excess > 0 {
            let dropped = Array(queue.prefix(excess))
            queue.removeFirst(excess)
            for entry in dropped { release(entry, &out) }
            out.append(.discarded(dropped.map(\.item), reason: "spool full"))
            out.append(.log(.warning, "spool full; dropped the oldest alerts", ["spool.dropped": "\(excess)", "spool.max_items": "\(configuration.maxItems)"]))
        }
        if !queue.isEmpty { out.append(.log(.info, "alerts waiting in the spool", ["spool.count": "\(queue.count)"])) }
        return out
    }

    /// Alerts not yet delivered (on disk, in memory, being written, or handed to the client).
    package var pending: Int { queue.count + direct.count }
    /// Nothing is being sent (queued alerts may remain, safely on disk).
    package var isIdle: Bool { sending == nil && direct.isEmpty }

    package mutating func handle(_ input: OutboxInput) -> [OutboxAction] {
        var out: [OutboxAction] = []
        switch input {
        case .fire(let item, let plannedAt): fire(item, plannedAt: plannedAt, &out)
        case .written(let sequence, let file, let inFile, let error): written(sequence, file: file, inFile: inFile, error, &out)
        case .connected(let ns):
            connected.insert(ns)
            unknownToServer.remove(ns)
            pump(&out)
        case .disconnected(let ns): connected.remove(ns)
        case .refused(let ns, let message): refused(ns, message, &out)
        case .sendCompleted(let send, let outcome): completed(send, outcome, &out)
        case .retryTimer:
            guard retryArmed else { break }
            retryArmed = false
            pump(&out)
        case .persistRetryTimer:
            guard persistRetryArmed else { break }
            persistRetryArmed = false
            rewriteMemoryEntries(includingSending: false, &out)
        case .persistInFlight:
            for (item, _) in direct.removeAll() { store(item, &out) }
            // The one being sent too: if its ack never comes, the next start sends it again.
            rewriteMemoryEntries(includingSending: true, &out)
        }
        return out
    }

    // MARK: - Inputs

    private mutating func fire(_ item: SpoolItem, plannedAt: Double?, _ out: inout [OutboxAction]) {
        if let problem = permanentProblem(item) {
            var item = item
            item.sequence = takeSequence()
            keepFailed(item, problem, &out)
            return
        }
        if item.ackTimeout == nil, isConnected(item.namespace), !queue.contains(where: { $0.item.namespace == item.namespace }) {
            let id = direct.append((item, plannedAt))
            out.append(.send(.direct(id), item))
        } else {
            store(item, &out)
        }
    }

    private mutating func refused(_ namespace: String, _ message: String, _ out: inout [OutboxAction]) {
        // socket.io answers "Invalid namespace"; python-socketio "Unable to connect".
        guard message == "Invalid namespace" || message == "Unable to connect" else { return }
        unknownToServer.insert(namespace)
        let doomed = queue.filter { $0.item.namespace == namespace && $0.item.sequence != sending && $0.storage != .writing }
        failAll(doomed.map { ($0, "the server does not know namespace \(namespace): \(message)") }, &out)
    }

    private mutating func written(_ sequence: UInt64, file: String, inFile: Int, _ error: DiskError?, _ out: inout [OutboxAction]) {
        let index = queue.firstIndex(where: { $0.item.sequence == sequence })
        if error == nil {
            if configuration.mutation == .batchReleasedEarly {
                faultyCounts[file, default: 0] += 1
                if index == nil { release(file: file, &out) }
            } else if fileCounts.stored(in: file, holds: inFile, waiting: index != nil) {
                // Every alert of the file was dropped (spool full) or delivered while it was written.
                out.append(.remove(file: file))
            }
        }
        guard let i = index else {
            pump(&out)
            return
        }
        if let error {
            queue[i].storage = .memory
            queue[i].size = queue[i].item.encoded().count
            let item = queue[i].item
            let memoryCount = queue.count { $0.storage == .memory }
            out.append(
                .log(
                    .warning,
                    isNoSpace(error.code)
                        ? "disk full; alert kept in memory until the disk takes it" : "cannot write the alert to the spool; kept in memory until the disk takes it",
                    [
                        "rule.id": "\(item.rule)", "event.name": "\(item.event)", "error": "\(error)",
                        "spool.in_memory": "\(memoryCount)", "spool.max_in_memory": "\(configuration.maxInMemory)",
                    ]))
            trimMemory(&out)
            if !persistRetryArmed {
                persistRetryArmed = true
                out.append(.schedulePersistRetry(configuration.retryDelay))
            }
        } else {
            queue[i].storage = .disk(file: file)
            if configuration.mutation == .ackAlertsDroppedOnceWritten, queue[i].item.ackTimeout != nil, queue[i].item.sequence != sending {
                release(queue.remove(at: i), &out)
                pump(&out)
                return
            }
            // The server refused its namespace while it was being written.
            if let problem = permanentProblem(queue[i].item) { failAll([(queue[i], problem)], &out) }
        }
        pump(&out)
    }

    private mutating func completed(_ send: OutboxSend, _ outcome: SendOutcome, _ out: inout [OutboxAction]) {
        switch send {
        case .direct(let id):
            // Already persisted at shutdown when nil.
            guard let (item, plannedAt) = direct.remove(id) else { return }
            switch outcome {
            case .delivered:
                out.append(.delivered(item, plannedAt: plannedAt))
                out.append(.log(.debug, "alert sent", ["rule.id": "\(item.rule)", "event.name": "\(item.event)"]))
            case .failed(let error, let permanent):
                if permanent {
                    var item = item
                    item.sequence = takeSequence()
                    keepFailed(item, error, &out)
                } else {
                    out.append(.log(.warning, "alert not sent; kept in the spool", ["rule.id": "\(item.rule)", "event.name": "\(item.event)", "error": "\(error)"]))
                    store(item, &out)
                }
            }
        case .spooled(let sequence):
            guard sending == sequence else { return }
            sending = nil
            let index = queue.firstIndex { $0.item.sequence == sequence }
            switch outcome {
            case .delivered:
                guard let index else {
                    pump(&out)
                    return
                }
                // Released as it is now: written to the spool at shutdown while in flight, say.
                let entry = queue.remove(at: index)
                release(entry, &out)
                out.append(.delivered(entry.item, plannedAt: nil))
                out.append(
                    .log(
                        .info, entry.item.ackTimeout == nil ? "spooled alert sent" : "spooled alert acknowledged",
                        ["rule.id": "\(entry.item.rule)", "event.name": "\(entry.item.event)", "spool.left": "\(queue.count)"]))
                pump(&out)
            case .failed(let error, let permanent):
                if permanent, let index {
                    failAll([(queue[index], error)], &out)
                    pump(&out)
                    return
                }
                let item = index.map { queue[$0].item }
                out.append(
                    .log(.warning, "alert not delivered; kept in the spool", ["rule.id": "\(item?.rule ?? "")", "event.name": "\(item?.event ?? "")", "error": "\(error)"]))
                // Still connected (no ack in time, say): again after a pause. Otherwise the next
                // connect restarts the pump.
                if let item, connected.contains(item.namespace) {
                    if !retryArmed {
                        retryArmed = true
                        out.append(.scheduleRetry(configuration.retryDelay))
                    }
                } else {
                    pump(&out)
                }
            }
        }
    }

    // MARK: - Queue

    private mutating func takeSequence() -> UInt64 {
        let s = nextSequence
        if nextSequence < UInt64.max { nextSequence += 1 }
        return s
    }

    /// Queues a new alert and has it written.
    private mutating func store(_ item: SpoolItem, _ out: inout [OutboxAction]) {
        out.append(.metric(.spooled))
        var item = item
        item.sequence = takeSequence()
        queue.append(Entry(item: item, storage: .writing))
        out.append(.store(item))
        // Within spool.max_items: drop the oldest (never the one being sent, nor this one).
        var excess = queue.count { $0.storage != .memory } - configuration.maxItems
        guard excess > 0 else { return }
        var dropped: [Entry] = []
        queue.removeAll { entry in
            guard excess > 0, entry.storage != .memory, entry.item.sequence != sending, entry.item.sequence != item.sequence else { return false }
            excess -= 1
            dropped.append(entry)
            return true
        }
        for entry in dropped { release(entry, &out) }
        out.append(.discarded(dropped.map(\.item), reason: "spool full"))
        out.append(.log(.warning, "spool full; dropped the oldest alerts", ["spool.dropped": "\(dropped.count)", "spool.max_items": "\(configuration.maxItems)"]))
    }

    /// Within the in-memory budgets: drop the oldest kept in memory (never the one being sent).
    private mutating func trimMemory(_ out: inout [OutboxAction]) {
        var excess = queue.count { $0.storage == .memory } - configuration.maxInMemory
        var excessBytes = queue.reduce(0) { $0 + ($1.storage == .memory ? $1.size : 0) } - configuration.maxInMemoryBytes
        guard excess > 0 || excessBytes > 0 else { return }
        var dropped: [SpoolItem] = []
        queue.removeAll { entry in
            guard excess > 0 || excessBytes > 0, entry.storage == .memory, entry.item.sequence != sending else { return false }
            excess -= 1
            excessBytes -= entry.size
            dropped.append(entry.item)
            return true
        }
        out.append(.discarded(dropped, reason: "too many alerts in memory"))
        out.append(.log(.warning, "alerts kept in memory are too many; dropped the oldest", ["spool.max_in_memory": "\(configuration.maxInMemory)"]))
    }

    /// An alert left the queue: its file goes once it holds no other undelivered alert.
    private mutating func release(_ entry: Entry, _ out: inout [OutboxAction]) {
        // One being written is released by its write report.
        guard case .disk(let file) = entry.storage else { return }
        release(file: file, &out)
    }

    private mutating func release(file: String, _ out: inout [OutboxAction]) {
        if configuration.mutation == .batchReleasedEarly {
            guard let count = faultyCounts[file] else { return }
            if count <= 1 {
                faultyCounts[file] = nil
                out.append(.remove(file: file))
            } else {
                faultyCounts[file] = count - 1
            }
        } else if fileCounts.released(from: file) {
            out.append(.remove(file: file))
        }
    }

    private mutating func rewriteMemoryEntries(includingSending: Bool, _ out: inout [OutboxAction]) {
        for i in queue.indices where queue[i].storage == .memory && (includingSending || queue[i].item.sequence != sending) {
            queue[i].storage = .writing
            out.append(.store(queue[i].item))
        }
    }

    /// Takes entries out of the queue for good (one pass): a copy of each goes to `failed/`.
    private mutating func failAll(_ doomed: [(entry: Entry, problem: String)], _ out: inout [OutboxAction]) {
        guard !doomed.isEmpty else { return }
        let sequences = Set(doomed.map(\.entry.item.sequence))
        queue.removeAll { sequences.contains($0.item.sequence) }
        for (entry, problem) in doomed {
            keepFailed(entry.item, problem, &out)
            release(entry, &out)
        }
    }

    /// A copy in `failed/`, which holds at most `spool.max_items` alerts; beyond that it is only logged.
    private mutating func keepFailed(_ item: SpoolItem, _ problem: String, _ out: inout [OutboxAction]) {
        out.append(.metric(.failed))
        out.append(
            .log(
                .error, "alert can never be delivered; moved to the failed directory",
                ["rule.id": "\(item.rule)", "emit.event": "\(item.event)", "emit.namespace": "\(item.namespace)", "error": "\(problem)"]))
        if failedKept < configuration.maxItems {
            failedKept += 1
            out.append(.storeFailed(item, reason: problem))
        } else {
            out.append(.failedDirectoryFull(item, reason: problem))
        }
    }

    /// The next alert to send: the oldest of a connected namespace whose older alerts are all
    /// ready too (stored or kept in memory).
    private func next() -> Entry? {
        var blocked: Set<String> = []
        for entry in queue {
            let ns = entry.item.namespace
            if blocked.contains(ns) { continue }
            if connected.contains(ns), entry.storage != .writing { return entry }
            blocked.insert(ns)
        }
        return nil
    }

    private mutating func pump(_ out: inout [OutboxAction]) {
        guard sending == nil, let head = next() else { return }
        if retryArmed {
            retryArmed = false
            out.append(.cancelRetry)
        }
        sending = head.item.sequence
        out.append(.send(.spooled(head.item.sequence), head.item))
    }

    private func permanentProblem(_ item: SpoolItem) -> String? {
        if item.event.isEmpty { return "the event name is empty" }
        if isSocketIOReservedEventName(item.event) { return "\(SocketIOError.reservedEventName(item.event))" }
        let known = soleNamespace.map { $0 == item.namespace } ?? configuration.namespaces.contains(item.namespace)
        if !known { return "namespace \(item.namespace) is not in server.namespaces" }
        if !unknownToServer.isEmpty, unknownToServer.contains(item.namespace) { return "the server does not know namespace \(item.namespace)" }
        return nil
    }

    private func isConnected(_ namespace: String) -> Bool {
        if connected.count == 1, let only = connected.first { return only == namespace }
        return !connected.isEmpty && connected.contains(namespace)
    }
}
