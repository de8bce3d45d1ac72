import Foundation
import NIOCore
import Synchronization
import Testing

@testable import SocketIO

/// Against the real python-socketio 5.18 server (Tests/SocketIOTests/Peer/server.py).
@Suite(.timeLimit(.minutes(2)))
struct InteropTests {
    @Test(arguments: [TransportMode.auto, .websocket, .polling])
    func notebookFlowOnEveryTransport(mode: TransportMode) async throws {
        let server = try await PeerServer.start()
        let recorder = Recorder()
        let client = makeClient(server, transports: mode, recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        try await client.emit("alert", ["Ola mundo!"])
        try await client.emit("batery", [20])
        try await recorder.wait("two feedback events") { _ in recorder.named("feedback").count == 2 }
        #expect(recorder.named("feedback").map(\.args) == [[["retorno": true]], [["retorno": true]]])
        let transport = try await client.emitWithAck("transport", [], timeout: .seconds(10))
        #expect(transport == [.string(mode == .polling ? "polling" : "websocket")])
        await client.disconnect()
        #expect(recorder.count(where: { if case .disconnect(_, .clientDisconnect) = $0 { true } else { false } }) == 1)
    }

    @Test func namespacesWithAuthAcceptedAndRefused() async throws {
        let server = try await PeerServer.start()
        let recorder = Recorder()
        let client = makeClient(server, namespaces: ["/": nil, "/admin": ["token": "secret"]], recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(namespace: "/admin", timeout: .seconds(20))
        try await client.waitUntilConnected(namespace: "/", timeout: .seconds(20))
        #expect(try await client.emitWithAck("echo", ["x"], namespace: "/admin", timeout: .seconds(10)) == ["x"])
        await client.disconnect()

        let refusedRecorder = Recorder()
        let refused = makeClient(server, namespaces: ["/": nil, "/admin": ["token": "wrong"]], recorder: refusedRecorder)
        refused.connect()
        await #expect(throws: SocketIOError.connectionRefused(namespace: "/admin", message: "Not authorized", data: ["reason": "bad token"])) {
            try await refused.waitUntilConnected(namespace: "/admin", timeout: .seconds(20))
        }
        try await refused.waitUntilConnected(namespace: "/", timeout: .seconds(20))
        // The refusal is retried on the slow path (>= 1 s apart), never in a tight loop.
        let clock = ContinuousClock()
        let firstRefusal = clock.now
        try await refusedRecorder.wait("a second refusal") { e in
            e.filter { if case .connectError("/admin", _) = $0 { true } else { false } }.count >= 2
        }
        #expect(clock.now - firstRefusal >= .milliseconds(500))
        await refused.disconnect()

        // An unknown namespace: python answers with a bare string.
        let unknown = makeClient(server, namespaces: ["/nowhere": nil], recorder: Recorder())
        unknown.connect()
        await #expect(throws: SocketIOError.connectionRefused(namespace: "/nowhere", message: "Unable to connect", data: nil)) {
            try await unknown.waitUntilConnected(namespace: "/nowhere", timeout: .seconds(20))
        }
        await unknown.disconnect()
    }

