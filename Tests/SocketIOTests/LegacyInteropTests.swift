import Foundation
import NIOCore
import Synchronization
import Testing

@testable import SocketIO

/// Against the real legacy server: python-socketio 4.6.1 / python-engineio 3.14.2 (Socket.IO v2,
/// Engine.IO 3; Tests/SocketIOTests/Peer/legacy_server.py).
@Suite(.timeLimit(.minutes(2)))
struct LegacyInteropTests {
    /// python-engineio 3.x ends a long-poll after pingTimeout without packets, so the pong must
    /// come back before it: pingTimeout > pingInterval. 4 s leaves room on a loaded machine; the
    /// heartbeat test passes its own.
    static func legacyServer(port: Int = 0, pingTimeout: Int = 4) async throws -> PeerServer {
        try await PeerServer.start(port: port, pingInterval: 1, pingTimeout: pingTimeout, legacy: true)
    }

    /// Waits until the server has received `count` Engine.IO pings on the client's session.
    func waitForPings(_ client: SocketIOClient, atLeast count: Int, timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let seen = try await client.emitWithAck("pings", [], timeout: .seconds(10))
            if case .number(let n)? = seen.first, Int(n) >= count { return }
            if ContinuousClock.now > deadline {
                Issue.record("the server received \(seen) pings in \(timeout), not \(count)")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func makeLegacyClient(_ server: PeerServer, transports: TransportMode = .websocket, protocolVersion: ProtocolVersion = .v3,
                          namespaces: [String: JSONValue?] = ["/": nil], recorder: Recorder,
                          configure: (inout SocketIOClientConfiguration) -> Void = { _ in }) -> SocketIOClient {
        makeClient(server, transports: transports, namespaces: namespaces, recorder: recorder) {
            $0.protocolVersion = protocolVersion
            configure(&$0)
        }
    }

    @Test(arguments: [TransportMode.auto, .websocket, .polling])
    func notebookFlowOnEveryTransport(mode: TransportMode) async throws {
        let server = try await Self.legacyServer()
        let recorder = Recorder()
        let client = makeLegacyClient(server, transports: mode, recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        try await client.emit("alert", ["Ola mundo!"])
        try await client.emit("batery", [20])
        try await recorder.wait("two feedback events") { _ in recorder.named("feedback").count == 2 }
        #expect(recorder.named("feedback").map(\.args) == [[["retorno": true]], [["retorno": true]]])
        let transport = try await client.emitWithAck("transport", [], timeout: .seconds(10))
        #expect(transport == [.string(mode == .polling ? "polling" : "websocket")])
        // Several ping intervals pass (the server counts the client's pings; each keeps the
        // session, which the server would close after pingInterval + pingTimeout without one).
        try await waitForPings(client, atLeast: 3)
        #expect(try await client.emitWithAck("echo", ["still here"], timeout: .seconds(10)) == ["still here"])
        #expect(recorder.count(where: isDisconnect("/")) == 0)
        await client.disconnect()
        #expect(recorder.count(where: { if case .disconnect(_, .clientDisconnect) = $0 { true } else { false } }) == 1)
    }

    @Test(arguments: [TransportMode.auto, .websocket, .polling])
    func autoFallsBackToEngineIO3AndVersion4IsRefused(mode: TransportMode) async throws {
        let server = try await Self.legacyServer()
        let recorder = Recorder()
        let client = makeLegacyClient(server, transports: mode, protocolVersion: .auto, recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        #expect(try await client.emitWithAck("echo", ["auto"], timeout: .seconds(10)) == ["auto"])
        // One refused Engine.IO 4 handshake, then Engine.IO 3.
        #expect(try await client.emitWithAck("versions", [], timeout: .seconds(10)) == [["4": 1, "3": 1]])
        await client.disconnect()
        #expect(recorder.count { if case .connectError = $0 { true } else { false } } == 0)

        let v4 = makeLegacyClient(server, transports: mode, protocolVersion: .v4, recorder: Recorder())
        v4.connect()
        await #expect {
            try await v4.waitUntilConnected(timeout: .seconds(10), failFast: true)
        } throws: { error in
            "\(error)".contains("400") && "\(error)".contains("unsupported version")
        }
        await v4.disconnect()
    }

    @Test func autoStaysOnEngineIO4WithAVersion4Server() async throws {
        let server = try await PeerServer.start()
        let client = makeLegacyClient(server, transports: .auto, protocolVersion: .auto, recorder: Recorder())
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        #expect(try await client.emitWithAck("echo", ["v4"], timeout: .seconds(10)) == ["v4"])
        await client.disconnect()
    }

    @Test(arguments: [TransportMode.websocket, .polling])
    func acksBothWays(mode: TransportMode) async throws {
        let server = try await Self.legacyServer()
        let recorder = Recorder()
        let replied = Mutex(0)
        var c = SocketIOClientConfiguration(url: server.url, transports: mode, reconnection: fastReconnection)
        c.connectTimeout = .seconds(5)
        c.protocolVersion = .v3
        let client = SocketIOClient(configuration: c, logger: testLogger) { event in
            recorder.hook(event)
            if case .event(let e) = event, e.name == "question", let ack = e.ack {
                replied.withLock { $0 += 1 }
                ack.reply(["answer to", e.args.first ?? .null])
            }
        }
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        #expect(try await client.emitWithAck("echo", [1, "two", ["three": 3]], timeout: .seconds(10)) == [1, "two", ["three": 3]])
        // Non-ASCII text crosses the length-prefixed polling framing intact.
        #expect(try await client.emitWithAck("echo", ["é€😀"], timeout: .seconds(10)) == ["é€😀"])
        try await client.emit("ask", ["life"])
        try await recorder.wait("the answer") { _ in !recorder.named("answer").isEmpty }
        #expect(recorder.named("answer").first?.args == ["answer to", "life"])
        #expect(replied.withLock { $0 } == 1)
        await #expect(throws: SocketIOError.ackTimeout) {
            try await client.emitWithAck("stall", [], timeout: .seconds(1))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask {
                    let r = try await client.emitWithAck("echo", [.number(Double(i))], timeout: .seconds(20))
                    #expect(r == [.number(Double(i))])
                }
            }
            try await group.waitForAll()
        }
        await client.disconnect()
    }

    @Test(arguments: [TransportMode.websocket, .polling])
    func binaryBothWays(mode: TransportMode) async throws {
        let server = try await Self.legacyServer()
        let recorder = Recorder()
        let client = makeLegacyClient(server, transports: mode, recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        let blob: [UInt8] = Array(0...255)
        let args: [JSONValue] = ["label", ["nested": [.binary(blob), .binary([1, 2, 3])], "n": 1], .binary([9])]
        #expect(try await client.emitWithAck("echo", args, timeout: .seconds(10)) == args)
        try await client.emit("echo_event", args)
        try await recorder.wait("echoed") { _ in !recorder.named("echoed").isEmpty }
        #expect(recorder.named("echoed").first?.args == [.array(args)])
        let size = mode == .polling ? 30_000 : 200_000
        let big = JSONValue.binary((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        #expect(try await client.emitWithAck("echo", [big], timeout: .seconds(20)) == [big])
        await client.disconnect()
    }

    @Test(arguments: [TransportMode.websocket, .polling])
    func namespacesWithAuthInTheQuery(mode: TransportMode) async throws {
        let server = try await Self.legacyServer()
        let recorder = Recorder()
        let client = makeLegacyClient(server, transports: mode, namespaces: ["/": nil, "/admin": ["token": "secret"], "/early": nil],
                                      recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(namespace: "/admin", timeout: .seconds(20))
        try await client.waitUntilConnected(namespace: "/", timeout: .seconds(20))
        #expect(try await client.emitWithAck("echo", ["x"], namespace: "/admin", timeout: .seconds(10)) == ["x"])
        #expect(try await client.emitWithAck("query", [], timeout: .seconds(10)) == [["token": "secret"]])
        // python sends the connect handler's events before the CONNECT reply: they are kept.
        try await recorder.wait("early event") { _ in !recorder.named("early").isEmpty }
        #expect(recorder.named("early").first?.args == [["query": ["token": "secret"]]])
        // A namespace DISCONNECT leaves the others connected.
        try await client.emit("kick", [], namespace: "/early")
        try await recorder.wait("kicked") { e in e.contains { if case .disconnect("/early", .serverDisconnect) = $0 { true } else { false } } }
        #expect(try await client.emitWithAck("echo", ["after kick"], namespace: "/admin", timeout: .seconds(10)) == ["after kick"])
        await client.disconnect()

        let refused = makeLegacyClient(server, transports: mode, namespaces: ["/": nil, "/admin": ["token": "wrong"]], recorder: Recorder())
        refused.connect()
        await #expect(throws: SocketIOError.connectionRefused(namespace: "/admin", message: "Not authorized", data: nil)) {
            try await refused.waitUntilConnected(namespace: "/admin", timeout: .seconds(20))
        }
        try await refused.waitUntilConnected(namespace: "/", timeout: .seconds(20))
        await refused.disconnect()
    }

    /// python-socketio 4.x refuses `/` with a 401 to the handshake (polling GET or WebSocket
    /// request): a refusal of `/`, thrown to the waiter at once, then retried with backoff.
    @Test(arguments: [TransportMode.websocket, .polling])
    func refusedRootNamespaceIsARefusal(mode: TransportMode) async throws {
        let server = try await Self.legacyServer()
        let recorder = Recorder()
        let client = makeLegacyClient(server, transports: mode, recorder: recorder) { $0.query = [("deny", "1")] }
        client.connect()
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: SocketIOError.connectionRefused(namespace: "/", message: "Go away", data: ["code": 7])) {
            try await client.waitUntilConnected(timeout: .seconds(20))
        }
        #expect(clock.now - start < .seconds(10))
        try await recorder.wait("a retry") { e in
            e.filter { if case .connectError("/", .connectionRefused) = $0 { true } else { false } }.count >= 2
        }
        await client.disconnect()
    }

    @Test(arguments: [(TransportMode.websocket, ProtocolVersion.v3), (.polling, .v3), (.auto, .auto)])
    func serverKilledAndRestartedGetsTheBufferInOrder(mode: TransportMode, version: ProtocolVersion) async throws {
        var server = try await Self.legacyServer()
        let port = server.port
        let recorder = Recorder()
        let client = makeLegacyClient(server, transports: mode, protocolVersion: version, recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        server.kill()
        try await recorder.wait("disconnect") { e in e.contains(where: isDisconnect("/")) }
        let sends = (1...30).map { client.send("record", [.number(Double($0))]) }
        let ackWhileOffline = client.sendWithAck("echo", ["offline"], timeout: .seconds(60))
        // The emits wait while an attempt finds the server gone.
        try await recorder.wait("a failed reconnection attempt") { e in
            e.contains { if case .connectError = $0 { true } else { false } }
        }
        server = try await Self.legacyServer(port: port)
        for s in sends { try await s.get() }
        #expect(try await ackWhileOffline.get() == ["offline"])
        let records = try await client.emitWithAck("records", [], timeout: .seconds(10))
        #expect(records == [.array((1...30).map { .number(Double($0)) })])
        #expect(recorder.count { if case .reconnect = $0 { true } else { false } } >= 1)
        // `auto` kept Engine.IO 3 for the reconnect: the restarted server never saw EIO=4.
        #expect(try await client.emitWithAck("versions", [], timeout: .seconds(10)) == [["3": .number(1)]])
        await client.disconnect()
        _ = server
    }

    @Test func engineCloseIsReconnected() async throws {
        let server = try await Self.legacyServer()
        let recorder = Recorder()
        let client = makeLegacyClient(server, transports: .auto, recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        try await client.emit("close_engine", [])
        try await recorder.wait("reconnect") { e in
            e.contains { if case .reconnect = $0 { true } else { false } } && e.filter(isConnect("/")).count == 2
        }
        #expect(try await client.emitWithAck("echo", [7], timeout: .seconds(10)) == [7])
        await client.disconnect()
    }

    @Test func stoppedServerIsDetectedByTheMissingPong() async throws {
        let server = try await Self.legacyServer(pingTimeout: 2)
        let recorder = Recorder()
        let client = makeLegacyClient(server, recorder: recorder) { $0.connectTimeout = .seconds(2) }
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        // The heartbeat runs and the server answers it, before the server stops.
        try await waitForPings(client, atLeast: 1)
        let clock = ContinuousClock()
        let stopped = clock.now
        server.pause()
        try await recorder.wait("ping timeout", timeout: .seconds(15)) { e in
            e.contains { if case .disconnect("/", .pingTimeout) = $0 { true } else { false } }
        }
        // The next ping within pingInterval (1 s), then pingTimeout (2 s) for its pong.
        let detection = clock.now - stopped
        #expect(detection >= .seconds(1.5) && detection < .seconds(7), "detected after \(detection)")
        server.resume()
        try await recorder.wait("reconnected", timeout: .seconds(30)) { e in e.filter(isConnect("/")).count == 2 }
        await client.disconnect()
    }
}
