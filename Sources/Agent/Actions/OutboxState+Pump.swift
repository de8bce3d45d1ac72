import DequeModule

/// Sending: the pump, and its index of the alerts that wait per namespace.
///
/// The queue is in sequence order (alerts are appended with growing sequences, and those loaded
/// at start are sorted), so an entry is found by its sequence in O(log n). `waiting` holds, per
/// namespace, the sequences of its queued alerts that are not in flight, oldest first: the pump
/// starts there instead of at the queue's start, so that one call costs what it sends (and
/// the namespaces it looks at), not the entries of namespaces that cannot send, nor the window.
extension OutboxState {
    /// The most alerts in flight, all namespaces together: half of `spool.max_items` (at least
    /// one), so that a budget, which never drops one in flight, keeps room for those waiting.
    private var windowLimit: Int { max(1, configuration.maxItems / 2) }

    /// Sends what the windows have room for: per connected namespace that is not draining or
    /// pausing, its oldest alerts not yet in flight, in order, up to the first one still being
    /// written (order first). One whose payload stayed on disk is read back first. Across
    /// namespaces, in queue order (the window and byte limits are shared).
    mutating func pump(_ out: inout [OutboxAction]) {
        guard !connected.isEmpty, inFlightSizes.count < windowLimit else { return }
        var open = connected
        if !resting.isEmpty { open.subtract(resting) }
        if !draining.isEmpty { open.subtract(draining.keys) }
        open = open.filter { waiting[$0] != nil }
        guard !open.isEmpty else { return }
        // Half of the byte budgets too, for the same reason.
        let byteLimit = min(configuration.maxBytes, configuration.maxMemory) / 2
        while true {
            // The oldest alert that waits in an open namespace: the next one in queue order.
            var next: (ns: String, sequence: UInt64)?
            for ns in open {
                guard let s = waiting[ns]?.first else { continue }
                if next == nil || s < next!.sequence { next = (ns, s) }
            }
            guard let (ns, sequence) = next else { return }
            if pumpVisits < Int.max { pumpVisits += 1 }
            guard let i = queueIndex(of: sequence) else {
                // Not in the queue (the simulation's checker reports such a mismatch): forget it.
                takeWaiting(ns)
                if waiting[ns] == nil { open.remove(ns) }
                continue
            }
            let e = queue[i]
            guard e.storage != .writing, (inFlight[ns]?.count ?? 0) < configuration.inFlight else {
                open.remove(ns)
                continue
            }
            // Within the byte budgets too (one alone always goes).
            if !inFlightSizes.isEmpty, inFlightBytes + e.bytes > byteLimit { return }
            guard e.hasPayload else {
                // Its payload stayed on disk: read it back first (the pump runs again when it is here).
                if reading == nil, let file = e.file {
                    reading = (file, e.item.sequence)
                    out.append(.readPayloads(file: file))
                }
                open.remove(ns)
                continue
            }
            takeWaiting(ns)
            if waiting[ns] == nil { open.remove(ns) }
            inFlight[ns, default: []].append(e.item.sequence)
            inFlightSizes[e.item.sequence] = e.bytes
            inFlightBytes += e.bytes
            out.append(.send(.spooled(e.item.sequence), e.item))
            // Payloads read back while the budget allowed make room for those now in flight.
            if totals.payloadBytes > configuration.maxMemory { trimPayloads() }
            if inFlightSizes.count >= windowLimit { return }
        }
    }

    /// Where the entry of `sequence` is in the queue, if it is there (binary search: the queue
    /// is in sequence order).
    func queueIndex(of sequence: UInt64) -> Int? {
        var low = 0, high = queue.count
        while low < high {
            let mid = low + (high - low) / 2
            if queue[mid].item.sequence < sequence { low = mid + 1 } else { high = mid }
        }
        return low < queue.count && queue[low].item.sequence == sequence ? low : nil
    }

