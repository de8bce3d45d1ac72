import SIOCore

/// The emits the client still owns, by sequence number (emit order): the offline buffer, and the
/// emits written and waiting for their ack. A value with no I/O; the shell keeps each emit's
/// name, arguments, promises and ack timer under its sequence number.
///
/// An emit is recorded from ``ClientStateMachine/emit(namespace:delivery:wantsAck:room:)`` until it
/// is finished: written without an ack, acknowledged, timed out, dropped from the full buffer or
/// failed. Bounded: the buffer by its limit (the oldest goes first); emits waiting for an ack by
/// their ack timeouts.
package struct EmitLedger: Sendable {
    package struct Record: Equatable, Sendable {
        package let namespace: Int
        package let delivery: EmitDelivery
        package var ackId: Int?
        package var inBuffer: Bool
    }

    package private(set) var records: [Int: Record] = [:]
    var offline: OfflineBuffer<Int>
    var acks = AckTable<Int>()
    package private(set) var nextSeq = 0

    init(limit: Int) {
        offline = OfflineBuffer(limit: limit)
    }

    /// Emits in the offline buffer.
    package var buffered: Int { offline.count }
    /// Emits waiting for an ack.
    package var awaitingAck: Int { acks.count }

    mutating func add(_ record: Record) -> Int {
        let seq = nextSeq
        nextSeq &+= 1
        records[seq] = record
        return seq
    }

    mutating func registerAck(_ seq: Int) -> Int { acks.register(seq) }

    mutating func remove(_ seq: Int) {
        guard let r = records.removeValue(forKey: seq) else { return }
        if let id = r.ackId, acks[id] == seq { acks.resolve(id) }
        if r.inBuffer { offline.remove(seq: seq) }
    }

    /// Puts `seq` into the offline buffer, in emit order; returns the emit dropped beyond the
    /// limit (it may be `seq` itself), which is then forgotten.
    mutating func buffer(_ seq: Int, namespace: String) -> Int? {
        records[seq]?.inBuffer = true
        guard let dropped = offline.insert(seq, seq: seq, namespace: namespace) else { return nil }
        records[dropped]?.inBuffer = false
        remove(dropped)
        return dropped
    }

    mutating func popBuffered(namespace: String) -> Int? {
        guard let seq = offline.popFirst(namespace: namespace) else { return nil }
        records[seq]?.inBuffer = false
        return seq
    }

    subscript(seq: Int) -> Record? { records[seq] }
    func seq(ackId: Int) -> Int? { acks[ackId] }
}

/// Emits and acks: what to do with a new emit, what becomes of it when its write completes or
/// fails, when its ack comes or times out, and when its namespace or the session is lost.
/// These inputs are per emit: each returns one small value, no action list.
extension ClientStateMachine {
    package enum EmitDecision: Equatable, Sendable {
        /// Fail the emit at once.
        case refuse(SocketIOError)
        /// Write it now (with its ack id, if it waits for one).
        case write(seq: Int, ackId: Int?)
        /// A `.direct` emit without an ack, to namespace `namespace` (an index): write it now.
        /// The machine keeps no record of it: the write's outcome is all that is left of it (a
        /// write that fails fails the emit with `.disconnected`).
        case writeOnce(namespace: Int)
        /// It waits in the offline buffer; `dropped`: an emit dropped beyond the limit (fail it
        /// with `.bufferOverflow`; it may be this one).
        case buffer(seq: Int, ackId: Int?, dropped: Int?)
    }

    /// A new emit to `namespace`. `room`: the session's write backlog takes it now.
    package mutating func emit(namespace: String, delivery: EmitDelivery, wantsAck: Bool, room: Bool) -> EmitDecision {
        guard let i = index(of: Self.normalize(namespace)) else { return .refuse(.unknownNamespace(namespace)) }
        guard phase != .closed else { return .refuse(.disconnected) }
        let status = namespaces[i].status
        if status == .kicked && !kickedNamespacesComeBack { return .refuse(.disconnected) }
        let name = namespaces[i].name
        let writable = status == .connected && phase == .open && room
        if delivery == .direct && !writable { return .refuse(.notConnected(namespace: name)) }
        if delivery == .direct && !wantsAck { return .writeOnce(namespace: i) }
        let seq = emits.add(EmitLedger.Record(namespace: i, delivery: delivery, ackId: nil, inBuffer: false))
        var ackId: Int?
        if wantsAck {
            let id = emits.registerAck(seq)
            ackId = id
            emits.setAckId(id, of: seq)
        }
        // Nothing overtakes what waits in the buffer for the same namespace.
        if delivery == .direct || (writable && !emits.offline.contains(namespace: name)) {
            return .write(seq: seq, ackId: ackId)
        }
        return .buffer(seq: seq, ackId: ackId, dropped: emits.buffer(seq, namespace: name))
    }

