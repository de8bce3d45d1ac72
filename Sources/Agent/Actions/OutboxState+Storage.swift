/// The outbox state's storage side: the queue's totals, the spool's budgets, write reports,
/// payloads left on disk and read back, spool files, and `failed/`.
extension OutboxState {
    // MARK: Queue bookkeeping: every change of an entry goes through these.

    private mutating func account(_ e: Entry, _ sign: Int) {
        if e.storage == .memory {
            totals.inMemory += sign
        } else {
            totals.spooled += sign
            totals.spooledBytes += sign * e.bytes
        }
        if e.hasPayload {
            totals.payloadBytes += sign * e.bytes
            if e.storage == .writing { totals.writingBytes += sign * e.bytes }
        }
    }

    mutating func append(_ e: Entry) {
        account(e, 1)
        queue.append(e)
        indexQueued(e)
    }

    @discardableResult
    mutating func remove(at i: Int) -> Entry {
        let e = queue.remove(at: i)
        account(e, -1)
        indexLeft(CollectionOfOne(e))
        return e
    }

    mutating func update(_ i: Int, _ change: (inout Entry) -> Void) {
        account(queue[i], -1)
        change(&queue[i])
        account(queue[i], 1)
    }

    /// Removes the entries `doomed` says, in one pass; returns them, oldest first.
    mutating func removeAll(where doomed: (Entry) -> Bool) -> [Entry] {
        var removed: [Entry] = []
        queue.removeAll { e in
            guard doomed(e) else { return false }
            removed.append(e)
            return true
        }
        for e in removed { account(e, -1) }
        indexLeft(removed)
        return removed
    }

    mutating func takeSequence() -> UInt64 {
        let s = nextSequence
        if nextSequence < UInt64.max { nextSequence += 1 }
        return s
    }

    // MARK: Storing

    /// Queues a new alert and has it written.
    mutating func store(_ item: SpoolItem, _ out: inout [OutboxAction]) {
        out.append(.metric(.spooled))
        var item = item
        item.sequence = takeSequence()
        append(Entry(item: item, storage: .writing, bytes: item.encoded().count))
        out.append(.store(item))
        enforceDiskBudget(keeping: item.sequence, &out)
    }

    /// Within `spool.max_items` and `spool.max_bytes`: drops the oldest alerts on disk or being
    /// written (never one in flight, nor `newest`), with a warning.
    mutating func enforceDiskBudget(keeping newest: UInt64?, _ out: inout [OutboxAction]) {
        var excessItems = totals.spooled - configuration.maxItems
        var excessBytes = totals.spooledBytes - configuration.maxBytes
        guard excessItems > 0 || excessBytes > 0 else { return }
        let inFlight = inFlightSizes
        let dropped = removeAll { entry in
            guard excessItems > 0 || excessBytes > 0, entry.storage != .memory, inFlight[entry.item.sequence] == nil, entry.item.sequence != newest
            else { return false }
            excessItems -= 1
            excessBytes -= entry.bytes
            return true
        }
        // One being written is released by its write report.
        for entry in dropped { release(entry, &out) }
        guard !dropped.isEmpty else { return }
        out.append(.discarded(dropped.map(\.item), budget: .spool))
        out.append(
            .warning(
                .spoolFull, count: dropped.count,
                ["spool.max_items": "\(configuration.maxItems)", "spool.max_bytes": "\(configuration.maxBytes)", "spool.bytes": "\(totals.spooledBytes)"]))
    }