    @Test(arguments: [TransportMode.websocket, .polling])
    func acksBothWaysWithTimeout(mode: TransportMode) async throws {
        let server = try await PeerServer.start()
        let recorder = Recorder()
        let replied = Mutex(0)
        var c = SocketIOClientConfiguration(url: server.url, transports: mode, reconnection: fastReconnection)
        c.connectTimeout = .seconds(5)
        let client = SocketIOClient(configuration: c, logger: testLogger) { event in
            recorder.hook(event)
            if case .event(let e) = event, e.name == "question", let ack = e.ack {
                replied.withLock { $0 += 1 }
                ack.reply(["answer to", e.args.first ?? .null])
                ack.reply(["ignored second reply"])
            }
        }
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        #expect(try await client.emitWithAck("echo", [1, "two", ["three": 3]], timeout: .seconds(10)) == [1, "two", ["three": 3]])
        try await client.emit("ask", ["life"])
        try await recorder.wait("the answer") { _ in !recorder.named("answer").isEmpty }
        #expect(recorder.named("answer").first?.args == ["answer to", "life"])
        #expect(replied.withLock { $0 } == 1)
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: SocketIOError.ackTimeout) {
            try await client.emitWithAck("stall", [], timeout: .seconds(1))
        }
        #expect(clock.now - start < .seconds(8))
        // Many acks in flight at once each complete with their own value.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask {
                    let r = try await client.emitWithAck("echo", [.number(Double(i))], timeout: .seconds(20))
                    #expect(r == [.number(Double(i))])
                }
            }
            try await group.waitForAll()
        }
        // An ack pending when the client closes completes with `.disconnected`.
        let pending = client.sendWithAck("stall", [], timeout: .seconds(30))
        // Written in order: once the echo is answered, the stall is with the server.
        #expect(try await client.emitWithAck("echo", ["after stall"], timeout: .seconds(10)) == ["after stall"])
        await client.disconnect()
        await #expect(throws: SocketIOError.disconnected) { try await pending.get() }
        await #expect(throws: SocketIOError.disconnected) { try await client.emit("after", []) }
    }

    @Test(arguments: [TransportMode.websocket, .polling])
    func binaryBothWays(mode: TransportMode) async throws {
        let server = try await PeerServer.start()
        let recorder = Recorder()
        let client = makeClient(server, transports: mode, recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        let blob: [UInt8] = Array(0...255)
        let args: [JSONValue] = ["label", ["nested": [.binary(blob), .binary([1, 2, 3])], "n": 1], .binary([])]
        #expect(try await client.emitWithAck("echo", args, timeout: .seconds(10)) == args)
        try await client.emit("echo_event", args)
        try await recorder.wait("echoed") { _ in !recorder.named("echoed").isEmpty }
        #expect(recorder.named("echoed").first?.args == [.array(args)])
        // python-engineio may truncate POST bodies that arrive in several TCP segments (it reads
        // them with one StreamReader.read(n)), so the large payload stays small over polling.
        let size = mode == .polling ? 30_000 : 200_000
        let big = JSONValue.binary((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        #expect(try await client.emitWithAck("echo", [big], timeout: .seconds(20)) == [big])
        await client.disconnect()
    }

    @Test func eventsFromTheConnectHandlerAreKept() async throws {
        let server = try await PeerServer.start()
        let recorder = Recorder()
        let client = makeClient(server, transports: .auto, namespaces: ["/early": ["k": "v"]], recorder: recorder)
        client.connect()
        try await recorder.wait("early event") { _ in !recorder.named("early").isEmpty }
        #expect(recorder.named("early").first?.args == [["auth": ["k": "v"]]])
        let all = recorder.all
        let connectIndex = all.firstIndex(where: isConnect("/early"))
        let earlyIndex = all.firstIndex { if case .event(let e) = $0 { e.name == "early" } else { false } }
        #expect(connectIndex != nil && earlyIndex != nil && connectIndex! < earlyIndex!)
        await client.disconnect()
    }

    @Test func serverDisconnectIsNotReconnectedUnlessConfigured() async throws {
        let server = try await PeerServer.start()
        let recorder = Recorder()
        var stopping = fastReconnection
        stopping.whenExhausted = .stop
        let client = makeClient(server, namespaces: ["/": nil, "/early": nil], reconnection: stopping, recorder: recorder)
        let events = client.events
        client.connect()
        try await client.waitUntilConnected(namespace: "/", timeout: .seconds(20))
        try await client.waitUntilConnected(namespace: "/early", timeout: .seconds(20))
        // One namespace kicked: it stays disconnected, the other one works.
        try await client.emit("kick", [], namespace: "/early")
        try await recorder.wait("server disconnect") { e in
            e.contains { if case .disconnect("/early", .serverDisconnect) = $0 { true } else { false } }
        }
        await #expect(throws: SocketIOError.disconnected) { try await client.emit("x", [], namespace: "/early") }
        #expect(try await client.emitWithAck("echo", [1], timeout: .seconds(10)) == [1])
        // The last one kicked too: with `whenExhausted: .stop` the client stops and says so.
        try await client.emit("kick", [])
        var seen = 0
        for await _ in events { seen += 1 }
        #expect(seen >= 2)
        #expect(recorder.count { if case .stopped = $0 { true } else { false } } == 1)
        await #expect(throws: SocketIOError.disconnected) { try await client.emit("x", []) }

        let again = Recorder()
        var policy = fastReconnection
        policy.reconnectAfterServerDisconnect = true
        let reconnecting = makeClient(server, reconnection: policy, recorder: again)
        reconnecting.connect()
        try await reconnecting.waitUntilConnected(timeout: .seconds(20))
        try await reconnecting.emit("kick", [])
        try await again.wait("connected again") { e in e.filter(isConnect("/")).count == 2 }
        await reconnecting.disconnect()
    }

    @Test func engineCloseIsReconnected() async throws {
        let server = try await PeerServer.start()
        let recorder = Recorder()
        let client = makeClient(server, transports: .auto, recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        try await client.emit("close_engine", [])
        try await recorder.wait("reconnect") { e in
            e.contains { if case .reconnect = $0 { true } else { false } } && e.filter(isConnect("/")).count >= 2
        }
        #expect(recorder.count { if case .disconnect("/", .transportClose) = $0 { true } else { false } } >= 1)
        #expect(try await client.emitWithAck("echo", [7], timeout: .seconds(10)) == [7])
        await client.disconnect()
    }

    @Test(arguments: [TransportMode.websocket, .polling])
    func serverKilledAndRestartedGetsTheBufferInOrder(mode: TransportMode) async throws {
        var server = try await PeerServer.start()
        let port = server.port
        let recorder = Recorder()
        let client = makeClient(server, transports: mode, recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        server.kill()
        try await recorder.wait("disconnect") { e in e.contains(where: isDisconnect("/")) }
        let sends = (1...30).map { client.send("record", [.number(Double($0))]) }
        let ackWhileOffline = client.sendWithAck("echo", ["offline"], timeout: .seconds(60))
        server = try await PeerServer.start(port: port)
        for s in sends { try await s.get() }
        #expect(try await ackWhileOffline.get() == ["offline"])
        let records = try await client.emitWithAck("records", [], timeout: .seconds(10))
        #expect(records == [.array((1...30).map { .number(Double($0)) })])
        #expect(recorder.count { if case .reconnect = $0 { true } else { false } } >= 1)
        await client.disconnect()
        _ = server
    }

    @Test func stoppedServerIsDetectedAndReconnectedAfterResume() async throws {
        let server = try await PeerServer.start(pingInterval: 1, pingTimeout: 1)
        let recorder = Recorder()
        let client = makeClient(server, recorder: recorder) { $0.connectTimeout = .seconds(2) }
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        #expect(try await client.emitWithAck("echo", [0], timeout: .seconds(10)) == [0])
        let clock = ContinuousClock()
        let stopped = clock.now
        server.pause()
        try await recorder.wait("ping timeout", timeout: .seconds(15)) { e in
            e.contains { if case .disconnect("/", .pingTimeout) = $0 { true } else { false } }
        }
        let detection = clock.now - stopped
        // pingInterval + pingTimeout = 2 s, plus scheduling slack on a loaded machine.
        #expect(detection >= .seconds(1) && detection < .seconds(6), "detected after \(detection)")
        let pending = client.send("record", ["while stopped"])
        try await recorder.wait("a reconnection attempt while stopped") { e in
            e.contains { if case .reconnectAttempt = $0 { true } else { false } }
        }
        server.resume()
        try await recorder.wait("reconnected", timeout: .seconds(30)) { e in e.filter(isConnect("/")).count == 2 }
        try await pending.get()
        #expect(try await client.emitWithAck("records", [], timeout: .seconds(10)) == [["while stopped"]])
        await client.disconnect()
    }

    @Test func cookiesHeadersAndQueryReachEveryRequest() async throws {
        let server = try await PeerServer.start()
        let recorder = Recorder()
        let client = makeClient(server, transports: .auto, recorder: recorder) {
            $0.headers = [("X-Test", "yes")]
            $0.query = [("q", "1")]
        }
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        let reply = try await client.emitWithAck("cookies", [], timeout: .seconds(10))
        guard case .array(let requests)? = reply.first else {
            Issue.record("no cookie list: \(reply)")
            return
        }
        #expect(requests.count >= 2)
        #expect(requests.allSatisfy { $0["x-test"] == "yes" && $0["query"] == "1" })
        // Every request after the handshake carries the cookie, the WebSocket upgrade included.
        let later = requests.filter { $0["sid"] == true }
        #expect(!later.isEmpty)
        #expect(later.allSatisfy { $0["cookie"] == "sticky=node-7" })
        #expect(later.contains { $0["transport"] == "websocket" })
        await client.disconnect()
    }

    @Test func reconnectionGivesUpAfterTheConfiguredAttempts() async throws {
        let recorder = Recorder()
        let c = SocketIOClientConfiguration(
            url: "http://127.0.0.1:1", transports: .websocket,
            reconnection: ReconnectionPolicy(delay: .milliseconds(50), maxDelay: .milliseconds(100), attempts: 2, whenExhausted: .stop),
            offlineBufferLimit: 2
        )
        let client = SocketIOClient(configuration: c, logger: testLogger, onEvent: recorder.hook)
        let first = client.send("a", [])
        let second = client.send("b", [])
        let third = client.send("c", [])
        await #expect(throws: SocketIOError.bufferOverflow) { try await first.get() }
        await #expect(throws: SocketIOError.reservedEventName("connect")) { try await client.emit("connect", []) }
        client.connect()
        try await recorder.wait("reconnect failed") { e in e.contains { if case .reconnectFailed = $0 { true } else { false } } }
        let attempts = recorder.all.compactMap { if case .reconnectAttempt(let n) = $0 { n } else { nil } }
        #expect(attempts == [1, 2])
        try await recorder.wait("stopped") { e in e.contains { if case .stopped = $0 { true } else { false } } }
        await #expect(throws: SocketIOError.disconnected) { try await second.get() }
        await #expect(throws: SocketIOError.disconnected) { try await third.get() }
        await #expect(throws: (any Error).self) { try await client.waitUntilConnected(timeout: .seconds(1)) }
    }

    @Test func exhaustedAttemptsGoOnSlowly() async throws {
        let recorder = Recorder()
        let c = SocketIOClientConfiguration(
            url: "http://127.0.0.1:1", transports: .websocket,
            reconnection: ReconnectionPolicy(delay: .milliseconds(50), maxDelay: .milliseconds(100), attempts: 2,
                                             slowDelay: .milliseconds(300))
        )
        let client = SocketIOClient(configuration: c, logger: testLogger, onEvent: recorder.hook)
        let pending = client.send("kept", [])
        client.connect()
        try await recorder.wait("slow attempts") { e in
            e.compactMap { if case .reconnectAttempt(let n) = $0 { n } else { nil } }.contains(4)
        }
        #expect(recorder.count { if case .reconnectFailed = $0 { true } else { false } } == 1)
        #expect(recorder.count { if case .stopped = $0 { true } else { false } } == 0)
        await client.disconnect()
        await #expect(throws: SocketIOError.disconnected) { try await pending.get() }
    }

    /// The `connect` hook runs after the offline buffer went out, so an emit made from it follows
    /// the older ones.
    @Test func connectHookFollowsTheOfflineBuffer() async throws {
        let server = try await PeerServer.start()
        let box = Mutex<SocketIOClient?>(nil)
        var c = SocketIOClientConfiguration(url: server.url, transports: .polling, reconnection: fastReconnection)
        c.connectTimeout = .seconds(5)
        let hooked = Atomic<Bool>(false)
        let client = SocketIOClient(configuration: c, logger: testLogger) { event in
            if case .connect = event, let client = box.withLock({ $0 }),
                hooked.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
                _ = client.send("record", [6])
            }
        }
        box.withLock { $0 = client }
        let sends = (1...5).map { client.send("record", [.number(Double($0))]) }
        client.connect()
        for s in sends { try await s.get() }
        try await waitFor("six records") {
            try await client.emitWithAck("records", [], timeout: .seconds(10)).first?.arrayValue?.count ?? 0 >= 6
        }
        let records = try await client.emitWithAck("records", [], timeout: .seconds(10)).first?.arrayValue ?? []
        #expect(Array(records.prefix(6)) == [1, 2, 3, 4, 5, 6])
        box.withLock { $0 = nil }
        await client.disconnect()
    }

    @Test func tlsWithCustomCAAndInsecureOptOut() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sio-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cert = dir.appendingPathComponent("cert.pem").path
        let key = dir.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0)
        let server = try await PeerServer.start(tls: (cert, key))

        for mode in [TransportMode.auto, .polling] {
            let trusted = makeClient(server, transports: mode, recorder: Recorder()) { $0.tls = TLSOptions(caFile: cert) }
            trusted.connect()
            try await trusted.waitUntilConnected(timeout: .seconds(20))
            #expect(try await trusted.emitWithAck("echo", ["tls"], timeout: .seconds(10)) == ["tls"])
            await trusted.disconnect()
        }

        let insecure = makeClient(server, recorder: Recorder()) { $0.tls = TLSOptions(insecure: true) }
        insecure.connect()
        try await insecure.waitUntilConnected(timeout: .seconds(20))
        await insecure.disconnect()

        let untrusted = makeClient(server, recorder: Recorder())
        untrusted.connect()
        await #expect(throws: (any Error).self) { try await untrusted.waitUntilConnected(timeout: .seconds(10), failFast: true) }
        await untrusted.disconnect()
    }

    @Test func eventsSequenceDeliversInOrder() async throws {
        let server = try await PeerServer.start()
        var c = SocketIOClientConfiguration(url: server.url, transports: .websocket)
        c.connectTimeout = .seconds(5)
        let client = SocketIOClient(configuration: c, logger: testLogger)
        let events = client.events
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        try await client.emit("emit_count", [200])
        var ticks: [Int] = []
        for await e in events {
            if case .event(let ev) = e, ev.name == "tick", let i = ev.args.first?["i"]?.numberValue {
                ticks.append(Int(i))
                if ticks.count == 200 { break }
            }
        }
        #expect(ticks == Array(0..<200))
        await client.disconnect()
    }
}
