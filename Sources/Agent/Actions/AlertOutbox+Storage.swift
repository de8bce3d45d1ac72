import DequeModule
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The outbox's storage: the queue's totals, the spool's budgets, the writer's completions,
/// payloads left on disk and read back, and `failed/`. On the event loop, like the outbox.
extension AlertOutbox {
    // MARK: Queue bookkeeping: every change of an entry goes through these.

    private func account(_ e: Entry, _ sign: Int) {
        if e.storage == .memory {
            totals.inMemory += sign
        } else {
            totals.spooled += sign
            totals.spooledBytes += sign * e.bytes
        }
        if e.hasPayload { totals.payloadBytes += sign * e.bytes }
    }

    func append(_ e: Entry) {
        account(e, 1)
        queue.append(e)
    }

    @discardableResult
    func remove(at i: Int) -> Entry {
        let e = queue.remove(at: i)
        account(e, -1)
        return e
    }

    func update(_ i: Int, _ change: (inout Entry) -> Void) {
        account(queue[i], -1)
        change(&queue[i])
        account(queue[i], 1)
    }

    /// Removes the entries `doomed` says, in one pass; returns them, oldest first.
    func removeAll(where doomed: (Entry) -> Bool) -> [Entry] {
        var removed: [Entry] = []
        queue.removeAll { e in
            guard doomed(e) else { return false }
            removed.append(e)
            return true
        }
        for e in removed { account(e, -1) }
        return removed
    }

    // MARK: Failed alerts

    func logFailed(_ item: SpoolItem, _ problem: String) {
        metrics?.action(index: 0, .failed)
        logger.error(
            "alert can never be delivered; moved to the failed directory",
            metadata: [
                "rule.id": "\(item.rule)", "emit.event": "\(item.event)", "emit.namespace": "\(item.namespace)",
                "spool.failed_dir": "\(spool.failedDirectory)", "error": "\(problem)",
            ])
    }

    /// Takes `entry` out of the queue for good: a copy goes to `failed/`.
    func fail(_ entry: Entry, _ problem: String) {
        failAll([(entry, problem)])
    }

    /// ``fail(_:_:)`` for many entries, with one pass over the queue (a whole spool can fail at
    /// once: a namespace no longer configured, or one the server does not know).
    func failAll(_ doomed: [(entry: Entry, problem: String)]) {
        guard !doomed.isEmpty else { return }
        let sequences = Set(doomed.map(\.entry.item.sequence))
        _ = removeAll { sequences.contains($0.item.sequence) }
        for (entry, problem) in doomed {
            logFailed(entry.item, problem)
            keepFailed(entry)
            release(entry)
        }
    }

    /// Writes a copy of a failed alert to `failed/`, which holds at most `spool.max_items` of them
    /// (counted from its files at start): beyond that the alert is only logged. A payload left
    /// on disk is copied from its spool file by the writer, before the file can be removed (the
    /// writer does jobs in order).
    func keepFailed(_ entry: Entry) {
        guard failedKept < spool.maxItems else {
            if let count = failedDropped.dropped() {
                logger.error(
                    "the failed directory is full; failed alerts are logged only",
                    metadata: ["spool.failed_dir": "\(spool.failedDirectory)", "spool.max_items": "\(spool.maxItems)", "spool.dropped": "\(count)"])
            }
            return
        }
        failedKept += 1
        let name = Spool.fileName(entry.item.sequence), failedDirectory = spool.failedDirectory
        if entry.hasPayload {
            writer.submit(.store(directory: failedDirectory, name: name, bytes: entry.item.encoded(), done: { _ in }))
        } else if let file = entry.file {
            let directory = spool.directory, sequence = entry.item.sequence, fallback = entry.item
            writer.submit(.task {
                let item = (try? Spool.readPayloads(directory: directory, file: file))?[sequence] ?? fallback
                try? makeDirectories(failedDirectory)
                try? storeFileDurably(directory: failedDirectory, name: name, bytes: item.encoded())
            })
        }
    }

    // MARK: Spool files

    /// `entry` left the queue (delivered, failed, dropped): its file goes once it holds no other
    /// undelivered alert. The writer does jobs in order, so a copy written to `failed/` before is
    /// on disk by then.
    func release(_ entry: Entry) {
        guard entry.storage == .disk, let file = entry.file else { return }
        if fileCounts.released(from: file) { writer.submit(.remove(path: spool.directory + "/" + file)) }
    }

    /// Queues a new alert and has the writer thread store it.
    func store(_ item: SpoolItem) {
        metrics?.action(index: 0, .spooled)
        var item = item
        item.sequence = spool.takeSequence()
        let bytes = item.encoded()
        append(Entry(item: item, storage: .writing, file: nil, bytes: bytes.count))
        write(item, bytes)
        enforceDiskBudget(keeping: item.sequence)
    }

    /// Within `spool.max_items` and `spool.max_bytes`: drops the oldest alerts on disk or being
    /// written (never the one being sent, nor `keeping`, the newest), with a warning.
    func enforceDiskBudget(keeping newest: UInt64?) {
        var excessItems = totals.spooled - spool.maxItems
        var excessBytes = totals.spooledBytes - spool.maxBytes
        guard excessItems > 0 || excessBytes > 0 else { return }
        let sending = self.sending
        let dropped = removeAll { entry in
            guard excessItems > 0 || excessBytes > 0, entry.storage != .memory, entry.item.sequence != sending,
                entry.item.sequence != newest
            else { return false }
            excessItems -= 1
            excessBytes -= entry.bytes
            return true
        }
        // One being written is released when its write completes.
        for entry in dropped { release(entry) }
        guard !dropped.isEmpty else { return }
        metrics?.dropped(.spool, count: dropped.count)
        logger.warning(
            "spool full; dropped the oldest alerts",
            metadata: [
                "spool.dropped": "\(dropped.count)", "spool.max_items": "\(spool.maxItems)", "spool.max_bytes": "\(spool.maxBytes)",
                "spool.bytes": "\(totals.spooledBytes)",
            ])
    }

