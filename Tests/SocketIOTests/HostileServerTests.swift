import Foundation
import NIOCore
import Synchronization
import Testing

@testable import SocketIO

/// Against the raw Engine.IO server (Tests/SocketIOTests/Peer/rogue.py), one misbehaviour per test:
/// the client must not hammer the server, bloat, or wedge.
@Suite(.timeLimit(.minutes(2)))
struct HostileServerTests {
    private func client(_ server: PeerServer, _ transports: TransportMode, recorder: Recorder,
                        reconnection: ReconnectionPolicy = fastReconnection,
                        configure: (inout SocketIOClientConfiguration) -> Void = { _ in }) -> SocketIOClient {
        makeClient(server, transports: transports, reconnection: reconnection, recorder: recorder, configure: configure)
    }

    /// A server that completes the handshake and answers 400 to the next request sees the
    /// client's backoff: a handful of handshakes in 10 s (before: 8,632).
    @Test func handshakeThenBadRequestIsNotHammered() async throws {
        let server = try await PeerServer.rogue("reject-after-handshake")
        let recorder = Recorder()
        let client = client(server, .polling, recorder: recorder, reconnection: ReconnectionPolicy())
        let clock = ContinuousClock()
        let start = clock.now
        client.connect()
        try await waitFor("a second handshake") { try await server.stats()["handshakes", default: 0] >= 2 }
        // The measurement window itself: how many handshakes arrive in 10 s.
        try await Task.sleep(until: start + .seconds(10))
        let handshakes = try await server.stats()["handshakes", default: 0]
        await client.disconnect()
        #expect(handshakes <= 8, "\(handshakes) handshakes in 10 s")
    }

    /// A polling body that never ends is cut at the byte limit; the client reconnects.
    @Test func endlessPollingBodyIsCut() async throws {
        let server = try await PeerServer.rogue("endless-body")
        let recorder = Recorder()
        let client = client(server, .polling, recorder: recorder)
        client.connect()
        try await waitFor("a new session after the endless body") { try await server.stats()["handshakes", default: 0] >= 2 }
        let sent = try await server.stats()["body_bytes_sent", default: 0]
        await client.disconnect()
        // What the server pushed into socket buffers before it noticed each close (before: the
        // client read 1.1 GB in 10 s on one session and never reconnected).
        #expect(sent < 200_000_000)
    }

    @Test(arguments: ["big-frame", "big-message"])
    func oversizeWebSocketDataClosesTheConnection(mode: String) async throws {
        let server = try await PeerServer.rogue(mode)
        let recorder = Recorder()
        let client = client(server, .websocket, recorder: recorder)
        client.connect()
        try await waitFor("a new session after the oversize data") { try await server.stats()["handshakes", default: 0] >= 2 }
        await client.disconnect()
        #expect(recorder.named("big").isEmpty)
    }

    @Test(arguments: ["attachment-bomb", "attachment-total"])
    func attachmentBombsAreRefused(mode: String) async throws {
        let server = try await PeerServer.rogue(mode)
        let recorder = Recorder()
        let client = client(server, .websocket, recorder: recorder)
        client.connect()
        try await recorder.wait("the event after the bomb") { _ in !recorder.named("after").isEmpty }
        await client.disconnect()
        #expect(recorder.named("bomb").isEmpty)
    }

    /// A namespace CONNECT that is never answered is a connect error, retried with backoff.
    @Test func unansweredConnectTimesOut() async throws {
        let server = try await PeerServer.rogue("no-connect")
        let recorder = Recorder()
        let client = client(server, .websocket, recorder: recorder) { $0.connectTimeout = .seconds(2) }
        client.connect()
        try await recorder.wait("a second connect error") { e in
            e.filter { if case .connectError("/", .connectTimeout) = $0 { true } else { false } }.count >= 2
        }
        let connects = try await server.stats()["connects", default: 0]
        await client.disconnect()
        #expect((2...4).contains(connects), "\(connects) CONNECT packets")
    }

    @Test func eventsBeforeTheConnectReplyAreBounded() async throws {
        let server = try await PeerServer.rogue("early-flood")
        let recorder = Recorder()
        let client = client(server, .websocket, recorder: recorder)
        client.connect()
        try await recorder.wait("the event after the flood") { _ in !recorder.named("after").isEmpty }
        await client.disconnect()
        let early = recorder.named("early")
        #expect(early.count == 100)
        #expect(early.last?.args == [4999])
    }

    @Test func cookieJarIsBounded() async throws {
        let server = try await PeerServer.rogue("cookie-flood", pingInterval: 200, pingTimeout: 5000)
        let recorder = Recorder()
        let client = client(server, .polling, recorder: recorder)
        client.connect()
        try await waitFor("several polls") { try await server.stats()["requests", default: 0] >= 8 }
        let stats = try await server.stats()
        await client.disconnect()
        #expect(stats["cookie_max_count", default: 0] == CookieJar.maxCookies)
        #expect(stats["cookie_max_len", default: 0] <= CookieJar.maxCookieBytes)
    }

    @Test func hugePingPayloadsAreNotEchoed() async throws {
        let server = try await PeerServer.rogue("huge-ping", pingInterval: 300, pingTimeout: 5000)
        let recorder = Recorder()
        let client = client(server, .websocket, recorder: recorder)
        client.connect()
        try await waitFor("two pongs") { try await server.stats()["pongs", default: 0] >= 2 }
        let stats = try await server.stats()
        await client.disconnect()
        #expect(stats["pong_max", default: -1] <= EngineSession.maxPongPayload)
    }

    /// Every namespace disconnected by the server: the client connects them again on the slow
    /// path, or (configured) stops and says so.
    @Test func everyNamespaceKickedIsRetriedSlowlyOrStops() async throws {
        let server = try await PeerServer.rogue("kick-all")
        var slow = fastReconnection
        slow.slowDelay = .milliseconds(500)
        let recorder = Recorder()
        let client = client(server, .websocket, recorder: recorder, reconnection: slow)
        client.connect()
        try await waitFor("the namespace connected again") { try await server.stats()["connects", default: 0] >= 2 }
        await client.disconnect()

        var stopping = fastReconnection
        stopping.whenExhausted = .stop
        let stoppedRecorder = Recorder()
        let stopped = self.client(server, .websocket, recorder: stoppedRecorder, reconnection: stopping)
        let events = stopped.events
        stopped.connect()
        try await stoppedRecorder.wait("stopped") { e in e.contains { if case .stopped = $0 { true } else { false } } }
        for await _ in events {}  // the sequence ends
        await #expect(throws: SocketIOError.disconnected) { try await stopped.emit("x", []) }
    }

    /// A server that stops reading: writes wait for the channel to be writable, and the emits
    /// beyond the bounded buffers are dropped (oldest first), not piled up in memory.
    @Test func writesRespectBackpressure() async throws {
        let server = try await PeerServer.rogue("no-read")
        let recorder = Recorder()
        let client = client(server, .websocket, recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        let chunk = JSONValue.string(String(repeating: "z", count: 20_000))
        let overflowed = Atomic<Int>(0)
        for _ in 0..<3000 {
            client.send("fill", [chunk]).whenFailure { error in
                if case SocketIOError.bufferOverflow = error { overflowed.add(1, ordering: .relaxed) }
            }
        }
        try await waitFor("emits dropped from the full buffer") { overflowed.load(ordering: .relaxed) > 0 }
        await client.disconnect()
    }
}
