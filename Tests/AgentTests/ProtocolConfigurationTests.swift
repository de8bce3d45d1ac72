import Agent
import Foundation
import SocketIO
import TestSupport
import Testing

/// `server.protocol`: auto (default), 4 or 3.
struct ProtocolConfigurationTests {
    func load(_ text: String) throws -> AgentConfiguration {
        let dir = try TestPaths.temporaryDirectory("config")
        let path = dir + "/agent.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: ["P": "3"])
    }

    @Test func defaultsToAutoAndReachesTheClient() throws {
        let c = try load("server: {url: http://h:1}\nrules: r\n")
        #expect(c.server.protocolVersion == .auto)
        #expect(c.clientConfiguration.protocolVersion == .auto)
    }

    @Test(arguments: [("auto", ProtocolVersion.auto), ("4", .v4), ("3", .v3), ("\"3\"", .v3), ("\"${P}\"", .v3)])
    func readsEachValue(text: String, expected: ProtocolVersion) throws {
        let c = try load("server: {url: http://h:1, protocol: \(text)}\nrules: r\n")
        #expect(c.server.protocolVersion == expected)
        #expect(c.clientConfiguration.protocolVersion == expected)
    }

    @Test func refusesOtherValuesAtTheirPosition() throws {
        do {
            _ = try load("server:\n  url: http://h:1\n  protocol: 2\nrules: r\n")
            Issue.record("expected an error")
        } catch let error as ConfigErrors {
            let lines = error.errors.map { "\($0.line):\($0.column): \($0.message)" }
            #expect(lines == ["3:13: server.protocol must be auto, 4 or 3, not '2'"])
        }
    }
}