    /// The write of `seq` completed; true when that finished it (no ack awaited).
    package mutating func emitWritten(_ seq: Int) -> Bool {
        guard let r = emits[seq], r.ackId == nil, !r.inBuffer else { return false }
        emits.remove(seq)
        return true
    }

    package enum WriteFailure: Equatable, Sendable {
        /// Nothing to do (finished, or already back in the buffer).
        case ignore
        /// Fail the emit.
        case fail(SocketIOError)
        /// Back in the buffer for the next session; `dropped` as in ``EmitDecision``.
        case buffered(dropped: Int?)
    }

    /// The session ended before `seq` was written: it waits for the next one (a `.direct` emit,
    /// or any once closed for good, fails).
    package mutating func emitWriteFailed(_ seq: Int) -> WriteFailure {
        guard let r = emits[seq], !r.inBuffer else { return .ignore }
        if phase == .closed || r.delivery == .direct {
            emits.remove(seq)
            return .fail(.disconnected)
        }
        return .buffered(dropped: emits.buffer(seq, namespace: namespaces[r.namespace].name))
    }

    /// The ack timer of `seq` fired; true when the emit was still waiting (fail it with `.ackTimeout`).
    package mutating func ackTimedOut(_ seq: Int) -> Bool {
        guard emits[seq] != nil else { return false }
        emits.remove(seq)
        return true
    }

    /// The server's ack `id` arrived on namespace `i`: the emit it finishes, if any.
    package mutating func acknowledged(id: Int, namespace i: Int) -> Int? {
        guard let seq = emits.seq(ackId: id), let r = emits[seq], r.namespace == i else { return nil }
        emits.remove(seq)
        return seq
    }

    /// The emit was finished by the shell (failed, or its promise settled otherwise).
    package mutating func forgetEmit(_ seq: Int) {
        emits.remove(seq)
    }

    /// The oldest buffered emit of namespace `i`, taken out of the buffer to be written now
    /// (the shell asks while the session has room).
    package mutating func nextBuffered(namespace i: Int) -> (seq: Int, ackId: Int?)? {
        guard let seq = emits.popBuffered(namespace: namespaces[i].name) else { return nil }
        return (seq, emits[seq]?.ackId)
    }

    /// Whether emits of namespace `i` wait in the buffer.
    package func hasBuffered(namespace i: Int) -> Bool {
        emits.offline.contains(namespace: namespaces[i].name)
    }

    /// Takes out the emits of namespace `i` that are buffered or wait for an ack (`directOnly`:
    /// only `.direct` ones waiting for an ack), oldest first: the shell fails them.
    package mutating func removeEmits(namespace i: Int, directOnly: Bool = false) -> [Int] {
        var taken: [Int] = []
        for (seq, r) in emits.records where r.namespace == i && (r.inBuffer || r.ackId != nil) {
            if directOnly && (r.delivery != .direct || r.ackId == nil) { continue }
            taken.append(seq)
        }
        taken.sort()
        for seq in taken { emits.remove(seq) }
        return taken
    }

    /// The session is gone: emits written on it and still waiting for an ack are buffered again,
    /// in emit order; returns those that fail instead (`.direct` ones, and any dropped beyond the
    /// buffer's limit).
    package mutating func requeueUnacknowledged() -> [(seq: Int, error: SocketIOError)] {
        var failed: [(seq: Int, error: SocketIOError)] = []
        let waiting = emits.records.compactMap { $0.value.ackId != nil && !$0.value.inBuffer ? $0.key : nil }.sorted()
        for seq in waiting {
            guard let r = emits[seq], !r.inBuffer else { continue }
            if r.delivery == .direct {
                emits.remove(seq)
                failed.append((seq, .disconnected))
            } else if let dropped = emits.buffer(seq, namespace: namespaces[r.namespace].name) {
                failed.append((dropped, .bufferOverflow))
            }
        }
        return failed
    }

    /// Closed for good: takes out every buffered emit and every one waiting for an ack, oldest
    /// first (the shell fails them). Emits whose write is still under way fail when it does.
    package mutating func removeAllEmits() -> [Int] {
        let taken = emits.records.compactMap { $0.value.inBuffer || $0.value.ackId != nil ? $0.key : nil }.sorted()
        for seq in taken { emits.remove(seq) }
        return taken
    }
}

extension EmitLedger {
    mutating func setAckId(_ id: Int, of seq: Int) {
        records[seq]?.ackId = id
    }
}
