import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the agent keeps across its own restarts, with the real binary and the real
/// python-socketio server: rule state, accepted alerts, and what the shutdown deadline saves.
@Suite(.timeLimit(.minutes(3)))
struct DurabilityEndToEndTests {
    private static let fireOnce = """
        rules:
          - id: once
            on: go
            when: not default(state.fired, false)
            then:
              - emit: fired
                data: "{{ payload }}"
              - set: fired
                value: true
          - id: seen
            on: go
            then: [{emit: seen, data: "{{ payload }}"}]
        """

    /// A rule that fires once and remembers it (`set:`) fires 1 0 0 0 over four runs: the state
    /// file lives beside the spool, which no longer takes it for a damaged spool file.
    @Test func ruleStateSurvivesFourRestarts() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "state-restarts")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(Self.fireOnce)
        var firings: [Int] = []
        for run in 1...4 {
            let agent = try fixture.startAgent()
            try await server.child.waitFor("connection \(run)") { server.connections == run }
            let before = server.received("fired").count
            server.emit("go", [run])
            try await server.child.waitFor("the event of run \(run)") { server.received("seen").count == run }
            firings.append(server.received("fired").count - before)
            agent.signal(SIGTERM)
            #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
        }
        #expect(firings == [1, 0, 0, 0])
        #expect(fixture.exists("state.json"))
        #expect(!fixture.exists("spool/state.json"))
        #expect(!fixture.exists("spool/corrupt"))
    }

    /// A `state.json` an older version left in the spool directory, or that its start moved to
    /// `spool/corrupt/`, is moved to the state file with an info line, and its values hold.
    @Test func aStateFileInTheSpoolIsMigrated() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "state-migrate")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(Self.fireOnce)
        try FileManager.default.createDirectory(atPath: fixture.path("spool/corrupt"), withIntermediateDirectories: true)
        try #"{"version":1,"state":{"fired":{"value":true}}}"#.write(
            toFile: fixture.path("spool/corrupt/state.json"), atomically: false, encoding: .utf8)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        server.emit("go", [1])
        try await server.child.waitFor("the event") { server.received("seen").count == 1 }
        #expect(server.received("fired").isEmpty)
        #expect(agent.logged("state file moved out of the spool directory").count == 1)
        #expect(fixture.exists("state.json"))
        #expect(!fixture.exists("spool/corrupt/state.json"))
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// Ten `ack:` alerts planned at once, with `spool.max_items: 2`: the two newest are kept on
    /// disk (they used to be deleted with the batch file while the log said they were kept),
    /// and a restart delivers them.
    @Test func aBurstBeyondMaxItemsKeepsTheNewestOnDisk() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "burst-max-items")
        try fixture.writeConfig(url: server.url, spool: "{dir: spool, max_items: 2}")
        let emits = (1...10).map { "      - {emit: alert, data: \"a\($0)\", ack: 5m}" }.joined(separator: "\n")
        try fixture.writeRules("rules:\n  - id: burst\n    on: go\n    then:\n" + emits + "\n")
        var agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        server.holdAcks()
        server.emit("go", [1])
        try await agent.waitFor("the drop warning") { !agent.logged("spool full; dropped the oldest alerts").isEmpty }
        // The first survivor goes out once written; the server holds its ack.
        try await server.child.waitFor("the first kept alert") { server.received("alert").count == 1 }
        #expect(server.received("alert").map { jsonText($0) } == [#"["a9"]"#])
        let spool = fixture.path("spool")
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
        // The files may still hold alerts dropped while their batch was written; the next start
        // keeps the newest max_items of them.
        #expect(alertCount(spool) >= 2)

        server.releaseAcks()
        agent = try fixture.startAgent()
        try await agent.waitFor("both kept alerts acknowledged") { agent.logged("spooled alert acknowledged").count == 2 }
        try await agent.waitFor("the spool to empty") { alertFiles(spool).isEmpty }
        let delivered = Set(server.received("alert").map { jsonText($0) })
        #expect(delivered == [#"["a9"]"#, #"["a10"]"#])
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// SIGTERM with an `ack: 5m` alert in flight to a server that holds its ack: the agent exits
    /// 0 within `shutdown.timeout` (3 s; it used to wait for the ack), the alert stays on disk, and
    /// the next start delivers it.
    @Test func shutdownEndsAtItsDeadlineAndKeepsTheAlertInFlight() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "shutdown-deadline")
        try fixture.writeConfig(url: server.url, shutdownTimeout: "3s")
        try fixture.writeRules(
            """
            rules:
              - id: relay
                on: go
                then: [{emit: alert, data: "{{ payload }}", ack: 5m}]
            """)
        var agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        server.holdAcks()
        server.emit("go", ["kept"])
        try await server.child.waitFor("the alert, its ack held") {
            server.child.jsonLines.contains { $0["type"] as? String == "ack_held" }
        }
        let asked = ContinuousClock.now
        agent.signal(SIGTERM)
        let status = await agent.waitForExit(timeout: .seconds(15))
        let took = ContinuousClock.now - asked
        #expect(status == 0)
        #expect(took < .milliseconds(3500), "shutdown took \(took)")
        #expect(!agent.logged("stopped").isEmpty)
        #expect(alertCount(fixture.path("spool")) == 1)

        server.releaseAcks()
        agent = try fixture.startAgent()
        try await agent.waitFor("the alert acknowledged after the restart") { !agent.logged("spooled alert acknowledged").isEmpty }
        #expect(server.received("alert").count == 2)
        #expect(server.received("alert").allSatisfy { jsonText($0) == #"["kept"]"# })
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }
}
