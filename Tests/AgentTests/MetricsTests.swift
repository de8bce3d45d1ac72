import Agent
import Foundation
import TestSupport
import Testing

/// `metrics:`: `/metrics` scraped over real HTTP and the text file, both parsed by
/// prometheus_client's parser (Tests/AgentTests/Peer/scrape_metrics.py).
@Suite(.timeLimit(.minutes(3)))
struct MetricsTests {
    struct Scrape {
        var status: Int?
        var contentType: String?
        var samples: [(name: String, labels: [String: String], value: Double)] = []
        var types: [String: String] = [:]

        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples.first { sample in sample.name == name && labels.allSatisfy { k, v in sample.labels[k] == v } }?.value
        }
    }

    /// Runs the parser on `source` (a URL or a file); fails the test when the text does not parse.
    static func scrape(_ source: String) async throws -> Scrape {
        let script = TestPaths.packageRoot + "/Tests/AgentTests/Peer/scrape_metrics.py"
        let child = try ChildProcess(try TestPaths.python, [script, source], name: "scrape")
        let code = await child.waitForExit(timeout: .seconds(20))
        let line = child.stdoutLines.last ?? "{}"
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        if let error = object["error"] as? String {
            Issue.record("the metrics text does not parse: \(error)")
        }
        #expect(code == 0, "scrape exited \(String(describing: code)): \(child.stderrLines.joined(separator: "\n"))")
        var s = Scrape()
        s.status = object["status"] as? Int
        s.contentType = object["content_type"] as? String
        s.types = object["types"] as? [String: String] ?? [:]
        for sample in object["samples"] as? [[Any]] ?? [] {
            s.samples.append((sample[0] as! String, sample[1] as! [String: String], (sample[2] as! NSNumber).doubleValue))
        }
        return s
    }

    @Test func scrapeAndTextFileReportEventsFiringsActionsAndHistograms() async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let fixture = try AgentFixture(label: "metrics")
        let port = try ServerSocketProbe.freePort()
        try fixture.writeConfig(
            url: server.url,
            extra: """
                metrics:
                  listen: 127.0.0.1:\(port)
                  textfile: metrics/sioagent.prom
                  interval: 1s
                """)
        try FileManager.default.createDirectory(atPath: fixture.path("metrics"), withIntermediateDirectories: true)
        try fixture.writeRules(
            """
            rules:
              - id: battery-low
                on: batery
                when: payload < 20
                then:
                  - emit: alert
                    args: ["{{ payload }}"]
                  - run: ["true"]
              - id: "quoted \\"id\\""
                on: temp
                then:
                  - log: logs/temp.log
            """)
        let agent = try fixture.startAgent()
        try await server.child.waitFor("the agent to connect") { server.connections == 1 }

        server.emit("batery", [15])
        server.emit("batery", [30])
        server.emit("temp", [1])
        server.emit("unnamed", [1])
        server.emit("another", [2])
        try await server.child.waitFor("the alert") { server.received("alert").count == 1 }
        try await agent.waitFor("the command to finish") { !agent.logged("command finished").isEmpty }
        try await agent.waitFor("the log line") { fixture.fileLines("logs/temp.log").count == 1 }

        let url = "http://127.0.0.1:\(port)/metrics"
        let m = try await Self.scrape(url)
        #expect(m.status == 200)
        #expect(m.contentType?.hasPrefix("text/plain; version=0.0.4") == true)
        #expect(
            m.value("sioagent_build_info", ["version": BuildInfo.version, "commit": BuildInfo.commit, "build_date": BuildInfo.date]) == 1)
        #expect(m.value("sioagent_connected", ["namespace": "/"]) == 1)
        #expect(m.value("sioagent_events_received_total", ["namespace": "/", "event": "batery"]) == 2)
        #expect(m.value("sioagent_events_received_total", ["namespace": "/", "event": "temp"]) == 1)
        // Names no rule uses share one label value: the label set stays bounded.
        #expect(m.value("sioagent_events_received_total", ["namespace": "/", "event": "_other"]) == 2)
        #expect(!m.samples.contains { $0.labels["event"] == "unnamed" || $0.labels["event"] == "another" })
        #expect(m.value("sioagent_rule_firings_total", ["rule": "battery-low"]) == 1)
        #expect(m.value("sioagent_rule_firings_total", ["rule": "quoted \"id\""]) == 1)
        #expect(m.value("sioagent_actions_total", ["action": "emit", "outcome": "ok"]) == 1)
        #expect(m.value("sioagent_actions_total", ["action": "run", "outcome": "ok"]) == 1)
        #expect(m.value("sioagent_actions_total", ["action": "log", "outcome": "ok"]) == 1)
        #expect(m.value("sioagent_spool_items") == 0)
        #expect(m.value("sioagent_reconnects_total") == 0)
        #expect(m.types["sioagent_command_duration_seconds"] == "histogram")
        #expect(m.value("sioagent_command_duration_seconds_count") == 1)
        #expect(m.value("sioagent_command_duration_seconds_bucket", ["le": "+Inf"]) == 1)
        #expect(m.value("sioagent_event_to_action_seconds_count") == 3)
        #expect(m.types["sioagent_events_received"] == "counter")

        // Anything but GET /metrics is refused.
        #expect(try await Self.scrape("http://127.0.0.1:\(port)/").status == 404)

        // The text file says the same, written whole (no temporary file left behind).
        try await agent.waitFor("the text file") { fixture.exists("metrics/sioagent.prom") }
        try await agent.waitFor("a text file with the events") {
            (try? String(contentsOfFile: fixture.path("metrics/sioagent.prom"), encoding: .utf8))?
                .contains(#"sioagent_events_received_total{namespace="/",event="_other"} 2"#) == true
        }
        let file = try await Self.scrape(fixture.path("metrics/sioagent.prom"))
        #expect(file.value("sioagent_rule_firings_total", ["rule": "battery-low"]) == 1)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: fixture.path("metrics"))
        #expect(leftovers == ["sioagent.prom"])

        // A lost connection shows in the gauge.
        await server.stop()
        try await agent.waitFor("the disconnect") { !agent.logged("disconnected").isEmpty }
        #expect(try await Self.scrape(url).value("sioagent_connected", ["namespace": "/"]) == 0)

        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test func noListenerUnlessConfigured() async throws {
        let fixture = try AgentFixture(label: "metrics-off")
        try fixture.writeConfig(url: "http://127.0.0.1:1")
        try fixture.writeRules("rules:\n  - id: r\n    on: x\n    then:\n      - log: stdout\n")
        let agent = try fixture.startAgent()
        try await agent.waitFor("the first attempt") { !agent.logged("connect error").isEmpty }
        #expect(agent.logged("metrics listening").isEmpty)
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }
}
