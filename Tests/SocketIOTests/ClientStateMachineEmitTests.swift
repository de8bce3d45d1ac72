import Testing

@testable import SIOCore
@testable import SocketIO

/// The emits `ClientStateMachine` owns: the offline buffer and those waiting for an ack.
struct ClientStateMachineEmitTests {
    typealias M = ClientStateMachine

    static func machine(_ namespaces: [String] = ["/"], limit: Int = 1000,
                        policy: ReconnectionPolicy = ReconnectionPolicy(randomization: 0)) -> M {
        M(namespaces: namespaces.map { (name: $0, auth: nil) }, policy: policy, connectTimeout: .seconds(5),
          protocolVersion: .v4, seed: 42, offlineBufferLimit: limit)
    }

    @Test func emitsWaitInTheBufferUntilTheNamespaceConnectsThenGoInOrder() {
        var m = Self.machine()
        _ = m.start()
        #expect(m.emit(namespace: "/", delivery: .buffered, wantsAck: true, room: true) == .buffer(seq: 0, ackId: 0, dropped: nil))
        #expect(m.emit(namespace: "/", delivery: .buffered, wantsAck: false, room: true) == .buffer(seq: 1, ackId: nil, dropped: nil))
        // Not connected: a direct emit fails at once, and unknown namespaces are refused.
        #expect(m.emit(namespace: "/", delivery: .direct, wantsAck: false, room: true) == .refuse(.notConnected(namespace: "/")))
        #expect(m.emit(namespace: "/nope", delivery: .buffered, wantsAck: false, room: true) == .refuse(.unknownNamespace("/nope")))
        ClientStateMachineTests.connect(&m)
        // Buffered emits go first: a new one for the same namespace waits behind them.
        #expect(m.emit(namespace: "/", delivery: .buffered, wantsAck: false, room: true) == .buffer(seq: 2, ackId: nil, dropped: nil))
        #expect(m.nextBuffered(namespace: 0)! == (0, 0))
        #expect(m.nextBuffered(namespace: 0)! == (1, nil))
        #expect(m.nextBuffered(namespace: 0)! == (2, nil))
        #expect(m.nextBuffered(namespace: 0) == nil)
        #expect(m.emit(namespace: "/", delivery: .buffered, wantsAck: false, room: true) == .write(seq: 3, ackId: nil))
        // Without room in the session's backlog, it waits too.
        #expect(m.emit(namespace: "/", delivery: .buffered, wantsAck: false, room: false) == .buffer(seq: 4, ackId: nil, dropped: nil))
    }

    @Test func theFullBufferDropsItsOldest() {
        var m = Self.machine(limit: 2)
        _ = m.start()
        _ = m.emit(namespace: "/", delivery: .buffered, wantsAck: true, room: true)
        _ = m.emit(namespace: "/", delivery: .buffered, wantsAck: false, room: true)
        #expect(m.emit(namespace: "/", delivery: .buffered, wantsAck: false, room: true) == .buffer(seq: 2, ackId: nil, dropped: 0))
        #expect(m.emits.buffered == 2 && m.emits.awaitingAck == 0 && m.emits.records[0] == nil)
    }

    @Test func writtenEmitsWithoutAckAreDoneAndAcksFinishTheOthers() {
        var m = Self.machine()
        ClientStateMachineTests.connect(&m)
        #expect(m.emit(namespace: "/", delivery: .buffered, wantsAck: false, room: true) == .write(seq: 0, ackId: nil))
        #expect(m.emit(namespace: "/", delivery: .buffered, wantsAck: true, room: true) == .write(seq: 1, ackId: 0))
        #expect(m.emitWritten(0) == true)
        #expect(m.emitWritten(1) == false)
        // An ack on another namespace, or an unknown id, finishes nothing.
        #expect(m.acknowledged(id: 7, namespace: 0) == nil)
        #expect(m.acknowledged(id: 0, namespace: 0) == 1)
        #expect(m.emits.records.isEmpty)
        #expect(m.emit(namespace: "/", delivery: .buffered, wantsAck: true, room: true) == .write(seq: 2, ackId: 1))
        #expect(m.ackTimedOut(2) == true)
        #expect(m.ackTimedOut(2) == false)
        #expect(m.acknowledged(id: 0, namespace: 0) == nil)
    }

