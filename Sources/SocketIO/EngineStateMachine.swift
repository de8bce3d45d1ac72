import DequeModule
import NIOCore

/// One Engine.IO session's decisions as a value: the handshake, the upgrade probe, the heartbeat,
/// the write backlog (EngineStateMachine+Backlog.swift) and the protocol dialect (Engine.IO 3 or 4, chosen once at `init`). No I/O and no clock: time
/// comes in with each input (`now`), and each input returns one small result (no allocation)
/// that the shell (``EngineSession``) carries out after the update.
///
/// The heartbeat is one timer: the shell keeps it at ``heartbeatDeadline`` and calls
/// ``heartbeatFired(now:)`` when it fires.
/// - Engine.IO 4: the server pings; the client answers and counts the session dead when nothing
///   arrived for pingInterval + pingTimeout. Packets only move `lastReceived`; the deadline is
///   checked when the timer fires (no timer work per packet).
/// - Engine.IO 3: the client pings every pingInterval and counts the session dead when the pong
///   does not come within pingTimeout (at least a second).
package struct EngineStateMachine: Sendable {
    package enum Phase: Equatable, Sendable {
        /// The handshake is under way.
        case opening
        /// Open on long-polling.
        case polling
        /// Open on long-polling, paused while the probe WebSocket answers `3probe` by `deadline`.
        case upgrading(deadline: NIODeadline)
        /// Open on WebSocket.
        case websocket
        case closed
    }

    /// Engine.IO 3 only: what the heartbeat timer waits for.
    private enum LegacyHeartbeat: Equatable {
        case nextPing
        case pong
    }

    package let revision: EngineIORevision
    package let mode: TransportMode
    package let upgradeTimeout: TimeAmount
    package let payloadCeiling: Int
    package private(set) var phase = Phase.opening
    package private(set) var handshake: EngineIOHandshake?
    /// Bytes accepted in one polling body, WebSocket message or packet's attachments.
    package private(set) var payloadLimit: Int
    package private(set) var lastReceived: NIODeadline
    /// When the heartbeat timer must fire next (nil: no timer).
    package private(set) var heartbeatDeadline: NIODeadline?
    private var legacy = LegacyHeartbeat.nextPing
    /// Units waiting for the transport, oldest first (see EngineStateMachine+Backlog.swift).
    package internal(set) var backlog = Deque<OutgoingUnit>()
    /// The bytes of the frames in ``backlog``.
    package internal(set) var backlogBytes = 0
    /// ``room`` was found zero: ``drained()`` reports once the backlog is down to half.
    package internal(set) var backlogWasFull = false

    package init(revision: EngineIORevision, mode: TransportMode, upgradeTimeout: TimeAmount, payloadCeiling: Int, now: NIODeadline) {
        self.revision = revision
        self.mode = mode
        self.upgradeTimeout = upgradeTimeout
        self.payloadCeiling = payloadCeiling
        self.payloadLimit = payloadCeiling
        self.lastReceived = now
    }

    package var isOpen: Bool {
        switch phase {
        case .polling, .upgrading, .websocket: return true
        case .opening, .closed: return false
        }
    }

    /// The byte limit for a server that announced `maxPayload`: its value, at least 64 KiB (some
    /// servers announce less than they send), at most `ceiling`.
    package static func payloadLimit(maxPayload: Int, ceiling: Int) -> Int {
        min(max(maxPayload, 65_536), ceiling)
    }

    package enum OpenedResult: Equatable, Sendable {
        /// Open: report it; `upgrade`: start the WebSocket probe first (nothing is POSTed while
        /// it runs); the heartbeat timer goes to ``heartbeatDeadline``.
        case open(upgrade: Bool)
        /// A second open packet, or the session is over: ignore it.
        case ignore
    }

    /// The handshake arrived on `websocket` (a direct WebSocket) or on long-polling.
    package mutating func opened(_ h: EngineIOHandshake, websocket: Bool, now: NIODeadline) -> OpenedResult {
        guard phase == .opening else { return .ignore }
        handshake = h
        payloadLimit = Self.payloadLimit(maxPayload: h.maxPayload, ceiling: payloadCeiling)
        lastReceived = now
        let upgrade = !websocket && mode == .auto && h.upgrades.contains("websocket")
        phase = websocket ? .websocket : upgrade ? .upgrading(deadline: now + upgradeTimeout) : .polling
        if revision == .eio3 {
            legacy = .nextPing
            heartbeatDeadline = now + .milliseconds(Int64(max(h.pingInterval, 100)))
        } else {
            heartbeatDeadline = now + TimeAmount(saturating: h.livenessTimeout)
        }
        return .open(upgrade: upgrade)
    }

    package enum ReceivedResult: Equatable, Sendable {
        /// A message: give it to the owner.
        case deliver
        /// A ping: answer with a pong carrying its payload (`echo`), or an empty one when the
        /// payload is longer than ``EngineSession/maxPongPayload``.
        case pong(echo: Bool)
        /// The server closed the session.
        case close
        /// Engine.IO 3: the pong came; the heartbeat timer moves to ``heartbeatDeadline``.
        case rescheduleHeartbeat
        case ignore
    }

    /// A packet of the open session arrived (`payloadCount`: its payload's size).
    package mutating func received(_ type: EngineIOPacketType, payloadCount: Int = 0, now: NIODeadline) -> ReceivedResult {
        guard isOpen else { return .ignore }
        lastReceived = now
        switch type {
        case .message: return .deliver
        case .ping: return .pong(echo: payloadCount <= EngineSession.maxPongPayload)
        case .close:
            phase = .closed
            heartbeatDeadline = nil
            return .close
        case .pong:
            guard revision == .eio3, legacy == .pong, let h = handshake else { return .ignore }
            legacy = .nextPing
            heartbeatDeadline = now + .milliseconds(Int64(max(h.pingInterval, 100)))
            return .rescheduleHeartbeat
        case .noop, .upgrade, .open: return .ignore
        }
    }

    /// Something unreadable arrived: it still shows the connection is alive.
    package mutating func receivedMalformed(now: NIODeadline) {
        if isOpen { lastReceived = now }
    }

    package enum HeartbeatResult: Equatable, Sendable {
        /// Engine.IO 3: send a ping; the timer moves to ``heartbeatDeadline`` (the pong's).
        case sendPing
        /// Not due yet (a packet arrived meanwhile): the timer moves to ``heartbeatDeadline``.
        case wait
        /// The session is dead: close it with `.pingTimeout`.
        case timeout(detail: String)
        case ignore
    }

    /// The heartbeat timer fired.
    package mutating func heartbeatFired(now: NIODeadline) -> HeartbeatResult {
        guard isOpen, let h = handshake else { return .ignore }
        if revision == .eio3 {
            switch legacy {
            case .nextPing:
                legacy = .pong
                heartbeatDeadline = now + .milliseconds(Int64(max(h.pingTimeout, 1000)))
                return .sendPing
            case .pong:
                return timedOut("no pong from the server within \(max(h.pingTimeout, 1000)) ms")
            }
        }
        let timeout = TimeAmount(saturating: h.livenessTimeout)
        if now - lastReceived >= timeout {
            return timedOut("no ping from the server within \(h.pingInterval + h.pingTimeout) ms")
        }
        heartbeatDeadline = lastReceived + timeout
        return .wait
    }

    private mutating func timedOut(_ detail: String) -> HeartbeatResult {
        phase = .closed
        heartbeatDeadline = nil
        return .timeout(detail: detail)
    }

    package enum ProbeResult: Equatable, Sendable {
        /// The probe answered `3probe`: send `5` on it, close polling, make it the transport.
        case complete
        /// The probe failed or answered something else: close it and go on polling.
        case abandon
        case ignore
    }

    /// The probe WebSocket answered (`text`: its first text frame; nil for a binary frame).
    package mutating func probeAnswered(_ text: some Collection<UInt8>, now: NIODeadline) -> ProbeResult {
        guard case .upgrading = phase else { return .ignore }
        guard text.elementsEqual("3probe".utf8) else { return probeFailed() }
        phase = .websocket
        lastReceived = now
        return .complete
    }

    /// The probe could not connect, closed, answered with a binary frame, or timed out.
    package mutating func probeFailed() -> ProbeResult {
        guard case .upgrading = phase else { return .ignore }
        phase = .polling
        return .abandon
    }

    /// The upgrade timer fired.
    package mutating func upgradeTimerFired(now: NIODeadline) -> ProbeResult {
        guard case .upgrading(let deadline) = phase, now >= deadline else { return .ignore }
        return probeFailed()
    }

    /// The session ends (failure, refusal or the client's close): true the first time.
    package mutating func close() -> Bool {
        guard phase != .closed else { return false }
        phase = .closed
        heartbeatDeadline = nil
        return true
    }
}
