import NIOCore
import Testing

@testable import SocketIO

/// `EngineStateMachine` driven by hand: the clock is a value the test moves.
struct EngineStateMachineTests {
    typealias M = EngineStateMachine
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let handshake = EngineIOHandshake(sid: "abc", upgrades: ["websocket"], pingInterval: 1000, pingTimeout: 500, maxPayload: 10_000)

    static func machine(_ revision: EngineIORevision = .eio4, mode: TransportMode = .auto) -> M {
        M(revision: revision, mode: mode, upgradeTimeout: .seconds(10), payloadCeiling: 1_000_000, now: t0)
    }

    @Test func handshakeOpensAndSetsLimitsAndTheUpgrade() {
        var m = Self.machine()
        #expect(!m.isOpen && m.phase == .opening)
        // Before the handshake nothing counts.
        #expect(m.received(.message, now: Self.t0) == .ignore)
        #expect(m.opened(Self.handshake, websocket: false, now: Self.t0) == .open(upgrade: true))
        #expect(m.isOpen && m.phase == .upgrading(deadline: Self.t0 + .seconds(10)))
        // At least 64 KiB whatever the server announces, at most the ceiling.
        #expect(m.payloadLimit == 65_536)
        #expect(m.opened(Self.handshake, websocket: false, now: Self.t0) == .ignore)

        var polling = Self.machine(mode: .polling)
        #expect(polling.opened(Self.handshake, websocket: false, now: Self.t0) == .open(upgrade: false))
        #expect(polling.phase == .polling)
        var direct = Self.machine(mode: .websocket)
        #expect(direct.opened(Self.handshake, websocket: true, now: Self.t0) == .open(upgrade: false))
        #expect(direct.phase == .websocket)
    }

    @Test func engineIO4AnswersTheServersPingsAndNeverPings() {
        var m = Self.machine(mode: .websocket)
        _ = m.opened(Self.handshake, websocket: true, now: Self.t0)
        // Silence allowed: pingInterval + pingTimeout.
        #expect(m.heartbeatDeadline == Self.t0 + .milliseconds(1500))
        #expect(m.received(.ping, payloadCount: 0, now: Self.t0 + .milliseconds(1000)) == .pong(echo: true))
        #expect(m.received(.ping, payloadCount: 65, now: Self.t0 + .milliseconds(1000)) == .pong(echo: false))
        // The timer fires at the first deadline; a ping came since, so it waits again.
        #expect(m.heartbeatFired(now: Self.t0 + .milliseconds(1500)) == .wait)
        #expect(m.heartbeatDeadline == Self.t0 + .milliseconds(2500))
        // A pong from the server is not the client's business in Engine.IO 4.
        #expect(m.received(.pong, now: Self.t0 + .milliseconds(2000)) == .ignore)
    }

    @Test func engineIO4TimesOutWithoutPings() {
        var m = Self.machine(mode: .websocket)
        _ = m.opened(Self.handshake, websocket: true, now: Self.t0)
        #expect(m.heartbeatFired(now: Self.t0 + .milliseconds(1499)) == .wait)
        guard case .timeout = m.heartbeatFired(now: Self.t0 + .milliseconds(1500)) else {
            Issue.record("no timeout")
            return
        }
        #expect(!m.isOpen && m.heartbeatDeadline == nil)
        #expect(m.received(.message, now: Self.t0 + .seconds(2)) == .ignore)
    }

    @Test func engineIO3PingsAndWaitsForThePong() {
        var m = Self.machine(.eio3, mode: .websocket)
        _ = m.opened(Self.handshake, websocket: true, now: Self.t0)
        // The client pings after pingInterval.
        #expect(m.heartbeatDeadline == Self.t0 + .milliseconds(1000))
        #expect(m.heartbeatFired(now: Self.t0 + .milliseconds(1000)) == .sendPing)
        // The pong is due within pingTimeout, never less than a second.
        #expect(m.heartbeatDeadline == Self.t0 + .milliseconds(2000))
        #expect(m.received(.pong, now: Self.t0 + .milliseconds(1200)) == .rescheduleHeartbeat)
        #expect(m.heartbeatDeadline == Self.t0 + .milliseconds(2200))
        // A second pong changes nothing; messages do not stand in for the pong.
        #expect(m.received(.pong, now: Self.t0 + .milliseconds(1300)) == .ignore)
        #expect(m.heartbeatFired(now: Self.t0 + .milliseconds(2200)) == .sendPing)
        #expect(m.received(.message, now: Self.t0 + .milliseconds(2500)) == .deliver)
        guard case .timeout(let detail) = m.heartbeatFired(now: Self.t0 + .milliseconds(3200)) else {
            Issue.record("no timeout")
            return
        }
        #expect(detail.contains("pong"))
    }

