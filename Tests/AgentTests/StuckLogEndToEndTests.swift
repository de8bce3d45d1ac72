import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A `log` target that blocks (a FIFO nobody reads), with the real binary and the real
/// python-socketio server: the spool has its own writer thread, so `ack:` alerts are still
/// written and delivered; SIGTERM keeps every accepted alert on disk, ends within
/// `shutdown.timeout`, and says how many log lines it could not write.
@Suite(.timeLimit(.minutes(3)))
struct StuckLogEndToEndTests {
    private static let rules = """
        rules:
          - id: relay
            on: go
            then:
              - log: stuck.log
                message: "{{ payload.n }} {{ payload.pad }}"
              - emit: alert
                data: {n: "{{ payload.n }}", pad: "{{ payload.pad }}"}
                ack: 5m
        """

    private func numbers(_ server: PeerServer) -> [Int] {
        server.received("alert").compactMap { args in
            let n = (args.first as? [String: Any])?["n"]
            return (n as? Int) ?? (n as? String).flatMap { Int($0) }
        }
    }

    @Test func aStuckLogTargetNeverHoldsTheSpool() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "stuck-log")
        try fixture.writeConfig(url: server.url, shutdownTimeout: "3s")
        try fixture.writeRules(Self.rules)
        #expect(mkfifo(fixture.path("stuck.log"), 0o600) == 0)
        let pad = String(repeating: "p", count: 1_000)
        var agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }

        // The log target never takes a line; the alerts are written and delivered all the same.
        for n in 1...200 { server.emit("go", [["n": n, "pad": pad]]) }
        try await agent.waitFor("200 alerts acknowledged") { agent.logged("spooled alert acknowledged").count == 200 }
        #expect(Set(numbers(server)) == Set(1...200))
        let spool = fixture.path("spool")
        try await agent.waitFor("the spool to empty") { alertFiles(spool).isEmpty }

        // The server holds its acks: 200 more wait on disk. SIGTERM then keeps them all there,
        // ends within shutdown.timeout, and reports the 400 lines it could not write.
        server.holdAcks()
        for n in 201...400 { server.emit("go", [["n": n, "pad": pad]]) }
        try await agent.waitFor("every event handled") { agent.logged("emit").count == 400 }
        try await agent.waitFor("200 alerts on disk") { alertCount(spool) == 200 }
        let asked = ContinuousClock.now
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(15)) == 0)
        let took = ContinuousClock.now - asked
        #expect(took < .milliseconds(4000), "shutdown took \(took)")
        let report = agent.logged("shutdown: not everything reached the disk by the deadline; the rest is lost with the process")
        #expect(report.count == 1)
        #expect(report.first?["shutdown.alerts_unwritten"] as? String == "0")
        #expect(report.first?["shutdown.lines_unwritten"] as? String == "400")
        #expect(report.first?["level"] as? String == "warning")
        #expect(alertCount(spool) == 200)

        // The next start delivers them, the log target still stuck.
        server.releaseAcks()
        agent = try fixture.startAgent()
        try await agent.waitFor("the 200 acknowledged after the restart") { agent.logged("spooled alert acknowledged").count == 200 }
        #expect(Set(numbers(server)).isSuperset(of: Set(201...400)))
        try await agent.waitFor("the spool to empty") { alertFiles(spool).isEmpty }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(15)) == 0)
    }
}
