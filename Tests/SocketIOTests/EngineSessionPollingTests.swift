import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import SocketIO

/// `EngineSession` on long-polling, driven through a polling `InMemoryTransport` pair (and a
/// WebSocket pair per upgrade probe) on an `EmbeddedEventLoop`: the same session code as on a
/// real server, without sockets; time moves only when the test advances the loop's clock.
struct EngineSessionPollingTests {
    typealias Rig = EngineSessionInMemoryTests.Rig

    static func handshake(sid: String = "s1", upgrades: [String] = [], pingInterval: Int = 1000, pingTimeout: Int = 500) -> String {
        let list = upgrades.map { "\"\($0)\"" }.joined(separator: ",")
        return #"0{"sid":"\#(sid)","upgrades":[\#(list)],"pingInterval":\#(pingInterval),"pingTimeout":\#(pingTimeout),"maxPayload":100000}"#
    }

    /// Opens a polling session; the handshake body carries `extra` after the open packet.
    static func openPolling(_ rig: Rig, upgrades: [String] = [], pingInterval: Int = 1000, pingTimeout: Int = 500, extra: String = "") {
        rig.session.open()
        rig.loop.run()
        rig.server.sendPayload(handshake(upgrades: upgrades, pingInterval: pingInterval, pingTimeout: pingTimeout) + extra)
        rig.loop.run()
    }

    @Test func theHandshakeBodyOpensTheSessionAndItsOtherPacketsFollow() throws {
        let rig = try Rig(mode: .polling)
        rig.session.open()
        rig.loop.run()
        #expect(rig.opens.count == 1)
        #expect(rig.opens.first?.hasPrefix("/socket.io/?EIO=4&transport=polling&t=") == true)
        #expect(!rig.session.isOpen)
        rig.server.sendPayload(Self.handshake() + "\u{1e}40\u{1e}42[\"hi\"]")
        rig.loop.run()
        #expect(rig.events == ["open s1", "packet message 0", #"packet message 2["hi"]"#])
        #expect(rig.session.isOpen && rig.session.transportName == "polling")
        #expect(rig.client.sessionPaused == false)
    }

    @Test func aHandshakeBodyThatDoesNotStartWithOpenEndsTheSession() throws {
        let rig = try Rig(mode: .polling)
        rig.session.open()
        rig.loop.run()
        rig.server.sendPayload("40\u{1e}" + Self.handshake())
        rig.loop.run()
        #expect(rig.events == ["closed parse error"])
        #expect(rig.server.isClosed)
    }

    @Test func aRefusedHandshakeIsReportedAsRefused() throws {
        let rig = try Rig(mode: .polling)
        rig.server.refusal = HandshakeRefusal(status: 403, body: "no")
        rig.session.open()
        rig.loop.run()
        #expect(rig.events == ["refused 403"])
    }

    @Test func severalPacketsInOnePollAreDeliveredInOrderAndPingsAnswered() throws {
        let rig = try Rig(mode: .polling)
        Self.openPolling(rig)
        rig.server.sendPayload("42[\"a\"]\u{1e}2\u{1e}42[\"b\"]")
        rig.loop.run()
        #expect(rig.events == ["open s1", #"packet message 2["a"]"#, #"packet message 2["b"]"#])
        #expect(rig.received == ["3"])
    }

    @Test func writesMadeWhileAPostIsInFlightGoTogetherInTheNextPost() throws {
        let rig = try Rig(mode: .polling)
        Self.openPolling(rig)
        // The first packet goes at once; the next ones wait (in the machine's backlog) for that
        // POST, then share one body; a body carries at most 16 packets.
        for i in 0..<21 {
            rig.session.send([OutgoingFrame(bytes: Array("4m\(i)".utf8), isBinary: false)], promise: nil)
        }
        #expect(rig.session.machine.backlog.count == 20)
        rig.loop.run()
        #expect(rig.received.count == 3)
        #expect(rig.received.first == "4m0")
        #expect(rig.received.dropFirst().map { $0.split(separator: "\u{1e}").count } == [16, 4])
        #expect(rig.received.joined(separator: "\u{1e}") == (0..<21).map { "4m\($0)" }.joined(separator: "\u{1e}"))
        #expect(rig.session.machine.backlog.isEmpty)
    }

    @Test func aWritePromiseCompletesWhenItsPostIsAccepted() throws {
        let rig = try Rig(mode: .polling)
        Self.openPolling(rig)
        var done: [Int] = []
        for i in 0..<3 {
            let promise = rig.loop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenSuccess { done.append(i) }
            rig.session.send([OutgoingFrame(bytes: Array("4m\(i)".utf8), isBinary: false)], promise: promise)
        }
        #expect(done.isEmpty)
        rig.loop.run()
        #expect(done == [0, 1, 2])
    }