    @Test func aLostSessionBuffersWhatWaitsForAnAckAndFailsDirectOnes() {
        var m = Self.machine()
        ClientStateMachineTests.connect(&m)
        _ = m.emit(namespace: "/", delivery: .buffered, wantsAck: true, room: true)   // 0: written, waits for its ack
        _ = m.emit(namespace: "/", delivery: .direct, wantsAck: true, room: true)     // 1: direct, waits for its ack
        _ = m.emit(namespace: "/", delivery: .buffered, wantsAck: false, room: true)  // 2: write under way
        let actions = m.engineClosed(reason: .transportClose, detail: "gone", sessionGone: false)
        #expect(actions.contains { if case .requeueUnacknowledged = $0 { true } else { false } })
        let failed = m.requeueUnacknowledged()
        #expect(failed.map(\.seq) == [1] && failed.map(\.error) == [.disconnected])
        #expect(m.emits.records[0]?.inBuffer == true)
        // The write under way fails with the session: back in the buffer, after emit 0.
        #expect(m.emitWriteFailed(2) == .buffered(dropped: nil))
        #expect(m.emitWriteFailed(2) == .ignore)
        ClientStateMachineTests.connect(&m)
        #expect(m.nextBuffered(namespace: 0)!.seq == 0)
        #expect(m.nextBuffered(namespace: 0)!.seq == 2)
    }

    @Test func aKickedNamespaceFailsItsEmitsWhenItDoesNotComeBack() {
        var policy = ReconnectionPolicy(randomization: 0)
        policy.reconnectAfterServerDisconnect = false
        var m = Self.machine(["/", "/b"], policy: policy)
        ClientStateMachineTests.connect(&m)
        _ = m.emit(namespace: "/b", delivery: .buffered, wantsAck: true, room: true)   // 0
        _ = m.emit(namespace: "/b", delivery: .direct, wantsAck: true, room: true)     // 1
        _ = m.emit(namespace: "/", delivery: .buffered, wantsAck: true, room: true)    // 2
        #expect(m.removeEmits(namespace: 1, directOnly: true) == [1])
        let kicked = m.namespaceKicked(1)
        #expect(kicked.contains { if case .failEmits(1, .disconnected) = $0 { true } else { false } })
        #expect(m.removeEmits(namespace: 1) == [0])
        #expect(m.emit(namespace: "/b", delivery: .buffered, wantsAck: false, room: true) == .refuse(.disconnected))
        // Closed for good: everything still owned comes out.
        _ = m.shutdown(graceful: false)
        #expect(m.removeAllEmits() == [2])
        #expect(m.emit(namespace: "/", delivery: .buffered, wantsAck: false, room: true) == .refuse(.disconnected))
    }

    /// A `.direct` emit without an ack is written once and not recorded: nothing for a lost
    /// namespace or session to fail or buffer again, and no sequence number taken.
    @Test func aDirectEmitWithoutAckIsWrittenOnceAndNotRecorded() {
        var m = Self.machine(["/", "/b"])
        ClientStateMachineTests.connect(&m)
        #expect(m.emit(namespace: "b", delivery: .direct, wantsAck: false, room: true) == .writeOnce(namespace: 1))
        #expect(m.emit(namespace: "/", delivery: .direct, wantsAck: false, room: true) == .writeOnce(namespace: 0))
        #expect(m.emits.records.isEmpty && m.emits.nextSeq == 0)
        // Without room it is refused as before; with an ack it is recorded as before.
        #expect(m.emit(namespace: "/", delivery: .direct, wantsAck: false, room: false) == .refuse(.notConnected(namespace: "/")))
        #expect(m.emit(namespace: "/", delivery: .direct, wantsAck: true, room: true) == .write(seq: 0, ackId: 0))
        #expect(m.removeAllEmits() == [0])
    }
}
