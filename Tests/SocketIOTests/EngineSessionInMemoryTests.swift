import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import SocketIO

/// `EngineSession` driven through an `InMemoryTransport` pair on an `EmbeddedEventLoop`: no
/// sockets, and time moves only when the test advances the loop's clock.
struct EngineSessionInMemoryTests {
    /// The session, the server end, and what each side saw.
    final class Rig {
        let loop = EmbeddedEventLoop()
        let server: InMemoryTransport
        let session: EngineSession
        var events: [String] = []
        var received: [String] = []
        var opens: [String] = []

        /// Probe pairs the session made for an upgrade (server ends), in order.
        var probes: [InMemoryTransport] = []
        var probeReceived: [String] = []
        let client: InMemoryTransport

        /// `mode` `.websocket`: the pair is the WebSocket; otherwise it is polling, and each
        /// upgrade probe gets a pair of its own (`probes`).
        init(revision: EngineIORevision = .eio4, mode: TransportMode = .websocket) throws {
            let (client, server) = InMemoryTransport.pair(on: loop, kind: mode == .websocket ? .websocket : .polling, revision: revision)
            self.server = server
            self.client = client
            let settings = EngineSettings(
                target: ConnectionTarget(url: try ServerURL("ws://example.invalid:1"), sslContext: nil, connectTimeout: .seconds(1)),
                path: "/socket.io/", mode: mode, baseQuery: "", headers: [], upgradeTimeout: .seconds(10),
                revision: revision)
            var probe: ((EngineIORevision) -> InMemoryTransport)!
            session = EngineSession(loop: loop, settings: settings, cookies: CookieStore(),
                                    logger: Logger(label: "test"), transports: { kind, _ in
                                        kind == client.kind ? client : probe(revision)
                                    })
            probe = { [unowned self] revision in
                let (probeClient, probeServer) = InMemoryTransport.pair(on: loop, kind: .websocket, revision: revision)
                probeServer.onOpen = { [unowned self] uri, _ in opens.append(uri) }
                probeServer.onFrame = { [unowned self] message in
                    if case .text(let b) = message { probeReceived.append(String(buffer: b)) }
                }
                probes.append(probeServer)
                return probeClient
            }
            server.onOpen = { [unowned self] uri, _ in opens.append(uri) }
            server.onFrame = { [unowned self] message in
                switch message {
                case .text(let b), .payload(let b): received.append(String(buffer: b))
                case .binary(let b): received.append("binary \(b.readableBytes)")
                }
            }
            session.onEvent = { [unowned self] event in
                switch event {
                case .open(let h): events.append("open \(h.sid)")
                case .packet(let p): events.append("packet \(p.type) \(String(decoding: p.payload, as: UTF8.self))")
                case .closed(let reason, _, let gone): events.append("closed \(reason)\(gone ? " gone" : "")")
                case .drained: events.append("drained")
                case .refused(let r): events.append("refused \(r.status)")
                }
            }
        }

        /// Opens the session and answers the handshake (ping every second, 0.5 s to answer).
        func handshake() {
            session.open()
            loop.run()
            server.sendText(#"0{"sid":"s1","upgrades":[],"pingInterval":1000,"pingTimeout":500,"maxPayload":100000}"#)
            loop.run()
        }

        func send(_ text: String) {
            session.send([OutgoingFrame(bytes: Array(text.utf8), isBinary: false)], promise: nil)
            loop.run()
        }
    }