    /// Whether `ns` has alerts in the queue (waiting, or in flight and still queued).
    func hasQueued(_ ns: String) -> Bool {
        if waiting[ns] != nil { return true }
        guard let window = inFlight[ns] else { return false }
        return window.contains { queueIndex(of: $0) != nil }
    }

    // MARK: The index: kept by every change of the queue and of the windows

    /// `e` joined the queue.
    mutating func indexQueued(_ e: Entry) {
        guard !isInFlight(e.item.sequence) else { return }
        addWaiting(e.item.namespace, e.item.sequence)
    }

    /// `removed` left the queue.
    mutating func indexLeft(_ removed: some Collection<Entry>) {
        guard !waiting.isEmpty, !removed.isEmpty else { return }
        if removed.count <= 8 {
            for e in removed { removeWaiting(e.item.namespace, e.item.sequence) }
            return
        }
        // Many at once (a budget, a namespace refused, a file lost): one pass per namespace.
        var gone: [String: Set<UInt64>] = [:]
        for e in removed { gone[e.item.namespace, default: []].insert(e.item.sequence) }
        for (ns, sequences) in gone {
            waiting[ns]?.removeAll { sequences.contains($0) }
            if waiting[ns]?.isEmpty == true { waiting[ns] = nil }
        }
    }

    /// The send of `sequence` (of `ns`) ended: it waits again if it is still queued.
    mutating func indexSendEnded(_ ns: String, _ sequence: UInt64) {
        guard queueIndex(of: sequence) != nil else { return }
        addWaiting(ns, sequence)
    }

    private mutating func addWaiting(_ ns: String, _ sequence: UInt64) {
        guard let last = waiting[ns]?.last else {
            waiting[ns] = [sequence]
            return
        }
        if sequence > last {
            waiting[ns]!.append(sequence)
            return
        }
        let i = waitingIndex(ns, sequence)
        if waiting[ns]![i] != sequence { waiting[ns]!.insert(sequence, at: i) }
    }

    // (No copy of a deque is held across a change of it: that would copy it whole.)
    private mutating func removeWaiting(_ ns: String, _ sequence: UInt64) {
        guard let count = waiting[ns]?.count else { return }
        let i = waitingIndex(ns, sequence)
        guard i < count, waiting[ns]![i] == sequence else { return }
        if count == 1 {
            waiting[ns] = nil
        } else {
            waiting[ns]!.remove(at: i)
        }
    }

    private mutating func takeWaiting(_ ns: String) {
        guard let count = waiting[ns]?.count else { return }
        if count == 1 {
            waiting[ns] = nil
        } else {
            waiting[ns]!.removeFirst()
        }
    }

    /// The first position in `waiting[ns]` whose sequence is not below `sequence`.
    private func waitingIndex(_ ns: String, _ sequence: UInt64) -> Int {
        guard let w = waiting[ns] else { return 0 }
        var low = 0, high = w.count
        while low < high {
            let mid = low + (high - low) / 2
            if w[mid] < sequence { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// What is wrong with the queue's order or the pump's index, if anything (the simulation
    /// checks after every step).
    package func pumpIndexProblem() -> String? {
        var expected: [String: Deque<UInt64>] = [:]
        var previous: UInt64?
        for e in queue {
            let s = e.item.sequence
            if let previous, s <= previous { return "the queue is not in sequence order: \(s) after \(previous)" }
            previous = s
            if !isInFlight(s) { expected[e.item.namespace, default: []].append(s) }
        }
        guard expected != waiting else { return nil }
        let namespaces = Set(expected.keys).union(waiting.keys).sorted()
        func first8(_ d: Deque<UInt64>?) -> [UInt64] { d.map { Array($0.prefix(8)) } ?? [] }
        let differing = namespaces.filter { expected[$0] != waiting[$0] }.map { ns in
            "\(ns): \(first8(waiting[ns])) against \(first8(expected[ns]))"
        }
        return "the pump's index differs from the queue (waiting against expected, first 8): \(differing.joined(separator: "; "))"
    }
}
