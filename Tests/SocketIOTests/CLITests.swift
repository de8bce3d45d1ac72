import Foundation
import Testing

@testable import SocketIO

/// The `sioagent listen` and `sioagent emit` commands against the real python peer.
@Suite(.timeLimit(.minutes(2)))
struct CLITests {
    @Test func notebookFromTheCommandLine() async throws {
        let server = try await PeerServer.start()
        let r = try await runCLI(["emit", server.url, "alert", #""Ola mundo!""#, "--wait", "feedback"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == #"{"namespace":"/","event":"feedback","args":[{"retorno":true}]}"# + "\n")
    }

    @Test func emitPrintsTheAckWithBytes() async throws {
        let server = try await PeerServer.start()
        let r = try await runCLI(["emit", server.url, "echo", "1", #"{"b":{"$binary":"AQID"}}"#, "--ack", "--transport", "polling"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == #"[1,{"b":{"$binary":"AQID"}}]"# + "\n")
        let withDuration = try await runCLI(["emit", server.url, "echo", "--ack", "5s", "2"])
        #expect(withDuration.stdout == "[2]\n")
    }

    @Test func listenPrintsEventsAndExitsAfterCount() async throws {
        let server = try await PeerServer.start()
        async let listened = runCLI(["listen", server.url, "--namespace", "/early", "--auth", #"{"t":1}"#, "--count", "1", "--timeout", "20s"])
        let r = try await listened
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == #"{"namespace":"/early","event":"early","args":[{"auth":{"t":1}}]}"# + "\n")
    }

    @Test func failuresExitOneWithOneLine() async throws {
        let server = try await PeerServer.start()
        let refusedPort = try await runCLI(["emit", "http://127.0.0.1:1", "x"])
        #expect(refusedPort.code == 1)
        #expect(refusedPort.stderr.split(separator: "\n").count == 1)
        #expect(refusedPort.stderr.contains("refused"))

        let refusedNamespace = try await runCLI(["emit", server.url, "x", "--namespace", "/admin", "--auth", #"{"token":"no"}"#])
        #expect(refusedNamespace.code == 1)
        // Auth over plain http: one warning, then the one error line.
        let lines = refusedNamespace.stderr.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.contains("sent over plain http/ws") == true)
        #expect(lines.last == "sioagent: connection to namespace /admin refused: Not authorized ({\"reason\":\"bad token\"})")

        let ackTimeout = try await runCLI(["emit", server.url, "stall", "--ack", "1s"])
        #expect(ackTimeout.code == 1)
        #expect(ackTimeout.stderr.contains("acknowledgement"))

        let waitTimeout = try await runCLI(["emit", server.url, "record", "1", "--wait", "never", "--timeout", "1s"])
        #expect(waitTimeout.code == 1)
        #expect(waitTimeout.stderr.contains("never"))

        let listenTimeout = try await runCLI(["listen", server.url, "--count", "1", "--timeout", "1s"])
        #expect(listenTimeout.code == 1)
        #expect(listenTimeout.stderr.split(separator: "\n").count == 1)
    }

    @Test(arguments: [
        ["emit", "http://127.0.0.1:1", "x", "{bad"],
        ["emit", "ftp://host", "x"],
        ["emit", "http://127.0.0.1:1", "connect"],
        ["listen", "http://127.0.0.1:1", "--transport", "carrier-pigeon"],
        ["listen", "http://127.0.0.1:1", "--auth", "[1]"],
        ["listen", "http://127.0.0.1:1", "--count", "0"],
        ["listen", "http://127.0.0.1:1", "--header", "novalue"],
        ["emit"],
    ])
    func badUsageExitsTwo(arguments: [String]) async throws {
        let r = try await runCLI(arguments)
        #expect(r.code == 2, "\(arguments): \(r.stderr)")
    }
    /// `sioagent run` never sits connected to nothing: with `when_exhausted: exit`, a server that
    /// disconnects every namespace makes it exit 1 with a clear log line (systemd restarts it).
    @Test func runExitsNonZeroWhenEveryNamespaceIsDisconnected() async throws {
        let server = try await PeerServer.rogue("kick-all")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sio-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("sioagent.yaml")
        try """
            server: {url: \(server.url), transports: [websocket]}
            reconnection: {delay: 100ms, max_delay: 200ms, when_exhausted: exit}
            rules: \(packageRoot.appendingPathComponent("rules/feedback.yaml").path)
            spool: {dir: \(dir.appendingPathComponent("spool").path)}
            log: {format: text}
            """.write(to: config, atomically: true, encoding: .utf8)
        let r = try await runCLI(["run", "--config", config.path], timeout: 30)
        #expect(r.code == 1, "\(r.stderr)")
        #expect((r.stdout + r.stderr).contains("the connection was given up"))
    }
}