    @Test func handshakeOpensTheSession() throws {
        let rig = try Rig()
        rig.session.open()
        rig.loop.run()
        #expect(rig.opens.count == 1)
        #expect(rig.opens.first?.hasPrefix("/socket.io/?EIO=4&transport=websocket&t=") == true)
        #expect(rig.events.isEmpty && !rig.session.isOpen)
        rig.server.sendText(#"0{"sid":"s1","upgrades":[],"pingInterval":1000,"pingTimeout":500,"maxPayload":100000}"#)
        rig.loop.run()
        #expect(rig.events == ["open s1"])
        #expect(rig.session.isOpen && rig.session.transportName == "websocket")
    }

    @Test func aFirstPacketOtherThanOpenEndsTheSession() throws {
        let rig = try Rig()
        rig.session.open()
        rig.loop.run()
        rig.server.sendText("4hello")
        rig.loop.run()
        #expect(rig.events == ["closed parse error"])
        #expect(rig.server.isClosed)
    }

    @Test func aRefusedUpgradeIsReportedAsRefused() throws {
        let rig = try Rig()
        rig.server.refusal = HandshakeRefusal(status: 401, body: "no")
        rig.session.open()
        rig.loop.run()
        #expect(rig.events == ["refused 401"])
        #expect(rig.opens.isEmpty)
    }

    @Test func aMessageGoesEachWay() throws {
        let rig = try Rig()
        rig.handshake()
        rig.server.sendText(#"42["hello",1]"#)
        rig.loop.run()
        #expect(rig.events == ["open s1", #"packet message 2["hello",1]"#])
        rig.send(#"42["back"]"#)
        #expect(rig.received == [#"42["back"]"#])
        // A binary frame arrives as one binary message, as written.
        rig.session.send([OutgoingFrame(bytes: [1, 2, 3], isBinary: true)], promise: nil)
        rig.loop.run()
        #expect(rig.received.last == "binary 3")
    }

    @Test func writesWaitWhileTheTransportIsNotWritable() throws {
        let rig = try Rig()
        rig.handshake()
        // The session's end reports backpressure: the frame stays queued in the session.
        let client = try #require(rig.clientEnd)
        client.isWritable = false
        rig.send("4queued")
        #expect(rig.received.isEmpty)
        #expect(rig.session.machine.backlog.count == 1)
        client.isWritable = true
        rig.loop.run()
        #expect(rig.received == ["4queued"])
        #expect(rig.session.machine.backlog.isEmpty)
    }

    @Test func theServersPingIsAnsweredWithItsPayload() throws {
        let rig = try Rig()
        rig.handshake()
        rig.server.sendText("2abc")
        rig.loop.run()
        #expect(rig.received == ["3abc"])
        #expect(rig.events == ["open s1"])
    }

    @Test func theServerClosingTheSessionOrTheConnectionIsReported() throws {
        let packet = try Rig()
        packet.handshake()
        packet.server.sendText("1")
        packet.loop.run()
        #expect(packet.events == ["open s1", "closed transport close"])
        #expect(packet.server.isClosed)

        let connection = try Rig()
        connection.handshake()
        connection.server.close()
        connection.loop.run()
        #expect(connection.events == ["open s1", "closed transport close"])
        #expect(!connection.session.isOpen)
    }

    @Test func noPingWithinIntervalPlusTimeoutIsAPingTimeout() throws {
        let rig = try Rig()
        rig.handshake()
        // A ping resets the deadline to pingInterval + pingTimeout (1.5 s) after it.
        rig.loop.advanceTime(by: .milliseconds(1400))
        rig.server.sendText("2")
        rig.loop.run()
        #expect(rig.received == ["3"])
        rig.loop.advanceTime(by: .milliseconds(1499))
        #expect(rig.events == ["open s1"])
        rig.loop.advanceTime(by: .milliseconds(1))
        #expect(rig.events == ["open s1", "closed ping timeout"])
        rig.loop.run()
        #expect(rig.server.isClosed)
    }

    @Test func engineIO3PingsOnItsOwnAndTimesOutWithoutAPong() throws {
        let rig = try Rig(revision: .eio3)
        rig.handshake()
        #expect(rig.opens.first?.contains("EIO=3") == true)
        // Engine.IO 3: the client pings every pingInterval after the last pong.
        rig.loop.advanceTime(by: .milliseconds(1000))
        #expect(rig.received == ["2"])
        rig.server.sendText("3")
        rig.loop.advanceTime(by: .milliseconds(1000))
        #expect(rig.received == ["2", "2"])
        // No pong: the wait is pingTimeout, at least 1 s.
        rig.loop.advanceTime(by: .milliseconds(999))
        #expect(rig.events == ["open s1"])
        rig.loop.advanceTime(by: .milliseconds(1))
        #expect(rig.events == ["open s1", "closed ping timeout"])
    }

    @Test func closingSendsTheClosePacketThenClosesTheConnection() throws {
        let rig = try Rig()
        rig.handshake()
        var finished = false
        rig.session.close().assumeIsolated().whenSuccess { finished = true }
        rig.loop.run()
        #expect(rig.received == ["1"])
        #expect(finished)
        #expect(rig.server.isClosed)
        // The client closed: nothing is reported.
        #expect(rig.events == ["open s1"])
    }
}

extension EngineSessionInMemoryTests.Rig {
    /// The session's end of the pair, once the session made it.
    var clientEnd: InMemoryTransport? { session.transport as? InMemoryTransport }
}
