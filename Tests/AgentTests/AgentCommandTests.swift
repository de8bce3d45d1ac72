import Foundation
import TestSupport
import Testing

/// `run` and `shell` actions through `sioagent run` against the real python-socketio server:
/// what reaches the child, and children that cannot take the agent down.
@Suite(.timeLimit(.minutes(3)))
struct AgentCommandTests {
    /// Variables of the agent's own environment that must never reach a child.
    static let secrets = ["SIOAGENT_TEST_SECRET": "hidden", "AWS_SECRET_ACCESS_KEY": "also-hidden"]

    /// Only `pass_env` (PATH here) and, for `shell`, the SIOAGENT_* variables reach the child.
    @Test func onlyPassEnvAndTheEventVariablesReachRunAndShell() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "pass-env")
        try fixture.writeConfig(url: server.url)
        let out = fixture.path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try fixture.writeRules(
            """
            rules:
              - id: run-env
                on: cmd
                then:
                  - run: [/usr/bin/env]
                  - run: [/bin/sh, -c, 'env > "$0/run.env"', "\(out)"]
                    env: {FROM_RULE: "{{ payload }}"}
              - id: shell-env
                on: cmd
                then:
                  - shell: 'env > "$OUT/shell.env"'
                    env: {OUT: "\(out)"}
            """)
        let agent = try ChildProcess(
            try TestPaths.sioagent, ["run", "--config", fixture.path("agent.yaml")], environment: Self.secrets,
            directory: fixture.directory, name: "sioagent")
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        server.emit("cmd", ["x"])
        try await agent.waitFor("the three commands to finish") { agent.logged("command finished").count == 3 }

        // sh itself adds PWD, SHLVL and `_`; everything else must come from the agent.
        let added: Set<String> = ["PWD", "SHLVL", "_"]
        let run = try Self.environment(out + "/run.env")
        #expect(Set(run.keys).subtracting(added) == ["PATH", "FROM_RULE"])
        #expect(run["FROM_RULE"] == "x")
        #expect(run["PATH"] == ProcessInfo.processInfo.environment["PATH"])
        let shell = try Self.environment(out + "/shell.env")
        #expect(
            Set(shell.keys).subtracting(added)
                == ["PATH", "OUT", "SIOAGENT_EVENT", "SIOAGENT_NAMESPACE", "SIOAGENT_RULE", "SIOAGENT_PAYLOAD", "SIOAGENT_ARGS"])
        // `run: [/usr/bin/env]` prints the whole environment; its first KiB is logged.
        let printed = agent.logged("command finished").compactMap { $0["command.stdout"] as? String }.joined()
        for (name, value) in Self.secrets {
            #expect(!printed.contains(name) && !printed.contains(value))
            #expect(run[name] == nil && shell[name] == nil)
        }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// The trigger from issue 8: a `shell` that exits without reading the event on its stdin,
    /// 100 times a second for 5 s. swift-subprocess 1.0.2 trapped within 5 s.
    @Test func shellExitingWithoutReadingStdinAt100PerSecondNeverCrashesTheAgent() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "shell-exit")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(
            """
            rules:
              - id: quick
                on: tick
                then:
                  - shell: 'exit 0'
            """)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        // Every fifth event carries 100 KiB, more than a pipe holds: the write must see EPIPE.
        let big = String(repeating: "p", count: 100 * 1024)
        let count = 500
        let clock = ContinuousClock()
        let start = clock.now
        for i in 0..<count {
            server.emit("tick", [i % 5 == 0 ? big : "small \(i)"])
            // Paced at 100 events/s (pacing, not synchronisation).
            try await Task.sleep(until: start + .milliseconds(10 * (i + 1)))
        }
        try await agent.waitFor("every command to finish", timeout: .seconds(60)) {
            agent.logged("command finished").count + agent.logged("command dropped").count >= count || !agent.isRunning
        }
        #expect(agent.isRunning, "the agent died: \(agent.stderrLines.suffix(5))")
        // On a loaded machine the queue (commands.max_queued) may overflow: that drops, with a
        // warning, and fails nothing.
        let finished = agent.logged("command finished").count
        #expect(finished > 0 && finished + agent.logged("command dropped").count == count)
        #expect(agent.logged("command failed").isEmpty)
        print("shell 'exit 0' at 100/s: \(finished) finished, \(count - finished) dropped; agent running: \(agent.isRunning)")
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// SIGTERM just after a `shell` (with stdin) and a `run` started: both finish and are
    /// logged, and the agent exits 0. Before, swift-subprocess trapped in 3 runs out of 12.
    @Test(arguments: 0..<4) func sigtermWhileCommandsRunLogsTheirEndAndExitsZero(round: Int) async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "sigterm-cmds")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(
            """
            rules:
              - id: both
                on: go
                then:
                  - shell: 'sleep 0.\(round)'
                  - run: [/bin/sleep, "0.3"]
                  - shell: 'exit 0'
            """)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        server.emit("go", [String(repeating: "s", count: 100 * 1024)])
        try await agent.waitFor("the commands to start") { agent.logged("command started").count == 3 }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
        #expect(agent.logged("command finished").count == 3, "\(agent.stderrLines.suffix(5))")
    }

    /// An event too big for the environment: `shell` still runs, with the event on stdin only.
    @Test func aShellPayloadTooBigForTheEnvironmentGoesToStdinOnly() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "e2big")
        try fixture.writeConfig(url: server.url)
        let out = fixture.path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try fixture.writeRules(
            """
            rules:
              - id: big
                on: big
                then:
                  - shell: 'cat > "$OUT/stdin.json"; echo "${SIOAGENT_PAYLOAD:-unset}" > "$OUT/payload.txt"'
                    env: {OUT: "\(out)"}
            """)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        let payload = String(repeating: "b", count: 200 * 1024)
        server.emit("big", [payload])
        try await agent.waitFor("the command to end") {
            !agent.logged("command finished").isEmpty || !agent.logged("command failed").isEmpty
        }
        #expect(agent.logged("command finished").count == 1)
        let stdin = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/stdin.json"))) as? [String: Any]
        #expect((stdin?["args"] as? [String]) == [payload])
        #expect(try String(contentsOfFile: out + "/payload.txt", encoding: .utf8) == "unset\n")
        #expect(agent.logLines.contains { ($0["message"] as? String ?? "").contains("too large for the environment") })
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// `env` output as a dictionary (values holding newlines are not expected here).
    static func environment(_ path: String) throws -> [String: String] {
        var result: [String: String] = [:]
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            result[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return result
    }
}
