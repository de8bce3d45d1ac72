import NIOCore
import Testing

@testable import SIOCore
@testable import SocketIO

/// `EmitDelivery.direct`: the caller owns delivery, so the client neither buffers nor resends.
@Suite(.timeLimit(.minutes(2)))
struct DirectDeliveryTests {
    @Test func aDirectEmitFailsAtOnceWhileNotConnected() async throws {
        // Nothing listens on port 9 of localhost: the client keeps trying to connect.
        var c = SocketIOClientConfiguration(url: "http://127.0.0.1:9", transports: .websocket, reconnection: fastReconnection)
        c.connectTimeout = .seconds(1)
        let client = SocketIOClient(configuration: c, logger: testLogger)
        client.connect()
        await #expect(throws: SocketIOError.notConnected(namespace: "/")) {
            try await client.emit("alert", ["x"], delivery: .direct)
        }
        await #expect(throws: SocketIOError.notConnected(namespace: "/")) {
            try await client.emitWithAck("alert", ["x"], timeout: .seconds(30), delivery: .direct)
        }
        // A buffered emit waits instead, until the client is closed.
        let buffered = client.send("alert", ["y"])
        await client.disconnect()
        await #expect(throws: SocketIOError.disconnected) { try await buffered.get() }
    }

    /// `sendDirect` (the outbox's way): the outcome comes back through the callback, once.
    @Test func sendDirectCallsBackWithItsOutcome() async throws {
        var c = SocketIOClientConfiguration(url: "http://127.0.0.1:9", transports: .websocket, reconnection: fastReconnection)
        c.connectTimeout = .seconds(1)
        let offline = SocketIOClient(configuration: c, logger: testLogger)
        offline.connect()
        #expect(await outcome(offline, "alert") == "failed: \(SocketIOError.notConnected(namespace: "/"))")
        #expect(await outcome(offline, "connect") == "failed: \(SocketIOError.reservedEventName("connect"))")
        await offline.disconnect()

        let server = try await PeerServer.start()
        let client = makeClient(server, transports: .websocket, recorder: Recorder())
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        #expect(await outcome(client, "record", ["direct"]) == "written")
        #expect(await outcome(client, "record", [["n": 2]]) == "written")
        #expect(try await client.emitWithAck("records", [], timeout: .seconds(10)) == [["direct", ["n": 2]]])
        await client.disconnect()
    }

    private func outcome(_ client: SocketIOClient, _ event: String, _ args: [JSONValue] = []) async -> String {
        await withCheckedContinuation { continuation in
            client.sendDirect(event, args) { result in
                switch result {
                case .success: continuation.resume(returning: "written")
                case .failure(let error): continuation.resume(returning: "failed: \(error)")
                }
            }
        }
    }

    @Test(arguments: [TransportMode.websocket, .polling])
    func aDirectEmitAwaitingItsAckFailsWithTheConnectionAndIsNotSentAgain(mode: TransportMode) async throws {
        let server = try await PeerServer.start()
        let recorder = Recorder()
        let client = makeClient(server, transports: mode, recorder: recorder)
        client.connect()
        try await client.waitUntilConnected(timeout: .seconds(20))
        // The server records it and never answers.
        let direct = client.sendWithAck("record_stall", ["direct"], timeout: .seconds(60), delivery: .direct)
        try await waitFor("the server recorded it") {
            try await client.emitWithAck("records", [], timeout: .seconds(10)) == [["direct"]]
        }
        try await client.emit("close_engine", [])
        await #expect(throws: SocketIOError.disconnected) { _ = try await direct.get() }
        try await recorder.wait("reconnected") { e in e.filter(isConnect("/")).count == 2 }
        // A buffered emit would have been sent again on the new connection; this one was not.
        #expect(try await client.emitWithAck("records", [], timeout: .seconds(10)) == [["direct"]])
        await client.disconnect()
    }
}
