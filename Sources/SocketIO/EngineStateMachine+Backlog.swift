import DequeModule
import NIOCore

/// A group of frames written together (a Socket.IO packet and its attachments). `promise`
/// completes when the transport has written them (WebSocket) or the POST carrying them was
/// accepted (polling); the machine only carries it and hands it back.
package struct OutgoingUnit: Sendable {
    /// The packet's frame.
    package var first: OutgoingFrame
    /// The frames of its attachments, if any (apart, so that a packet without any costs no array).
    package var rest: [OutgoingFrame]
    package var bytes: Int
    package var promise: EventLoopPromise<Void>?

    package init(_ first: OutgoingFrame, rest: [OutgoingFrame] = [], promise: EventLoopPromise<Void>?) {
        self.first = first
        self.rest = rest
        self.promise = promise
        var bytes = first.bytes.count
        for f in rest { bytes &+= f.bytes.count }
        self.bytes = bytes
    }
}

/// The write backlog: frames wait here while the session is opening or probing an upgrade, and
/// while the transport is not writable. Bounded in units and bytes:
/// - ``room`` is zero from ``backlogUnits`` units or `payloadLimit` bytes: the client then keeps
///   emits in its offline buffer, and ``drained()`` tells it when the backlog is down to half;
/// - beyond 4 times those bounds a unit is refused (`.full`), with a warning by the shell: only
///   packets that do not check ``room`` (pongs, acks, CONNECTs) can get there.
extension EngineStateMachine {
    /// Units queued beyond which ``room`` is zero, whatever their size.
    package static let backlogUnits = 1024

    package enum EnqueueResult: Equatable, Sendable {
        case queued
        /// The session is over: fail the unit's promise.
        case closed
        /// Far beyond the bounds: fail the unit's promise and warn.
        case full
    }

    /// Queues a unit to write (`force`: the close packet, taken whatever the bounds).
    package mutating func enqueue(_ unit: OutgoingUnit, force: Bool = false) -> EnqueueResult {
        guard phase != .closed else { return .closed }
        if !force, backlog.count >= 4 * Self.backlogUnits || backlogBytes > 4 * payloadLimit { return .full }
        backlog.append(unit)
        backlogBytes &+= unit.bytes
        return .queued
    }

    /// How many more units the backlog takes before it is full; zero also arms ``drained()``.
    package mutating func room() -> Int {
        let units = Self.backlogUnits - backlog.count
        guard units > 0, backlogBytes < payloadLimit else {
            backlogWasFull = true
            return 0
        }
        return units
    }

    /// Whether the session writes now: open and not probing an upgrade.
    package var canWrite: Bool {
        switch phase {
        case .polling, .websocket: return true
        case .opening, .upgrading, .closed: return false
        }
    }

    /// The next unit for a transport that is writable (nil while the session cannot write).
    package mutating func nextUnit() -> OutgoingUnit? {
        guard canWrite, let unit = backlog.popFirst() else { return nil }
        backlogBytes &-= unit.bytes
        return unit
    }

    /// True once after ``room`` was zero, when the backlog is down to half its bounds.
    package mutating func drained() -> Bool {
        guard backlogWasFull, backlog.count <= Self.backlogUnits / 2, backlogBytes <= payloadLimit / 2 else { return false }
        backlogWasFull = false
        return true
    }

    /// Empties the backlog (the session ended): the shell fails the promises.
    package mutating func takeBacklog() -> Deque<OutgoingUnit> {
        let units = backlog
        backlog.removeAll()
        backlogBytes = 0
        return units
    }
}
