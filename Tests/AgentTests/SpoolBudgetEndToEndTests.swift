import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The spool's byte budgets with the real binary and the real python-socketio server:
/// `spool.max_memory` (payloads left on disk are read back when their turn comes, at start too)
/// and `spool.max_bytes` (the oldest go).
@Suite(.timeLimit(.minutes(3)))
struct SpoolBudgetEndToEndTests {
    private static let relay = """
        rules:
          - id: relay
            on: big
            then: [{emit: alert, data: "{{ payload }}", ack: 5m}]
        """

    /// The payload that makes alert `n` about `size` bytes, and tells which one it is.
    private func payload(_ n: Int, size: Int) -> String { "\(n)-" + String(repeating: "p", count: size) }

    private func order(_ server: PeerServer) -> [Int] {
        server.received("alert").compactMap { args in (args.first as? String).flatMap { Int($0.prefix { $0 != "-" }) } }
    }

    @Test func payloadsBeyondMaxMemoryWaitOnDiskAndGoOutInOrder() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "spool-max-memory")
        try fixture.writeConfig(url: server.url, spool: "{dir: spool, max_memory: 64KiB}", shutdownTimeout: "3s")
        try fixture.writeRules(Self.relay)
        var agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        // 40 alerts of 8 kB: 320 kB waiting behind a held ack, 64 KiB of them in memory.
        server.holdAcks()
        for n in 1...40 { server.emit("big", [payload(n, size: 8_000)]) }
        // The first few go out at once (`spool.in_flight`, within half of spool.max_memory).
        try await server.child.waitFor("the first alert") { server.received("alert").count >= 1 }
        try await agent.waitFor("every alert on disk") { alertFiles(fixture.path("spool")).count >= 1 && alertCount(fixture.path("spool")) == 40 }
        server.releaseAcks()
        try await agent.waitFor("all 40 acknowledged") { agent.logged("spooled alert acknowledged").count == 40 }
        #expect(order(server) == Array(1...40))

        // Again, across a restart: the start reads the index, and payloads within the budget.
        server.holdAcks()
        for n in 41...80 { server.emit("big", [payload(n, size: 8_000)]) }
        try await server.child.waitFor("alert 41") { server.received("alert").count >= 41 }
        try await agent.waitFor("every alert on disk") { alertCount(fixture.path("spool")) == 40 }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
        // 41 and the few sent with it, their acks held.
        let beforeRestart = order(server)
        #expect(beforeRestart == Array(1...beforeRestart.count))
        #expect(beforeRestart.count >= 41 && beforeRestart.count <= 44)  // half of 64 KiB: 4 of 8 kB
        server.releaseAcks()
        agent = try fixture.startAgent()
        try await agent.waitFor("all 40 acknowledged after the restart") { agent.logged("spooled alert acknowledged").count == 40 }
        let waiting = try #require(agent.logged("alerts waiting in the spool").first)
        #expect(waiting["spool.count"] as? String == "40")
        #expect(Int(waiting["spool.payload_bytes"] as? String ?? "") ?? .max <= 64 << 10)
        // Those in flight before the restart (acks held) go again after it, in order.
        #expect(order(server) == beforeRestart + Array(41...80))
        try await agent.waitFor("the spool to empty") { alertFiles(fixture.path("spool")).isEmpty }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test func maxBytesDropsTheOldestWithAWarning() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "spool-max-bytes")
        try fixture.writeConfig(url: server.url, spool: "{dir: spool, max_bytes: 1MiB}", shutdownTimeout: "3s")
        try fixture.writeRules(Self.relay)
        var agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        server.holdAcks()
        // 30 alerts of 100 kB: 3 MB for a 1 MiB spool.
        for n in 1...30 { server.emit("big", [payload(n, size: 100_000)]) }
        try await agent.waitFor("the drop warning") {
            agent.logged("spool full; dropped the oldest alerts").reduce(0) { $0 + (Int($1["spool.dropped"] as? String ?? "") ?? 0) } >= 20
        }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
        server.releaseAcks()
        agent = try fixture.startAgent()
        try await agent.waitFor("the spool read") { !agent.logged("alerts waiting in the spool").isEmpty }
        let waiting = agent.logged("alerts waiting in the spool")[0]
        #expect(Int(waiting["spool.bytes"] as? String ?? "") ?? .max <= 1 << 20)
        let kept = Int(waiting["spool.count"] as? String ?? "") ?? 0
        #expect(kept >= 5 && kept <= 10)
        try await agent.waitFor("the kept alerts acknowledged") { agent.logged("spooled alert acknowledged").count == kept }
        // The agent logs an ack before the test may have read the server's record of that alert.
        try await agent.waitFor("the newest alert recorded by the server") { order(server).last == 30 }
        // The newest are the ones kept, in order, after those in flight at the shutdown (never
        // dropped; at most half of spool.max_bytes) that still fit at the start.
        let after = Array(order(server).suffix(kept))
        var newest = 0
        while newest < after.count, after[after.count - 1 - newest] == 30 - newest { newest += 1 }
        #expect(after == after.sorted() && Set(after).count == after.count && newest >= 5, "\(after)")
        #expect(after.count - newest <= 5, "\(after)")
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }
}
