import DequeModule
import Logging
import SocketIO

/// The outbox's decisions, as a value: each input (an alert fired, a spool write done or
/// refused, payloads read back, a namespace up or down, a send completed, a timer) returns the
/// actions to carry out. It does no I/O and reads no clock; ``AlertOutbox`` is the shell that
/// performs the actions on the event loop, and the deterministic simulation drives the same value.
///
/// What it guarantees (the simulation checks these):
/// - an alert is sent only once it is durable in the spool, or kept in memory because the disk
///   refused it; an `ack:` alert always goes through the spool;
/// - per namespace, spooled alerts are sent oldest first, up to `spool.in_flight` of them on the
///   wire at once (the window); after a failed send (no ack in time, the connection lost) nothing
///   new goes until every send of the window has ended, then the oldest unacknowledged alert is
///   sent again first, so first deliveries stay in fire order;
/// - a spool file is removed only when no undelivered alert it holds remains (the alerts
///   written together into one file are all counted before any of them is released);
/// - an alert leaves only delivered, moved to `failed/` with a reason, dropped by a budget with a
///   warning, or lost with its spool file when that became unreadable (with an error).
///
/// Budgets (each reached with a warning, and the oldest goes; one in flight never does, and the
/// window holds at most half of `spool.max_items` and of `min(spool.max_bytes, spool.max_memory)`,
/// one alert alone excepted, so that what a budget cannot drop leaves room for what waits):
/// on disk `spool.max_items` alerts and `spool.max_bytes` of them; in memory an index entry per
/// alert plus at most `spool.max_memory` of payloads (the payloads of the newest alerts on disk
/// stay there and are read back when their turn comes); alerts the disk refused, at most
/// ``Configuration/maxInMemory`` of them within `spool.max_memory` (less the other payloads
/// held, not counting those being written, which the spool writer's queue bounds).
package struct OutboxState {
    package struct Configuration: Sendable {
        /// The namespaces the client connects to.
        package var namespaces: Set<String>
        /// `spool.max_items` and `spool.max_bytes`: undelivered alerts on disk (`failed/` holds
        /// at most `max_items` too).
        package var maxItems: Int
        package var maxBytes: Int
        /// `spool.max_memory`: payload bytes held in memory.
        package var maxMemory: Int
        /// Alerts kept in memory when the disk refuses them.
        package var maxInMemory: Int
        /// `spool.in_flight`: spooled alerts per namespace on the wire at once (``inFlightRange``).
        package var inFlight: Int
        /// The pause before a failed send is tried again, and before a refused write.
        package var retryDelay: Duration
        /// A fault put back on purpose, for the simulation to catch; nil in the agent.
        package var mutation: OutboxMutation?

        package static let inFlightRange = 1...1024

        package init(
            namespaces: Set<String>, maxItems: Int, maxBytes: Int = 64 << 20, maxMemory: Int = 4 << 20, inFlight: Int = 32, retryDelay: Duration
        ) {
            self.namespaces = namespaces
            self.inFlight = min(max(inFlight, Self.inFlightRange.lowerBound), Self.inFlightRange.upperBound)
            self.maxItems = max(1, maxItems)
            self.maxBytes = max(1, maxBytes)
            self.maxMemory = max(0, maxMemory)
            self.maxInMemory = min(self.maxItems, 1000)
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
        /// Its `args` are empty unless `hasPayload`.
        package var item: SpoolItem
        package var storage: Storage
        /// Whether `item.args` is in memory (an alert on disk may leave it there).
        package var hasPayload = true
        /// Bytes of its spool line.
        package var bytes: Int

        var file: String? { if case .disk(let f) = storage { f } else { nil } }
    }

    /// What the queue holds, kept as entries come, change and go.
    package struct Totals: Sendable {
        /// Alerts on disk or being written, and their bytes (`spool.max_items`, `spool.max_bytes`).
        package var spooled = 0
        package var spooledBytes = 0
        /// Alerts the disk refused.
        package var inMemory = 0
        /// Payload bytes held (`spool.max_memory`).
        package var payloadBytes = 0
        /// Of those, the payloads of alerts being written (the spool writer's bound holds them).
        package var writingBytes = 0
    }

    package let configuration: Configuration
    let soleNamespace: String?
    package internal(set) var queue: Deque<Entry> = []
    package internal(set) var totals = Totals()
    var fileCounts = SpoolFileCounts()
    /// The counts of ``OutboxMutation/batchReleasedEarly``: one per report, released at once.
    var faultyCounts: [String: Int] = [:]
    var connected: Set<String> = []
    var unknownToServer: Set<String> = []
    /// The spooled alerts handed to the client and not yet answered, per namespace, in the order
    /// they were sent (the oldest of the namespace's queued alerts).
    package internal(set) var inFlight: [String: Deque<UInt64>] = [:]
    /// The alerts in flight, with the bytes of their spool lines.
    var inFlightSizes: [UInt64: Int] = [:]
    var inFlightBytes = 0
    /// Per namespace, the sequences of its queued alerts not in flight, oldest first: where the
    /// pump starts (OutboxState+Pump.swift). No empty entry.
    var waiting: [String: Deque<UInt64>] = [:]
    /// The entries the pump looked at, all calls together (for the tests that bound its work).
    package internal(set) var pumpVisits = 0
    /// Namespaces whose window drains after a failed send: nothing new goes until it is empty.
    /// The value: whether to pause then (an ack did not come in time on a connection still up).
    var draining: [String: Bool] = [:]
    /// Namespaces waiting for the retry timer before they send again.
    var resting: Set<String> = []
    /// The spool file whose payloads are being read back, and the alert that needs it now.
    var reading: (file: String, sequence: UInt64)?
    var retryArmed = false
    var persistRetryArmed = false
    /// Alerts handed to the client directly (no ack, namespace up, nothing waiting), not yet written.
    var direct = InFlight<(item: SpoolItem, plannedAt: Double?)>()
    var failedKept: Int
    var nextSequence: UInt64

    /// One alert read from the spool at start.
    package struct Loaded: Sendable {
        package var item: SpoolItem
        package var file: String
        package var hasPayload: Bool
        package var bytes: Int

        package init(item: SpoolItem, file: String, hasPayload: Bool = true, bytes: Int? = nil) {
            self.item = item
            self.file = file
            self.hasPayload = hasPayload
            self.bytes = bytes ?? item.encoded().count
        }
    }

    /// - Parameters:
    ///   - loaded: the alerts read from the spool, oldest first.
    ///   - failedCount: files already in `failed/`.
    ///   - nextSequence: above every sequence seen on disk.
    package init(configuration: Configuration, loaded: [Loaded], failedCount: Int, nextSequence: UInt64) {
        self.configuration = configuration
        self.soleNamespace = configuration.namespaces.count == 1 ? configuration.namespaces.first : nil
        self.failedKept = failedCount
        self.nextSequence = max(1, nextSequence)
        var perFile: [String: Int] = [:]
        // In sequence order, as the spool loads them (the pump finds entries by sequence).
        for found in loaded.sorted(by: { $0.item.sequence < $1.item.sequence }) {
            append(Entry(item: found.item, storage: .disk(file: found.file), hasPayload: found.hasPayload, bytes: found.bytes))
            perFile[found.file, default: 0] += 1
            if found.item.sequence >= self.nextSequence { self.nextSequence = found.item.sequence &+ 1 }
        }
        for (file, alerts) in perFile {
            fileCounts.loaded(file, alerts: alerts)
            faultyCounts[file] = alerts
        }
    }

    /// The actions at start: alerts that can never be delivered, and the budgets (a batch file
    /// keeps the alerts dropped while it was written; the budgets may also be smaller now).
    package mutating func start() -> [OutboxAction] {
        var out: [OutboxAction] = []
        failAll(queue.compactMap { e in permanentProblem(e.item).map { (e, $0) } }, &out)
        enforceDiskBudget(keeping: nil, &out)
        if !queue.isEmpty {
            out.append(
                .log(
                    .info, "alerts waiting in the spool",
                    ["spool.count": "\(queue.count)", "spool.bytes": "\(totals.spooledBytes)", "spool.payload_bytes": "\(totals.payloadBytes)"]))
        }
        return out
    }

    /// Alerts not yet delivered (on disk, in memory, being written, or handed to the client).
    package var pending: Int { queue.count + direct.count }
    /// Alerts not on disk: being written, kept in memory because the disk refused them, or
    /// handed to the client directly. At the shutdown deadline, those lost with the process.
    package var notOnDisk: Int { queue.reduce(0) { $0 + ($1.file == nil ? 1 : 0) } + direct.count }
    /// Nothing is being sent (queued alerts may remain, safely on disk).
    package var isIdle: Bool { inFlightSizes.isEmpty && direct.isEmpty }

    func isInFlight(_ sequence: UInt64) -> Bool { !inFlightSizes.isEmpty && inFlightSizes[sequence] != nil }

    package mutating func handle(_ input: OutboxInput) -> [OutboxAction] {
        var out: [OutboxAction] = []
        switch input {
        case .fire(let item, let plannedAt): fire(item, plannedAt: plannedAt, &out)
        case .written(let sequence, let file, let inFile, let error): written(sequence, file: file, inFile: inFile, error, &out)
        case .payloadsRead(let file, let result): payloadsRead(file, result, &out)
        case .connected(let ns):
            connected.insert(ns)
            unknownToServer.remove(ns)
            // A new connection: what waited for the retry pause goes now.
            if resting.remove(ns) != nil, resting.isEmpty, retryArmed {
                retryArmed = false
                out.append(.cancelRetry)
            }
            pump(&out)
        case .disconnected(let ns):
            connected.remove(ns)
            // What is in flight fails (the client fails it): nothing new goes before it has,
            // then the oldest unacknowledged alert is sent first.
            if inFlight[ns]?.isEmpty == false { draining[ns] = false }
        case .refused(let ns, let message): refused(ns, message, &out)
        case .sendCompleted(let send, let outcome): completed(send, outcome, &out)
        case .retryTimer:
            guard retryArmed else { break }
            retryArmed = false
            resting.removeAll()
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
            keepFailed(Entry(item: item, storage: .memory, bytes: 0), problem, &out)
            return
        }
        if item.ackTimeout == nil, isConnected(item.namespace), !hasQueued(item.namespace) {
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
        let doomed = queue.filter { $0.item.namespace == namespace && !isInFlight($0.item.sequence) && $0.storage != .writing }
        failAll(doomed.map { ($0, "the server does not know namespace \(namespace): \(message)") }, &out)
    }

    private mutating func completed(_ send: OutboxSend, _ outcome: SendOutcome, _ out: inout [OutboxAction]) {
        switch send {
        case .direct(let id):
            // Already persisted at shutdown when nil.
            guard let (item, plannedAt) = direct.remove(id) else { return }
            switch outcome {
            case .delivered:
                out.append(.delivered(item, plannedAt: plannedAt, direct: true))
            case .failed(let error, let permanent):
                if permanent {
                    var item = item
                    item.sequence = takeSequence()
                    keepFailed(Entry(item: item, storage: .memory, bytes: 0), error, &out)
                } else {
                    out.append(.log(.warning, "alert not sent; kept in the spool", ["rule.id": "\(item.rule)", "event.name": "\(item.event)", "error": "\(error)"]))
                    store(item, &out)
                }
            }
        case .spooled(let sequence):
            guard let ns = leaveWindow(sequence) else { return }
            let index = queueIndex(of: sequence)
            switch outcome {
            case .delivered:
                if let index {
                    // Released as it is now: written to the spool at shutdown while in flight, say.
                    let entry = remove(at: index)
                    release(entry, &out)
                    out.append(.delivered(entry.item, plannedAt: nil))
                    out.append(
                        .log(
                            .info, entry.item.ackTimeout == nil ? "spooled alert sent" : "spooled alert acknowledged",
                            ["rule.id": "\(entry.item.rule)", "event.name": "\(entry.item.event)", "spool.left": "\(queue.count)"]))
                }
                settle(ns, failed: false, &out)
            case .failed(let error, let permanent):
                if permanent, let index {
                    failAll([(queue[index], error)], &out)
                    settle(ns, failed: false, &out)
                    return
                }
                let item = index.map { queue[$0].item }
                out.append(
                    .log(.warning, "alert not delivered; kept in the spool", ["rule.id": "\(item?.rule ?? "")", "event.name": "\(item?.event ?? "")", "error": "\(error)"]))
                settle(ns, failed: true, &out)
            }
        }
    }

    /// Takes `sequence` out of its namespace's window; nil when it was not in flight (an answer
    /// to a send that already ended).
    private mutating func leaveWindow(_ sequence: UInt64) -> String? {
        guard let bytes = inFlightSizes.removeValue(forKey: sequence) else { return nil }
        inFlightBytes -= bytes
        for (ns, window) in inFlight {
            guard let i = window.firstIndex(of: sequence) else { continue }
            inFlight[ns]!.remove(at: i)
            if inFlight[ns]!.isEmpty { inFlight[ns] = nil }
            indexSendEnded(ns, sequence)
            return ns
        }
        return nil
    }

    /// A send of `ns` ended. After a failed one, nothing new goes until the window is empty;
    /// then the oldest unacknowledged alert goes first: after the retry pause when an ack did not
    /// come in time on a connection still up, otherwise at once (or at the next connect).
    private mutating func settle(_ ns: String, failed: Bool, _ out: inout [OutboxAction]) {
        if failed { draining[ns] = (draining[ns] ?? true) && connected.contains(ns) }
        if inFlight[ns] == nil, let pause = draining.removeValue(forKey: ns), pause, connected.contains(ns) {
            resting.insert(ns)
            if !retryArmed {
                retryArmed = true
                out.append(.scheduleRetry(configuration.retryDelay))
            }
        }
        pump(&out)
    }

    func permanentProblem(_ item: SpoolItem) -> String? {
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
