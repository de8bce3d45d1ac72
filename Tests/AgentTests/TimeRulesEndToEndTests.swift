import Foundation
import TestSupport
import Testing

/// Rules that watch over time, in `sioagent run` against the real python-socketio server:
/// absence (and a server restart that must not look like silence), flapping counted from real
/// disconnects, and shared state set by one event, read by another, kept across an agent restart.
@Suite(.timeLimit(.minutes(3)))
struct TimeRulesEndToEndTests {
    @Test func absenceFiresClearsAndAServerRestartDoesNotLookLikeSilence() async throws {
        var server = try await PeerServer.start()
        let port = server.port
        let fixture = try AgentFixture(label: "absence")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(
            """
            rules:
              - id: device-silent
                on: batery
                key: payload.device
                absent: 2s
                then:
                  - log: logs/absence.log
                    message: "{{ key }} silent since {{ payload.level }}%"
                on_clear:
                  - log: logs/absence.log
                    message: "{{ key }} is back"
              - id: seen
                on: batery
                then: [{emit: seen, data: "{{ payload.level }}"}]
            """)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }

        let sent = ContinuousClock.now
        server.emit("batery", [["device": "p7", "level": 40]])
        try await agent.waitFor("the silence") { fixture.fileLines("logs/absence.log").count >= 1 }
        #expect(ContinuousClock.now - sent >= .seconds(2))
        server.emit("batery", [["device": "p7", "level": 41]])
        try await agent.waitFor("the clear") { fixture.fileLines("logs/absence.log").count >= 2 }
        #expect(fixture.fileLines("logs/absence.log") == ["p7 silent since 40%", "p7 is back"])

        // A sign of life, then the server goes away for longer than the window: not silence.
        server.emit("batery", [["device": "p7", "level": 42]])
        try await server.child.waitFor("the agent to see it") { server.received("seen").map { jsonText($0) }.contains("[42]") }
        await server.stop()
        try await agent.waitFor("the disconnect") { !agent.logged("disconnected").isEmpty }
        let down = ContinuousClock.now
        // The agent keeps retrying; give the window well over its 2 s while disconnected.
        try await agent.waitFor("several reconnection attempts") { ContinuousClock.now - down > .seconds(4) }
        #expect(fixture.fileLines("logs/absence.log").count == 2, "fired while disconnected: \(fixture.fileLines("logs/absence.log"))")

        server = try await PeerServer.start(port: port)
        let restarted = server
        defer { Task { await restarted.stop() } }
        try await server.child.waitFor("the reconnect") { server.connections == 1 }
        let up = ContinuousClock.now
        // The window restarted at the reconnect: it fires 2 s after it, not at once.
        try await agent.waitFor("the silence after the reconnect") { fixture.fileLines("logs/absence.log").count >= 3 }
        #expect(ContinuousClock.now - up >= .milliseconds(1500))
        #expect(fixture.fileLines("logs/absence.log") == ["p7 silent since 40%", "p7 is back", "p7 silent since 42%"])

        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test func flappingIsCountedFromRealDisconnects() async throws {
        var server = try await PeerServer.start()
        let port = server.port
        let fixture = try AgentFixture(label: "flapping")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(
            """
            rules:
              - id: link-flapping
                on: disconnect
                when: count_over(10m) >= 3
                cooldown: 10m
                then:
                  - log: logs/flap.log
                    message: "flapping: {{ count_over(10m) }} disconnects"
            """)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        for round in 1...3 {
            await server.stop()
            try await agent.waitFor("disconnect \(round)") { agent.logged("disconnected").count >= round }
            if round < 3 { #expect(fixture.fileLines("logs/flap.log").isEmpty) }
            server = try await PeerServer.start(port: port)
            try await server.child.waitFor("reconnect \(round)") { server.connections == 1 }
        }
        try await agent.waitFor("the flapping line") { !fixture.fileLines("logs/flap.log").isEmpty }
        #expect(fixture.fileLines("logs/flap.log") == ["flapping: 3 disconnects"])
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
        await server.stop()
    }

    @Test func stateSetByOneEventIsReadByAnotherAndSurvivesARestart() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "state")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(
            """
            rules:
              - id: charger
                on: charger
                then:
                  - set: charging
                    value: "{{ payload.on }}"
              - id: battery-low-not-charging
                on: batery
                when: payload.level < 20 and not default(state.charging, false)
                then:
                  - emit: alert
                    data: "low {{ payload.level }}"
            """)
        var agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }

        server.emit("charger", [["on": true]])
        server.emit("batery", [["level": 10]])
        server.emit("charger", [["on": false]])
        server.emit("batery", [["level": 11]])
        try await server.child.waitFor("the alert") { server.received("alert").count >= 1 }
        #expect(server.received("alert").map { jsonText($0) } == [#"["low 11"]"#])

        // Charging again; the state file says so (written off the loop, batched), and a restarted agent reads it.
        server.emit("charger", [["on": true]])
        try await agent.waitFor("the state file") {
            fixture.fileLines("state.json").first?.contains(#""charging":{"value":true}"#) == true
        }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
        agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect again") { server.connections == 2 }
        server.emit("batery", [["level": 12]])
        server.emit("charger", [["on": false]])
        server.emit("batery", [["level": 13]])
        try await server.child.waitFor("the second alert") { server.received("alert").count >= 2 }
        #expect(server.received("alert").map { jsonText($0) } == [#"["low 11"]"#, #"["low 13"]"#])
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }
}
