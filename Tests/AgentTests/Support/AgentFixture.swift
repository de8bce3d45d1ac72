import Foundation
import TestSupport

/// The real python-socketio server the end-to-end tests talk to (Tests/AgentTests/Peer/peer_server.py).
final class PeerServer: Sendable {
    let child: ChildProcess
    let port: Int

    private init(child: ChildProcess, port: Int) {
        self.child = child
        self.port = port
    }

    /// Starts the server on `port` (0: a free one) and waits until it listens.
    /// `refuse`: namespaces whose connection the server refuses with `refuseMessage`.
    /// `ackDelay`: each event is acknowledged after a random delay up to this many seconds.
    static func start(
        port: Int = 0, namespaces: String = "/", refuse: String? = nil, refuseMessage: String = "refused", ackDelay: Double? = nil
    ) async throws -> PeerServer {
        let script = TestPaths.packageRoot + "/Tests/AgentTests/Peer/peer_server.py"
        var arguments = ["-u", script, "--port", String(port), "--namespaces", namespaces]
        if let ackDelay { arguments += ["--ack-delay", String(ackDelay)] }
        if let refuse { arguments += ["--refuse", refuse, "--refuse-message", refuseMessage] }
        let child = try ChildProcess(try TestPaths.python, arguments, name: "peer server")
        try await child.waitFor("the server to listen") { child.jsonLines.contains { $0["type"] as? String == "ready" } }
        let ready = child.jsonLines.first { $0["type"] as? String == "ready" }!
        return PeerServer(child: child, port: ready["port"] as! Int)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// Makes the server emit `event` with `args` to every client.
    func emit(_ event: String, _ args: [Any], namespace: String = "/") {
        let command: [String: Any] = ["emit": event, "args": args, "namespace": namespace]
        child.send(String(decoding: try! JSONSerialization.data(withJSONObject: command), as: UTF8.self))
    }

    /// Asks every client for an ack of `event`; the answer arrives as a line of type "ack".
    func emitWithAck(_ event: String, _ arg: Any, id: String) {
        let command: [String: Any] = ["emit_ack": event, "args": [arg], "id": id]
        child.send(String(decoding: try! JSONSerialization.data(withJSONObject: command), as: UTF8.self))
    }

    /// The events the server received, in order.
    func received(_ event: String) -> [[Any]] {
        child.jsonLines.filter { $0["type"] as? String == "event" && $0["event"] as? String == event }.map { $0["args"] as? [Any] ?? [] }
    }

    /// The most events whose handlers ran at once (with `ackDelay`): more than one means the
    /// client had several acks outstanding.
    var mostPending: Int {
        child.jsonLines.compactMap { $0["type"] as? String == "event" ? $0["pending"] as? Int : nil }.max() ?? 0
    }

    /// From now on, events that ask for an ack are acknowledged only after ``releaseAcks()``.
    func holdAcks() { child.send(#"{"hold_acks": true}"#) }

    /// Acknowledges the held events, and every later one at once.
    func releaseAcks() { child.send(#"{"release_acks": true}"#) }

    var connections: Int { child.jsonLines.filter { $0["type"] as? String == "connect" }.count }

    func stop() async { await child.stop() }
}

/// A directory with an agent configuration and rule files, and the `sioagent run` process.
final class AgentFixture: Sendable {
    let directory: String

    init(label: String) throws {
        directory = try TestPaths.temporaryDirectory(label)
        try FileManager.default.createDirectory(atPath: directory + "/rules", withIntermediateDirectories: true)
    }

    /// Writes `agent.yaml` for `url`; `extra` is appended (more top-level keys).
    func writeConfig(
        url: String, transports: String = "[websocket]", spool: String = "{dir: spool}", shutdownTimeout: String = "5s", extra: String = ""
    ) throws {
        let text = """
            server:
              url: \(url)
              transports: \(transports)
            reconnection: {delay: 200ms, max_delay: 1s}
            rules: rules
            spool: \(spool)
            commands: {cwd: ., pass_env: [PATH]}
            log: {format: json, level: debug}
            shutdown: {timeout: \(shutdownTimeout)}
            \(extra)
            """
        try text.write(toFile: directory + "/agent.yaml", atomically: true, encoding: .utf8)
    }

    func writeRules(_ text: String, name: String = "main.yaml") throws {
        // Write then rename, so a watcher never reads half a file.
        let path = directory + "/rules/" + name
        try text.write(toFile: path + ".tmp", atomically: false, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
    }

    func path(_ relative: String) -> String { directory + "/" + relative }

    func fileLines(_ relative: String) -> [String] {
        guard let text = try? String(contentsOfFile: path(relative), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: path(relative)) }

    /// Starts `sioagent run --config agent.yaml` in the fixture's directory.
    func startAgent(_ extraArguments: [String] = []) throws -> ChildProcess {
        try ChildProcess(
            try TestPaths.sioagent, ["run", "--config", path("agent.yaml")] + extraArguments, directory: directory, name: "sioagent")
    }
}

extension ChildProcess {
    /// The agent's JSON log lines (stderr).
    var logLines: [[String: Any]] {
        stderrLines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
    }

    func logged(_ message: String) -> [[String: Any]] {
        logLines.filter { ($0["message"] as? String) == message }
    }
}

/// Compact JSON text of a value from JSONSerialization, for comparisons.
func jsonText(_ value: Any) -> String {
    if let s = value as? String { return s }
    guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) else { return "\(value)" }
    // Foundation escapes "/" as "\/"; JSON says both mean the same.
    return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\\/", with: "/")
}