    @Test func theUpgradeProbeReplacesPollingAndWhatWaitedGoesOnTheWebSocket() throws {
        let rig = try Rig(mode: .auto)
        Self.openPolling(rig, upgrades: ["websocket"], pingInterval: 25_000, pingTimeout: 20_000)
        #expect(rig.events == ["open s1"])
        // Polling is paused while the probe runs: nothing is written, nothing polled.
        #expect(rig.client.sessionPaused == true)
        #expect(rig.probes.count == 1)
        #expect(rig.opens.count == 2)
        #expect(rig.opens.last?.contains("transport=websocket") == true && rig.opens.last?.hasSuffix("&sid=s1") == true)
        #expect(rig.probeReceived == ["2probe"])
        rig.send("40")
        #expect(rig.received.isEmpty && rig.probeReceived == ["2probe"])
        #expect(rig.session.machine.backlog.count == 1)
        rig.probes[0].sendText("3probe")
        rig.loop.run()
        #expect(rig.probeReceived == ["2probe", "5", "40"])
        #expect(rig.received.isEmpty)
        #expect(rig.session.transportName == "websocket")
        #expect(rig.client.isClosed)
        // The WebSocket is the session's transport now.
        rig.probes[0].sendText("42[\"x\"]")
        rig.loop.run()
        #expect(rig.events == ["open s1", #"packet message 2["x"]"#])
    }

    @Test func aProbeThatDoesNotAnswerInTimeLeavesTheSessionOnPolling() throws {
        let rig = try Rig(mode: .auto)
        Self.openPolling(rig, upgrades: ["websocket"], pingInterval: 25_000, pingTimeout: 20_000)
        rig.send("40")
        #expect(rig.received.isEmpty)
        rig.loop.advanceTime(by: .milliseconds(9_999))
        #expect(rig.session.machine.phase != .polling)
        rig.loop.advanceTime(by: .milliseconds(1))
        rig.loop.run()
        #expect(rig.session.machine.phase == .polling)
        #expect(rig.probes[0].isClosed)
        #expect(rig.received == ["40"])
        #expect(rig.session.transportName == "polling" && rig.session.isOpen)
    }

    @Test func aProbeAnsweringSomethingElseIsAbandoned() throws {
        let rig = try Rig(mode: .auto)
        Self.openPolling(rig, upgrades: ["websocket"], pingInterval: 25_000, pingTimeout: 20_000)
        rig.probes[0].sendText("3nope")
        rig.loop.run()
        #expect(rig.session.machine.phase == .polling)
        #expect(rig.probes[0].isClosed && !rig.client.isClosed)
        rig.send("40")
        #expect(rig.received == ["40"])
        #expect(rig.events == ["open s1"])
    }

    @Test func noPingOnPollingWithinIntervalPlusTimeoutIsAPingTimeout() throws {
        let rig = try Rig(mode: .polling)
        Self.openPolling(rig)
        rig.loop.advanceTime(by: .milliseconds(1400))
        rig.server.sendPayload("2")
        rig.loop.run()
        #expect(rig.received == ["3"])
        rig.loop.advanceTime(by: .milliseconds(1499))
        #expect(rig.events == ["open s1"])
        rig.loop.advanceTime(by: .milliseconds(1))
        #expect(rig.events == ["open s1", "closed ping timeout"])
        rig.loop.run()
        #expect(rig.server.isClosed)
    }

    @Test func engineIO3PollingUsesLengthPrefixedRecords() throws {
        let rig = try Rig(revision: .eio3, mode: .polling)
        rig.session.open()
        rig.loop.run()
        #expect(rig.opens.first?.contains("EIO=3&b64=1&transport=polling") == true)
        let open = Self.handshake()
        rig.server.sendPayload("\(open.utf16.count):\(open)2:40")
        rig.loop.run()
        #expect(rig.events == ["open s1", "packet message 0"])
        rig.session.send([OutgoingFrame(bytes: Array("42[\"é\"]".utf8), isBinary: false)], promise: nil)
        rig.session.send([OutgoingFrame(bytes: Array("41".utf8), isBinary: false)], promise: nil)
        rig.session.send([OutgoingFrame(bytes: Array("42".utf8), isBinary: false)], promise: nil)
        rig.loop.run()
        // Non-ASCII in the JSON goes as \u escapes, so every record is ASCII.
        #expect(rig.received == [#"12:42["\u00e9"]"#, "2:412:42"])
        // Engine.IO 3: the client pings, and no pong within pingTimeout (at least 1 s) ends it.
        rig.loop.advanceTime(by: .milliseconds(1000))
        #expect(rig.received.last == "1:2")
        rig.loop.advanceTime(by: .milliseconds(1000))
        #expect(rig.events == ["open s1", "packet message 0", "closed ping timeout"])
    }

    @Test func theClientsCloseGoesInAPostThenTheTransportCloses() throws {
        let rig = try Rig(mode: .polling)
        Self.openPolling(rig)
        var finished = false
        rig.session.close().assumeIsolated().whenSuccess { finished = true }
        rig.loop.run()
        #expect(rig.received == ["1"])
        #expect(finished && rig.server.isClosed)
        #expect(rig.events == ["open s1"])
    }
}