    @Test func upgradeProbeCompletesOrFallsBackToPolling() {
        var ok = Self.machine()
        _ = ok.opened(Self.handshake, websocket: false, now: Self.t0)
        #expect(ok.probeAnswered(Array("3probe".utf8), now: Self.t0 + .seconds(1)) == .complete)
        #expect(ok.phase == .websocket)
        #expect(ok.probeFailed() == .ignore)

        var wrong = Self.machine()
        _ = wrong.opened(Self.handshake, websocket: false, now: Self.t0)
        #expect(wrong.probeAnswered(Array("3nope".utf8), now: Self.t0) == .abandon)
        #expect(wrong.phase == .polling && wrong.isOpen)

        var slow = Self.machine()
        _ = slow.opened(Self.handshake, websocket: false, now: Self.t0)
        #expect(slow.upgradeTimerFired(now: Self.t0 + .seconds(9)) == .ignore)
        #expect(slow.upgradeTimerFired(now: Self.t0 + .seconds(10)) == .abandon)
        #expect(slow.phase == .polling)
        // A late answer after the timeout is ignored.
        #expect(slow.probeAnswered(Array("3probe".utf8), now: Self.t0 + .seconds(11)) == .ignore)
    }

    @Test func theServersClosePacketEndsTheSessionOnce() {
        var m = Self.machine(mode: .websocket)
        _ = m.opened(Self.handshake, websocket: true, now: Self.t0)
        #expect(m.received(.close, now: Self.t0) == .close)
        #expect(!m.isOpen)
        #expect(m.heartbeatFired(now: Self.t0 + .seconds(5)) == .ignore)
        let closedAgain = m.close()
        #expect(!closedAgain)
    }
}

/// The write backlog held by the machine.
struct EngineStateMachineBacklogTests {
    typealias M = EngineStateMachine
    static func unit(_ bytes: Int) -> OutgoingUnit {
        OutgoingUnit(OutgoingFrame(bytes: [UInt8](repeating: 0x34, count: bytes), isBinary: false), promise: nil)
    }

    @Test func nothingIsWrittenBeforeTheHandshakeNorDuringTheProbe() {
        var m = EngineStateMachineTests.machine()
        #expect(m.enqueue(Self.unit(2)) == .queued)
        #expect(m.nextUnit() == nil && m.backlog.count == 1)
        _ = m.opened(EngineStateMachineTests.handshake, websocket: false, now: EngineStateMachineTests.t0)
        #expect(!m.canWrite)
        #expect(m.nextUnit() == nil)
        #expect(m.probeAnswered(Array("3probe".utf8), now: EngineStateMachineTests.t0) == .complete)
        #expect(m.canWrite)
        #expect(m.nextUnit()?.bytes == 2)
        #expect(m.backlog.isEmpty && m.backlogBytes == 0)
    }

    @Test func roomIsBoundedInUnitsAndBytesAndDrainedComesOnceAtHalf() {
        var m = EngineStateMachineTests.machine(mode: .websocket)
        _ = m.opened(EngineStateMachineTests.handshake, websocket: true, now: EngineStateMachineTests.t0)
        // payloadLimit is 64 KiB: two 40 kB units fill it.
        #expect(m.enqueue(Self.unit(40_000)) == .queued)
        #expect(m.room() == M.backlogUnits - 1)
        #expect(m.enqueue(Self.unit(40_000)) == .queued)
        #expect(m.room() == 0 && m.backlogWasFull)
        #expect(m.drained() == false)
        _ = m.nextUnit()
        #expect(m.drained() == false)
        _ = m.nextUnit()
        #expect(m.drained() == true)
        #expect(m.drained() == false)
        // Units count too, whatever their size.
        for _ in 0..<M.backlogUnits { _ = m.enqueue(Self.unit(1)) }
        #expect(m.room() == 0)
    }

    @Test func farBeyondTheBoundsAUnitIsRefusedButTheClosePacketIsTaken() {
        var m = EngineStateMachineTests.machine(mode: .websocket)
        _ = m.opened(EngineStateMachineTests.handshake, websocket: true, now: EngineStateMachineTests.t0)
        for _ in 0..<(4 * M.backlogUnits) { #expect(m.enqueue(Self.unit(1)) == .queued) }
        #expect(m.enqueue(Self.unit(1)) == .full)
        #expect(m.enqueue(Self.unit(1), force: true) == .queued)
        #expect(m.backlog.count == 4 * M.backlogUnits + 1)
        #expect(m.close() == true)
        #expect(m.enqueue(Self.unit(1)) == .closed)
        #expect(m.takeBacklog().count == 4 * M.backlogUnits + 1)
        #expect(m.backlog.isEmpty && m.backlogBytes == 0)
    }
}
