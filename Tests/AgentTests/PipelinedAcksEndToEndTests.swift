import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `spool.in_flight` with the real binary and a real python-socketio 5 server: `ack:` alerts go
/// out several at a time, the server acknowledges them out of order, and it restarts mid-burst.
@Suite(.timeLimit(.minutes(3)))
struct PipelinedAcksEndToEndTests {
    /// The ids of `alert` events as the servers received them, in order (first server first).
    private func ids(_ servers: [PeerServer]) -> [Int] {
        servers.flatMap { $0.received("alert") }.compactMap { args -> Int? in
            let n = (args.first as? [String: Any])?["n"]
            return n as? Int ?? (n as? String).flatMap { Int($0) }
        }
    }

    @Test func aBurstOfAckAlertsThroughAServerRestartArrivesWholeFirstArrivalsInFireOrder() async throws {
        let count = 400
        // Acks after 0–200 ms each: with 16 in flight the burst takes about 2.5 s to deliver.
        let firstServer = try await PeerServer.start(ackDelay: 0.2)
        defer { Task { await firstServer.stop() } }
        let fixture = try AgentFixture(label: "pipelined-acks")
        try fixture.writeConfig(url: firstServer.url, spool: "{dir: spool, in_flight: 16}")
        try fixture.writeRules(
            """
            rules:
              - id: forward
                on: go
                then:
                  - emit: alert
                    data: {n: "{{ payload }}"}
                    ack: 5s
            """)
        let agent = try fixture.startAgent()
        try await firstServer.child.waitFor("the agent to connect") { firstServer.connections == 1 }
        for n in 1...count { firstServer.emit("go", [n]) }
        try await agent.waitFor("every alert to fire") { agent.logged("emit").count == count }
        try await firstServer.child.waitFor("part of the burst") { firstServer.received("alert").count >= count / 4 }
        // The server dies with acks outstanding and comes back on the same port.
        await firstServer.stop()
        let cut = firstServer.received("alert").count
        let server = try await PeerServer.start(port: firstServer.port, ackDelay: 0.2)
        defer { Task { await server.stop() } }
        try await server.child.waitFor("every alert", timeout: .seconds(60)) { Set(ids([firstServer, server])).count == count }
        // Every acknowledged alert leaves the spool: once the last is, no spool file is left.
        try await agent.waitFor("the spool to empty") {
            ((try? FileManager.default.contentsOfDirectory(atPath: fixture.path("spool"))) ?? []).allSatisfy { !$0.hasSuffix(".alert") }
        }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(15)) == 0)

        var seen = Set<Int>()
        let firstArrivals = ids([firstServer, server]).filter { seen.insert($0).inserted }
        #expect(firstArrivals == Array(1...count))
        #expect(cut < count)
        // Several acks were outstanding at once, and the second server got repeats only of what
        // was in flight when the first one died.
        #expect(firstServer.mostPending > 1)
        let repeats = ids([firstServer, server]).count - count
        #expect(repeats <= 16)
    }
}
