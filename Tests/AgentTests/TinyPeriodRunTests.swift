import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `every:` below 1 s stops `run` with the position (issue 15, item 5).
struct TinyPeriodRunTests {
    @Test func runRefusesATinyPeriodWithItsPosition() async throws {
        let fixture = try AgentFixture(label: "tiny-period")
        try fixture.writeConfig(url: "http://127.0.0.1:9")
        try fixture.writeRules("rules:\n  - id: t\n    every: 0.00001ms\n    then: [{log: stdout}]\n")
        let agent = try fixture.startAgent()
        defer { agent.signal(SIGKILL) }
        let status = await agent.waitForExit(timeout: .seconds(20))
        #expect(status != nil && status != 0)
        let messages = agent.logLines.compactMap { $0["message"] as? String }
        #expect(messages.contains { $0.contains("main.yaml:3:12: error: every: \"0.00001ms\" is shorter than 1s, the shortest period") },
                "\(messages)")
    }
}