    func write(_ item: SpoolItem, _ bytes: [UInt8]) {
        let sequence = item.sequence
        writer.submit(
            .store(
                directory: spool.directory, name: Spool.fileName(sequence), bytes: bytes,
                done: { result in self.loop.execute { self.written(sequence, result) } }))
    }

    /// The writer thread stored an alert (error nil) or could not.
    private func written(_ sequence: UInt64, _ result: DiskWriter.StoreResult) {
        let file = result.file
        let index = queue.firstIndex(where: { $0.item.sequence == sequence })
        if result.error == nil, fileCounts.stored(in: file, holds: result.storesInFile, waiting: index != nil) {
            // Every alert of the file was dropped (spool full) or delivered while it was written.
            writer.submit(.remove(path: spool.directory + "/" + file))
        }
        guard let i = index else { return }
        if let error = result.error {
            update(i) { $0.storage = .memory }
            let item = queue[i].item
            logger.warning(
                isNoSpace(error.code)
                    ? "disk full; alert kept in memory until the disk takes it" : "cannot write the alert to the spool; kept in memory until the disk takes it",
                metadata: [
                    "rule.id": "\(item.rule)", "event.name": "\(item.event)", "error": "\(error)",
                    "spool.in_memory": "\(totals.inMemory)", "spool.max_in_memory": "\(maxInMemory)",
                ])
            trimPayloads()
            var excess = totals.inMemory - maxInMemory
            var excessBytes = totals.payloadBytes - spool.maxMemory
            if excess > 0 || excessBytes > 0 {
                let sending = self.sending
                let dropped = removeAll { entry in
                    guard excess > 0 || excessBytes > 0, entry.storage == .memory, entry.item.sequence != sending else { return false }
                    excess -= 1
                    excessBytes -= entry.bytes
                    return true
                }
                metrics?.dropped(.memory, count: dropped.count)
                logger.warning(
                    "alerts kept in memory are too many; dropped the oldest",
                    metadata: ["spool.dropped": "\(dropped.count)", "spool.max_in_memory": "\(maxInMemory)", "spool.max_memory": "\(spool.maxMemory)"])
            }
            schedulePersistRetry()
        } else {
            update(i) {
                $0.storage = .disk
                $0.file = file
            }
            // The server refused its namespace while it was being written.
            if let problem = permanentProblem(queue[i].item) { fail(queue[i], problem) }
            trimPayloads()
        }
        pump()
    }

    /// Within `spool.max_memory`: leaves the payloads of the newest alerts on disk (they are
    /// sent last). The one being sent keeps its payload.
    func trimPayloads() {
        guard totals.payloadBytes > spool.maxMemory else { return }
        var i = queue.count - 1
        while i >= 0, totals.payloadBytes > spool.maxMemory {
            let e = queue[i]
            if e.storage == .disk, e.hasPayload, e.item.sequence != sending {
                update(i) {
                    $0.hasPayload = false
                    $0.item.args = []
                }
            }
            i -= 1
        }
    }

    /// Reads back the payloads of `file` on the writer thread (one file at a time).
    func readPayloads(of file: String) {
        guard reading == nil else { return }
        reading = file
        let directory = spool.directory
        writer.submit(.task {
            let result = Result { try Spool.readPayloads(directory: directory, file: file) }
            self.loop.execute { self.payloadsRead(file, result) }
        })
    }

    private func payloadsRead(_ file: String, _ result: Result<[UInt64: SpoolItem], any Error>) {
        reading = nil
        switch result {
        case .success(let items):
            let head = queue.firstIndex { $0.file == file && !$0.hasPayload }
            var missing: [(Entry, String)] = []
            for i in queue.indices where queue[i].file == file && !queue[i].hasPayload {
                guard let full = items[queue[i].item.sequence] else {
                    missing.append((queue[i], "its line is missing from spool file \(file)"))
                    continue
                }
                // The first one is needed now; the others while the budget allows.
                if i == head || totals.payloadBytes + queue[i].bytes <= spool.maxMemory {
                    update(i) {
                        $0.item.args = full.args
                        $0.hasPayload = true
                    }
                }
            }
            failAll(missing)
        case .failure(let error):
            // Nothing of it can be sent: set the file aside, as an unreadable file at start is.
            let lost = removeAll { $0.file == file }
            logger.error(
                "spool file is unreadable; moved to the corrupt directory",
                metadata: [
                    "spool.file": "\(spool.directory)/\(file)", "spool.corrupt_dir": "\(spool.corruptDirectory)", "error": "\(error)",
                    "spool.dropped": "\(lost.count)",
                ])
            let directory = spool.directory, corrupt = spool.corruptDirectory
            writer.submit(.task {
                try? makeDirectories(corrupt)
                _ = rename(directory + "/" + file, corrupt + "/" + file)
            })
        }
        pump()
    }

    func schedulePersistRetry() {
        guard persistRetry == nil else { return }
        persistRetry = loop.scheduleTask(in: retryDelay) {
            self.persistRetry = nil
            self.rewriteMemoryEntries()
        }
    }

    /// Tries the disk again for the alerts it refused.
    func rewriteMemoryEntries(includingSending: Bool = false) {
        for i in queue.indices where queue[i].storage == .memory && (includingSending || queue[i].item.sequence != sending) {
            update(i) { $0.storage = .writing }
            write(queue[i].item, queue[i].item.encoded())
        }
    }
}
