import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `sioagent run` with a damaged, full or slow disk, and alerts the server cannot or will not
/// take, against the real python-socketio server.
@Suite(.timeLimit(.minutes(3)))
struct DiskEndToEndTests {
    private func names(_ dir: String) -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
    }

    /// Files that used to make every start trap (exit 132) are set aside; the good alert goes out.
    @Test func aDamagedSpoolIsSetAsideAndTheAgentRuns() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "spool-damaged")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules("rules: []\n")
        let spool = fixture.path("spool")
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        let good = #"{"namespace":"/","event":"old","args":["kept"],"rule":"r","ack":5}"#
        try good.write(toFile: spool + "/18446744073709551615.alert", atomically: false, encoding: .utf8)
        try #"{"namespace":"/","event":"old","args":["bad"],"ack":1e19}"#.write(
            toFile: spool + "/0000000000000002.alert", atomically: false, encoding: .utf8)
        #expect(mkfifo(spool + "/0000000000000003.alert", 0o600) == 0)
        try #"{"namespace":"/","eve"#.write(toFile: spool + "/0000000000000004.alert", atomically: false, encoding: .utf8)
        try good.write(toFile: spool + "/0000000000000005.alert", atomically: false, encoding: .utf8)

        let agent = try fixture.startAgent()
        try await server.child.waitFor("the good alert") { server.received("old").count == 1 }
        #expect(jsonText(server.received("old")[0]) == #"["kept"]"#)
        #expect(agent.isRunning)
        #expect(names(spool + "/corrupt") == [
            "18446744073709551615.alert", "0000000000000002.alert", "0000000000000003.alert", "0000000000000004.alert",
        ])
        #expect(agent.logged("spool file is unreadable; moved to the corrupt directory").count == 4)
        try await agent.waitFor("the delivered alert to leave the spool") { alertFiles(spool).isEmpty }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// At-least-once: an `ack:` alert stays on disk while the server holds back its ack, and
    /// while the ack times out; it leaves the spool only once acknowledged.
    @Test func anAckAlertStaysInTheSpoolUntilTheServerAcknowledgesIt() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "ack-held")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(
            """
            rules:
              - id: relay
                on: go
                then:
                  - emit: alert
                    args: ["{{ payload }}"]
                    ack: 1s
            """)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        server.holdAcks()
        server.emit("go", ["important"])
        try await server.child.waitFor("the alert, its ack held") {
            server.child.jsonLines.contains { $0["type"] as? String == "ack_held" }
        }
        let spool = fixture.path("spool")
        #expect(alertFiles(spool).count == 1)
        // No ack within 1 s: still there.
        try await agent.waitFor("the ack timeout") { !agent.logged("alert not delivered; kept in the spool").isEmpty }
        #expect(alertFiles(spool).count == 1)
        let text = try String(contentsOfFile: spool + "/" + alertFiles(spool)[0], encoding: .utf8)
        #expect(text.contains(#""event":"alert","args":["important"]"#))
        #expect(agent.logged("spooled alert acknowledged").isEmpty)

        server.releaseAcks()
        try await agent.waitFor("the acknowledgement") { !agent.logged("spooled alert acknowledged").isEmpty }
        try await agent.waitFor("the spool to empty") { alertFiles(spool).isEmpty }
        #expect(server.received("alert").allSatisfy { jsonText($0) == #"["important"]"# })
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// The longest `ack:` rule files accept (100 years; `200000000000d` used to trap the agent,
    /// and is now refused when the rules load) counts as the longest wait, 24 h.
    @Test func theLongestAckIsClampedNotATrap() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "ack-huge")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(
            """
            rules:
              - id: relay
                on: go
                then:
                  - emit: alert
                    args: ["{{ payload }}"]
                    ack: 36500d
            """)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        server.emit("go", ["x"])
        try await agent.waitFor("the acknowledgement") { !agent.logged("spooled alert acknowledged").isEmpty }
        #expect(agent.isRunning)
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// Alerts the server can never take (a reserved event name, a namespace the client does
    /// not have, one the server does not know) go to spool/failed/ and hold nothing back, also
    /// when they were spooled by an earlier run.
    @Test func alertsThatCanNeverBeDeliveredGoToFailedAndBlockNothing() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "failed")
        try fixture.writeConfig(url: server.url)
        // The client also connects to /nowhere, which the server does not serve.
        var config = try String(contentsOfFile: fixture.path("agent.yaml"), encoding: .utf8)
        config = config.replacingOccurrences(of: "  transports: [websocket]", with: "  transports: [websocket]\n  namespaces: [/, /nowhere]")
        try config.write(toFile: fixture.path("agent.yaml"), atomically: true, encoding: .utf8)
        try fixture.writeRules(
            """
            rules:
              - id: relay
                on: go
                then:
                  - emit: "{{ payload.name }}"
                    namespace: "{{ payload.ns }}"
                    args: ["n{{ payload.n }}"]
                    ack: 5s
            """)
        // Spooled by an earlier run: a reserved name at the head of the spool.
        let spool = fixture.path("spool")
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        try #"{"namespace":"/","event":"connect","args":[],"rule":"old","ack":5}"#.write(
            toFile: spool + "/0000000000000001.alert", atomically: false, encoding: .utf8)
        try #"{"namespace":"/","event":"alert","args":["n0"],"rule":"old","ack":5}"#.write(
            toFile: spool + "/0000000000000002.alert", atomically: false, encoding: .utf8)

        var agent = try fixture.startAgent()
        try await server.child.waitFor("the alert behind the reserved one") { server.received("alert").count == 1 }
        try await agent.waitFor("the server's refusal of /nowhere") { !agent.logged("connect error").isEmpty }
        for (name, ns, n) in [("connect", "/", 1), ("alert", "/nowhere", 2), ("alert", "/", 3), ("disconnect", "/", 4),
                              ("alert", "/other", 5), ("alert", "/", 6)] {
            server.emit("go", [["name": name, "ns": ns, "n": n]])
        }
        try await server.child.waitFor("the deliverable alerts") { server.received("alert").count == 3 }
        #expect(server.received("alert").map { jsonText($0) } == [#"["n0"]"#, #"["n3"]"#, #"["n6"]"#])
        try await agent.waitFor("five failed alerts") {
            agent.logged("alert can never be delivered; moved to the failed directory").count == 5
                && alertCount(spool + "/failed") == 5
        }
        try await agent.waitFor("the spool to empty") { alertFiles(spool).isEmpty }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)

        // The next run does not try them again.
        agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to reconnect") { server.connections >= 2 }
        server.emit("go", [["name": "alert", "ns": "/", "n": 7]])
        try await server.child.waitFor("the next alert") { server.received("alert").count == 4 }
        #expect(agent.logged("alert can never be delivered; moved to the failed directory").isEmpty)
        #expect(alertCount(spool + "/failed") == 5)
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// A full disk: alerts wait in memory with a warning, are written once there is room, and
    /// none is lost. The spool lives on a tmpfs of 128 KiB that the test mounts.
    @Test(.enabled(if: geteuid() == 0, "mounting the small tmpfs needs root"))
    func aFullDiskKeepsAlertsInMemoryAndWritesThemLater() async throws {
        let fixture = try AgentFixture(label: "enospc")
        let mountPoint = fixture.path("small")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = try ChildProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=128k", "tmpfs", mountPoint], name: "mount")
        guard await mount.waitForExit(timeout: .seconds(10)) == 0 else {
            Issue.record("cannot mount a tmpfs here, although root: \(mount.stderrLines)")
            return
        }
        defer {
            let umount = try? ChildProcess("/bin/umount", ["-l", mountPoint], name: "umount")
            Task { _ = await umount?.waitForExit(timeout: .seconds(10)) }
        }
        // Nothing listens there: every alert stays in the spool.
        try fixture.writeConfig(url: "http://127.0.0.1:9", extra: "")
        var config = try String(contentsOfFile: fixture.path("agent.yaml"), encoding: .utf8)
        config = config.replacingOccurrences(of: "spool: {dir: spool}", with: "spool: {dir: small/spool}")
        try config.write(toFile: fixture.path("agent.yaml"), atomically: true, encoding: .utf8)
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
        let spool = mountPoint + "/spool"
        let agent = try fixture.startAgent()
        try await agent.waitFor("alerts in the spool") { alertCount(spool) >= 2 }

        // Fill the disk.
        let filler = mountPoint + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT, 0o600)
        let block = [UInt8](repeating: 0, count: 4096)
        while block.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) > 0 {}
        let fillErrno = errno
        close(fd)
        #expect(fillErrno == ENOSPC)
        try await agent.waitFor("the disk-full warning") {
            !agent.logged("disk full; alert kept in memory until the disk takes it").isEmpty
        }
        try await agent.waitFor("a few more alerts in memory") { agent.logged("emit").count >= alertCount(spool) + 3 }
        // Not one warning per alert (nor per retry): one every 10 s at most, with the count.
        #expect(agent.logged("disk full; alert kept in memory until the disk takes it").count <= 2)
        #expect(agent.isRunning)

        // Room again: the alerts kept in memory reach the disk.
        unlink(filler)
        try await agent.waitFor("every alert on disk") { alertCount(spool) >= agent.logged("emit").count }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(15)) == 0)
        let emitted = agent.logged("emit").count
        #expect(alertCount(spool) == emitted, "alerts lost: \(emitted) planned, \(alertCount(spool)) on disk")
        #expect(!names(spool).contains { $0.hasSuffix(".tmp") })
    }

    /// A rendered message holding control characters is one line, in a file and on stdout.
    @Test func aLogMessageIsOneLineWhateverThePayloadHolds() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "log-escape")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(
            """
            rules:
              - id: say
                on: say
                then:
                  - log: logs/said.log
                    message: "said {{ payload }}"
                  - log: stdout
                    message: "said {{ payload }}"
            """)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        server.emit("say", ["a\nforged line\r\u{1b}[2Jb"])
        server.emit("say", ["next"])
        try await agent.waitFor("both lines") { fixture.fileLines("logs/said.log").count >= 2 }
        try await agent.waitFor("both stdout lines") { agent.stdoutLines.filter { $0.hasPrefix("said") }.count >= 2 }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
        let expected = [#"said a\nforged line\r\u{1b}[2Jb"#, "said next"]
        #expect(fixture.fileLines("logs/said.log") == expected)
        #expect(agent.stdoutLines.filter { !$0.isEmpty } == expected)
    }

    /// `log` and `--record` lines wait on the loop up to 100 ms: SIGTERM right after a burst
    /// still leaves every one of them in its file (the reply to the last event proves the agent
    /// handled the whole burst before the signal).
    @Test func sigtermRightAfterABurstLeavesEveryLineInTheFile() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "log-burst")
        try fixture.writeConfig(url: server.url)
        try fixture.writeRules(
            """
            rules:
              - id: note
                on: reading
                then:
                  - log: logs/readings.log
                    message: "reading {{ payload.n }}"
              - id: last
                on: last
                then:
                  - reply: [done]
            """)
        let agent = try fixture.startAgent(["--record", fixture.path("events.jsonl")])
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        for i in 0..<500 { server.emit("reading", [["n": i]]) }
        server.emitWithAck("last", 0, id: "end")
        try await server.child.waitFor("the reply to the last event") {
            server.child.jsonLines.contains { $0["type"] as? String == "ack" && $0["id"] as? String == "end" }
        }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(15)) == 0)
        #expect(fixture.fileLines("logs/readings.log") == (0..<500).map { "reading \($0)" })
        let recorded = fixture.fileLines("events.jsonl")
        #expect(recorded.count == 501)
        #expect(recorded.dropLast().enumerated().allSatisfy { i, line in line.contains(#""args":[{"n":\#(i)}]"#) })
    }

    /// `--record` rotates like `log` files.
    @Test func theRecordingRotatesLikeLogFiles() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "record-rotate")
        try fixture.writeConfig(url: server.url, extra: "log_files: {max_size: 1KiB, keep: 2}")
        try fixture.writeRules("rules: []\n")
        let agent = try fixture.startAgent(["--record", fixture.path("events.jsonl")])
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }
        for i in 0..<60 {
            server.emit("reading", [["n": i, "pad": String(repeating: "p", count: 40)]])
        }
        try await agent.waitFor("the last event recorded") {
            fixture.fileLines("events.jsonl").last?.contains(#""n":59"#) == true
        }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
        for name in ["events.jsonl", "events.jsonl.1", "events.jsonl.2"] {
            let size = (try? FileManager.default.attributesOfItem(atPath: fixture.path(name))[.size] as? Int) ?? -1
            #expect(size > 0 && size <= 1024, "\(name): \(size) bytes")
        }
        #expect(!fixture.exists("events.jsonl.3"))
    }
}
