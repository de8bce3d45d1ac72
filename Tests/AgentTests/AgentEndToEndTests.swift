import Foundation
import TestSupport
import Testing

/// `sioagent run` against a real python-socketio server: the rules fire, actions run, alerts
/// survive outages. Each test has its own server (on a free port) and its own directory.
@Suite(.timeLimit(.minutes(3)))
struct AgentEndToEndTests {
    static let batteryRules = """
        vars:
          low: 20
        rules:
          - id: battery-low
            on: batery
            when: payload < vars.low
            clear_when: payload >= 25
            then:
              - emit: alert
                args: ["battery low: {{ payload }}%"]
              - log: logs/battery.log
                message: "battery low: {{ payload }}%"
            on_clear:
              - log: logs/battery.log
                message: "battery back to {{ payload }}%"
        """

    @Test func batteryRuleFiresOncePerCrossingAndTheServerReceivesTheAlert() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "battery")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(Self.batteryRules)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }

        for level in [30, 15, 10, 26, 12, 11] {
            server.emit("batery", [level])
        }
        try await server.child.waitFor("two alerts") { server.received("alert").count >= 2 }
        // Everything after the last crossing has been evaluated once the log has its lines.
        try await agent.waitFor("the log lines") { fixture.fileLines("logs/battery.log").count >= 3 }
        #expect(server.received("alert").map { jsonText($0) } == [#"["battery low: 15%"]"#, #"["battery low: 12%"]"#])
        #expect(fixture.fileLines("logs/battery.log") == ["battery low: 15%", "battery back to 26%", "battery low: 12%"])

        // Every log line about a firing names the rule and the event.
        let emits = agent.logged("emit")
        #expect(emits.count == 2)
        #expect(emits.allSatisfy { $0["rule.id"] as? String == "battery-low" && $0["event.name"] as? String == "batery" })

        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test func lifecycleEventsRepliesAndRecordingWorkOverPollingWithUpgrade() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "lifecycle")
        try fixture.writeConfig(url: server.url, transports: "[polling, websocket]")
        try fixture.writeRules(
            """
            rules:
              - id: hello
                on: connect
                then:
                  - emit: hello
                    args: ["{{ namespace }}"]
              - id: answer
                on: ask
                when: payload.question == "level?"
                then:
                  - reply: [42, "{{ payload.question }}"]
            """)
        let agent = try fixture.startAgent(["--record", fixture.path("events.jsonl")])
        try await server.child.waitFor("the connect rule's hello") { server.received("hello").count == 1 }
        #expect(jsonText(server.received("hello")[0]) == #"["/"]"#)

        server.emitWithAck("ask", ["question": "level?"], id: "q1")
        try await server.child.waitFor("the reply") { server.child.jsonLines.contains { $0["type"] as? String == "ack" } }
        let ack = server.child.jsonLines.first { $0["type"] as? String == "ack" }!
        #expect(jsonText(ack["args"] ?? []) == #"[42,"level?"]"#)

        server.emit("batery", [17])
        try await agent.waitFor("the recording") { fixture.fileLines("events.jsonl").count >= 2 }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)

        // The recording is replay's input: the battery rules replayed over it fire once.
        let recorded = fixture.fileLines("events.jsonl")
        #expect(recorded.count == 2)
        #expect(recorded[1].contains(#""namespace":"/","event":"batery","args":[17]"#))
        try fixture.writeRules(Self.batteryRules, name: "battery.yaml")
        try FileManager.default.removeItem(atPath: fixture.path("rules/main.yaml"))
        let replay = try ChildProcess(
            try TestPaths.sioagent, ["replay", "--rules", fixture.path("rules"), fixture.path("events.jsonl")], name: "replay")
        #expect(await replay.waitForExit(timeout: .seconds(10)) == 0)
        try await replay.waitFor("the replayed actions") { replay.jsonLines.count == 2 }
        #expect(replay.jsonLines.map { $0["action"] as? String ?? "" } == ["emit", "log"])
    }

    @Test func commandsGetPayloadThroughArgvAndEnvironmentAndNeverRunItAsCode() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "run")
        try fixture.writeConfig(url: server.url)
        let out = fixture.path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try fixture.writeRules(
            """
            rules:
              - id: run-argv
                on: cmd
                then:
                  - run: [/bin/sh, -c, 'printf "%s" "$1" > "$OUT/argv.txt"; printf "%s" "$FROM_ENV" > "$OUT/env.txt"', sh, "{{ payload }}"]
                    env: {OUT: "\(out)", FROM_ENV: "{{ payload }}"}
              - id: shell-env
                on: cmd
                then:
                  - shell: 'printf "%s" "$SIOAGENT_PAYLOAD" > "$OUT/shell.txt"; cat > "$OUT/stdin.json"'
                    env: {OUT: "\(out)"}
            """)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }

        let payload = "\"; touch \(out)/pwned; echo \"$(touch \(out)/pwned2)`touch \(out)/pwned3`"
        server.emit("cmd", [payload])
        try await agent.waitFor("both commands to finish") { agent.logged("command finished").count == 2 }

        #expect(try String(contentsOfFile: out + "/argv.txt", encoding: .utf8) == payload)
        #expect(try String(contentsOfFile: out + "/env.txt", encoding: .utf8) == payload)
        // The shell gets the payload as JSON text in SIOAGENT_PAYLOAD.
        let shellPayload = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: out + "/shell.txt")), options: .fragmentsAllowed)
        #expect(shellPayload as? String == payload)
        let stdin = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/stdin.json"))) as? [String: Any]
        #expect(stdin?["event"] as? String == "cmd")
        #expect((stdin?["args"] as? [String]) == [payload])
        for name in ["pwned", "pwned2", "pwned3"] {
            #expect(!FileManager.default.fileExists(atPath: out + "/" + name), "payload ran as code: \(name) exists")
        }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test func dryRunPrintsThePlanAndSendsRunsAndWritesNothing() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "dryrun")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(
            Self.batteryRules + """

                  - id: touch
                    on: batery
                    then:
                      - run: [/usr/bin/touch, "\(fixture.path("touched"))"]
                      - shell: 'touch "\(fixture.path("shell-touched"))"'
                """)
        let agent = try fixture.startAgent(["--dry-run"])
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        server.emit("batery", [15])
        server.emit("batery", [30])
        try await agent.waitFor("the planned actions") { agent.jsonLines.count >= 7 }

        let plan = agent.jsonLines
        #expect(plan.map { $0["action"] as? String ?? "?" } == ["emit", "log", "run", "shell", "log", "run", "shell"])
        #expect(plan[0]["rule"] as? String == "battery-low")
        #expect(plan[0]["event"] as? String == "alert")
        #expect(jsonText(plan[0]["args"] ?? []) == #"["battery low: 15%"]"#)
        #expect(plan[4]["phase"] as? String == "on_clear")

        // Give a real executor time to have acted, then check that nothing happened.
        try await Task.sleep(for: .milliseconds(500))
        #expect(server.received("alert").isEmpty)
        #expect(!fixture.exists("logs"))
        #expect(!fixture.exists("touched"))
        #expect(!fixture.exists("shell-touched"))
        #expect(!fixture.exists("spool"))
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test func reloadKeepsOldRulesOnErrorsAndKeepsLatchedStateOfUnchangedRules() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "reload")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(Self.batteryRules)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }

        server.emit("batery", [15])
        try await server.child.waitFor("the first alert") { server.received("alert").count == 1 }

        // A broken file: the old rules keep running.
        try fixture.writeRules("rules:\n  - id: broken\n    on: batery\n    when: payload <\n", name: "broken.yaml")
        try await agent.waitFor("the failed reload") { !agent.logged("reload failed; keeping the running rules").isEmpty }
        server.emit("batery", [10])  // still latched: no alert
        server.emit("batery", [30])  // clears
        server.emit("batery", [14])  // fires again
        try await server.child.waitFor("the second alert") { server.received("alert").count == 2 }
        #expect(jsonText(server.received("alert")[1]) == #"["battery low: 14%"]"#)

        // A good reload that adds a rule: battery-low is unchanged and stays latched.
        try FileManager.default.removeItem(atPath: fixture.path("rules/broken.yaml"))
        try fixture.writeRules(
            """
            rules:
              - id: echo
                on: ping
                then:
                  - emit: pong
            """, name: "extra.yaml")
        try await agent.waitFor("the reload") {
            agent.logged("rules reloaded").contains { jsonText($0["rules.added"] ?? []) == #"["echo"]"# }
        }
        let reloaded = agent.logged("rules reloaded").last!
        #expect(jsonText(reloaded["rules.changed"] ?? []) == "[]")
        server.emit("batery", [9])  // latched from before the reload: no alert
        server.emit("ping", [])
        try await server.child.waitFor("the new rule to work") { server.received("pong").count == 1 }
        #expect(server.received("alert").count == 2)

        // SIGHUP reloads too.
        agent.signal(SIGHUP)
        try await agent.waitFor("the SIGHUP reload") { agent.logged("rules reloaded").count >= 2 }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// Alerts fired while the server is down wait in the spool and reach it, all and in order,
    /// once it is back — also when the agent itself was restarted in between.
    @Test func alertsFiredDuringAnOutageArriveInOrderAfterServerAndAgentRestart() async throws {
        let firstServer = try await PeerServer.start()
        let fixture = try AgentFixture(label: "outage")
        try fixture.writeConfig(url: firstServer.url)
        try fixture.writeRules(
            """
            rules:
              - id: tick
                every: 1s
                then:
                  - emit: tick
                    args: ["t{{ now }}"]
                    ack: 2s
            """)
        var agent = try fixture.startAgent()
        try await firstServer.child.waitFor("ticks") { firstServer.received("tick").count >= 3 }

        await firstServer.stop()
        try await agent.waitFor("the disconnect") { !agent.logged("disconnected").isEmpty }
        let beforeOutage = agent.logged("emit").count
        try await agent.waitFor("alerts to pile up in the spool") { agent.logged("emit").count >= beforeOutage + 5 }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(15)) == 0)
        let firstRun = agent.logged("emit").compactMap { $0["emit.args"] as? String }

        agent = try fixture.startAgent()
        try await agent.waitFor("more alerts while the server is still down") { agent.logged("emit").count >= 4 }
        let server = try await PeerServer.start(port: firstServer.port)
        defer { Task { await server.stop() } }
        try await server.child.waitFor("every alert of the first run") {
            server.received("tick").count + firstServer.received("tick").count >= firstRun.count + 4
        }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(15)) == 0)
        let secondRun = agent.logged("emit").compactMap { $0["emit.args"] as? String }

        // What both servers received, in order; an alert whose ack was lost when the first
        // server died may arrive twice in a row (at-least-once), nothing may be missing.
        var received: [String] = []
        for args in (firstServer.received("tick") + server.received("tick")).map({ jsonText($0) }) where received.last != args {
            received.append(args)
        }
        let planned = firstRun + secondRun
        #expect(received.count >= firstRun.count + 4)
        #expect(received == Array(planned.prefix(received.count)))
    }

    @Test func sigtermLetsRunningCommandsFinishAndExitsZeroWithinTheDeadline() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "sigterm")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(
            """
            rules:
              - id: slow
                on: go
                then:
                  - run: [/bin/sh, -c, 'sleep 1; echo done > "$0"', "\(fixture.path("finished"))"]
            """)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        server.emit("go", [])
        try await agent.waitFor("the command to start") { !agent.logged("command started").isEmpty }
        let start = ContinuousClock.now
        agent.signal(SIGTERM)
        let status = await agent.waitForExit(timeout: .seconds(10))
        #expect(status == 0)
        #expect(ContinuousClock.now - start < .seconds(7))  // the 5 s deadline, plus start-up slack
        #expect(fixture.exists("finished"), "the running command was not allowed to finish")
        try await server.child.waitFor("the clean disconnect") {
            server.child.jsonLines.contains { $0["type"] as? String == "disconnect" }
        }
    }
}