    /// The write of `sequence` ended: in `file` (with `inFile` alerts written together), or refused.
    mutating func written(_ sequence: UInt64, file: String, inFile: Int, _ error: DiskError?, _ out: inout [OutboxAction]) {
        let index = queueIndex(of: sequence)
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
            update(i) { $0.storage = .memory }
            let item = queue[i].item
            out.append(
                .warning(
                    isNoSpace(error.code) ? .diskFull : .writeRefused, count: 1,
                    [
                        "rule.id": "\(item.rule)", "event.name": "\(item.event)", "error": "\(error)",
                        "spool.in_memory": "\(totals.inMemory)", "spool.max_in_memory": "\(configuration.maxInMemory)",
                    ]))
            trimPayloads()
            trimMemory(&out)
            if !persistRetryArmed {
                persistRetryArmed = true
                out.append(.schedulePersistRetry(configuration.retryDelay))
            }
        } else {
            update(i) { $0.storage = .disk(file: file) }
            if configuration.mutation == .ackAlertsDroppedOnceWritten, queue[i].item.ackTimeout != nil, !isInFlight(queue[i].item.sequence) {
                release(remove(at: i), &out)
                pump(&out)
                return
            }
            // The server refused its namespace while it was being written.
            if let problem = permanentProblem(queue[i].item) { failAll([(queue[i], problem)], &out) }
            trimPayloads()
        }
        pump(&out)
    }

    /// Within the in-memory budgets: drops the oldest alerts the disk refused (never one in
    /// flight), with a warning. The payloads being written are the spool writer's, bounded by
    /// its queue (``DiskWriter/spoolStoreBound(maxMemory:)``): they do not count here, so a
    /// refused alert is kept while the other payloads leave it room, not dropped at once because
    /// the writer holds its bound.
    private mutating func trimMemory(_ out: inout [OutboxAction]) {
        var excess = totals.inMemory - configuration.maxInMemory
        var excessBytes = totals.payloadBytes - totals.writingBytes - configuration.maxMemory
        guard excess > 0 || excessBytes > 0 else { return }
        let inFlight = inFlightSizes
        let dropped = removeAll { entry in
            guard excess > 0 || excessBytes > 0, entry.storage == .memory, inFlight[entry.item.sequence] == nil else { return false }
            excess -= 1
            excessBytes -= entry.bytes
            return true
        }
        guard !dropped.isEmpty else { return }
        out.append(.discarded(dropped.map(\.item), budget: .memory))
        out.append(
            .warning(
                .memoryDropped, count: dropped.count,
                ["spool.max_in_memory": "\(configuration.maxInMemory)", "spool.max_memory": "\(configuration.maxMemory)"]))
    }

    /// Within `spool.max_memory`: leaves the payloads of the newest alerts on disk (they are sent
    /// last). Those in flight keep theirs.
    mutating func trimPayloads() {
        guard totals.payloadBytes > configuration.maxMemory else { return }
        var i = queue.count - 1
        while i >= 0, totals.payloadBytes > configuration.maxMemory {
            let e = queue[i]
            if e.file != nil, e.hasPayload, !isInFlight(e.item.sequence) {
                update(i) {
                    $0.hasPayload = false
                    $0.item.args = []
                }
            }
            i -= 1
        }
    }

    mutating func payloadsRead(_ file: String, _ result: Result<[UInt64: SpoolItem], DiskError>, _ out: inout [OutboxAction]) {
        let wanted = reading?.file == file ? reading?.sequence : nil
        reading = nil
        switch result {
        case .success(let items):
            // The one the pump waits for (an older one of the file may belong to a namespace
            // that cannot send now).
            let head = queue.firstIndex { $0.file == file && !$0.hasPayload && (wanted == nil || $0.item.sequence == wanted) }
            var missing: [(Entry, String)] = []
            for i in queue.indices where queue[i].file == file && !queue[i].hasPayload {
                guard let full = items[queue[i].item.sequence] else {
                    missing.append((queue[i], "its line is missing from spool file \(file)"))
                    continue
                }
                // The first one is needed now; the others while the budget allows.
                if i == head || totals.payloadBytes + queue[i].bytes <= configuration.maxMemory {
                    update(i) {
                        $0.item.args = full.args
                        $0.hasPayload = true
                    }
                }
            }
            failAll(missing, &out)
        case .failure(let error):
            // Nothing of it can be sent: set the file aside, as an unreadable file at start is.
            let lost = removeAll { $0.file == file }
            out.append(.lost(lost.map(\.item), reason: "spool file \(file) is unreadable: \(error)"))
            out.append(.log(.error, "spool file is unreadable; moved to the corrupt directory", ["spool.file": "\(file)", "error": "\(error)", "spool.dropped": "\(lost.count)"]))
            out.append(.quarantine(file: file))
        }
        pump(&out)
    }

    /// Tries the disk again for the alerts it refused, within the disk's budgets again (the
    /// simulation found the spool beyond `spool.max_items` after such a rewrite).
    mutating func rewriteMemoryEntries(includingSending: Bool, _ out: inout [OutboxAction]) {
        var any = false
        for i in queue.indices where queue[i].storage == .memory && (includingSending || !isInFlight(queue[i].item.sequence)) {
            update(i) { $0.storage = .writing }
            out.append(.store(queue[i].item))
            any = true
        }
        if any { enforceDiskBudget(keeping: queue.last?.item.sequence, &out) }
    }

    // MARK: Leaving

    /// An alert left the queue (delivered, failed, dropped): its file goes once it holds no
    /// other undelivered alert. One being written is released by its write report.
    mutating func release(_ entry: Entry, _ out: inout [OutboxAction]) {
        guard let file = entry.file else { return }
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

    /// Takes entries out of the queue for good (one pass): a copy of each goes to `failed/`
    /// (written before its spool file can be removed: the writer does jobs in order).
    mutating func failAll(_ doomed: [(entry: Entry, problem: String)], _ out: inout [OutboxAction]) {
        guard !doomed.isEmpty else { return }
        let sequences = Set(doomed.map(\.entry.item.sequence))
        _ = removeAll { sequences.contains($0.item.sequence) }
        for (entry, problem) in doomed {
            keepFailed(entry, problem, &out)
            release(entry, &out)
        }
    }

    /// A copy in `failed/`, which holds at most `spool.max_items` alerts; beyond that it is only logged.
    mutating func keepFailed(_ entry: Entry, _ problem: String, _ out: inout [OutboxAction]) {
        let item = entry.item
        out.append(.metric(.failed))
        out.append(
            .log(
                .error, "alert can never be delivered; moved to the failed directory",
                ["rule.id": "\(item.rule)", "emit.event": "\(item.event)", "emit.namespace": "\(item.namespace)", "error": "\(problem)"]))
        if failedKept < configuration.maxItems {
            failedKept += 1
            out.append(.storeFailed(item, reason: problem, payloadIn: entry.hasPayload ? nil : entry.file))
        } else {
            out.append(.failedDirectoryFull(item, reason: problem))
        }
    }
}
