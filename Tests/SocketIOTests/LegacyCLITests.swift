import Foundation
import Testing

@testable import SocketIO

/// `sioagent listen` / `emit` against the legacy Socket.IO v2 server, with `--protocol`.
@Suite(.timeLimit(.minutes(2)))
struct LegacyCLITests {
    static let feedback = #"{"namespace":"/","event":"feedback","args":[{"retorno":true}]}"# + "\n"

    @Test(arguments: [[], ["--protocol", "auto"], ["--protocol", "3"], ["--protocol", "3", "--transport", "polling"]])
    func notebookFromTheCommandLine(extra: [String]) async throws {
        let server = try await LegacyInteropTests.legacyServer()
        let r = try await runCLI(["emit", server.url, "alert", #""Ola mundo!""#, "--wait", "feedback"] + extra)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == Self.feedback)
    }

    @Test func ackWithBytesAndAuthInTheQuery() async throws {
        let server = try await LegacyInteropTests.legacyServer()
        let r = try await runCLI(["emit", server.url, "echo", "1", #"{"b":{"$binary":"AQID"}}"#, "--ack", "--protocol", "3", "--transport", "polling"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout == #"[1,{"b":{"$binary":"AQID"}}]"# + "\n")
        let listened = try await runCLI(["listen", server.url, "--namespace", "/early", "--auth", #"{"token":"secret"}"#,
                                         "--count", "1", "--timeout", "20s", "--protocol", "3"])
        #expect(listened.code == 0, "\(listened.stderr)")
        #expect(listened.stdout == #"{"namespace":"/early","event":"early","args":[{"query":{"token":"secret"}}]}"# + "\n")
    }

    @Test func version4AgainstALegacyServerFailsWithTheServersAnswer() async throws {
        let server = try await LegacyInteropTests.legacyServer()
        let r = try await runCLI(["emit", server.url, "alert", "--protocol", "4", "--timeout", "5s"])
        #expect(r.code == 1)
        #expect(r.stderr.contains("unsupported version"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        let refused = try await runCLI(["emit", server.url, "x", "--namespace", "/admin", "--protocol", "3"])
        #expect(refused.code == 1)
        #expect(refused.stderr == "sioagent: connection to namespace /admin refused: Not authorized\n")
    }

    @Test func badProtocolIsAUsageError() async throws {
        let r = try await runCLI(["listen", "http://127.0.0.1:1", "--protocol", "2"])
        #expect(r.code == 2, "\(r.stderr)")
    }
}
