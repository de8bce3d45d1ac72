import Agent
import Foundation
import SocketIO
import TestSupport
import Testing

/// dist/sioagent.service: the limits set deliberately, and valid for systemd itself.
struct SystemdUnitTests {
    private var unit: String {
        get throws { try String(contentsOfFile: TestPaths.packageRoot + "/dist/sioagent.service", encoding: .utf8) }
    }

    private func values(_ key: String, in text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            line.hasPrefix(key + "=") ? String(line.dropFirst(key.count + 1)) : nil
        }
    }

    @Test func theUnitBoundsRestartsTasksDescriptorsMemoryAndProc() throws {
        let text = try unit
        let expected: [String: String] = [
            "StartLimitIntervalSec": "0", "StartLimitBurst": "5", "RestartSec": "5s", "TasksMax": "64", "LimitNOFILE": "1024",
            "ProtectProc": "invisible", "ProcSubset": "pid", "PrivateIPC": "yes", "MemoryMax": "128M", "UMask": "0077",
            "StateDirectoryMode": "0700",
        ]
        for (key, value) in expected {
            #expect(values(key, in: text) == [value], "\(key)")
        }
        // StartLimit* belong to [Unit], the rest to [Service].
        let unitSection = text.components(separatedBy: "[Service]")[0]
        #expect(unitSection.contains("\nStartLimitIntervalSec=0\n"))
        // Secrets through credentials, not the environment.
        #expect(text.contains("LoadCredential=device_token:/etc/sioagent/credentials/device_token"))
        // The config must be readable by the dynamic user.
        #expect(text.contains("install -m 0644 examples/agent.yaml /etc/sioagent/agent.yaml"))
        #expect(!text.contains("install -m 0640"))
    }

    @Test func systemdAcceptsTheUnit() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
            Issue.record("systemd-analyze is not installed (apt-get install systemd; .ci/run installs it)")
            return
        }
        // The unit as installed, pointing at a binary that exists here.
        let dir = try TestPaths.temporaryDirectory("unit")
        let text = try unit.replacingOccurrences(of: "/usr/local/bin/sioagent", with: try TestPaths.sioagent)
        try text.write(toFile: dir + "/sioagent.service", atomically: true, encoding: .utf8)
        let verify = try ChildProcess("/usr/bin/systemd-analyze", ["verify", dir + "/sioagent.service"], name: "systemd-analyze")
        let status = await verify.waitForExit(timeout: .seconds(30))
        #expect(status == 0, "\(verify.stderrLines)")
        #expect(verify.stderrLines.filter { !$0.isEmpty }.isEmpty, "\(verify.stderrLines)")
    }

    @Test func aCredentialIsReadFromTheCredentialsDirectory() throws {
        let dir = try TestPaths.temporaryDirectory("credentials")
        try "s3cret\n".write(toFile: dir + "/device_token", atomically: true, encoding: .utf8)
        let path = dir + "/agent.yaml"
        try """
            server:
              url: http://127.0.0.1:3000
              namespaces:
                /: {auth: {token: "${credential:device_token}"}}
            rules: rules
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let c = try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: ["CREDENTIALS_DIRECTORY": dir])
        #expect(c.server.namespaces["/"] == .some(.some(["token": "s3cret"])))

        // Missing: an error at the column of `${`.
        do {
            _ = try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: [:])
            Issue.record("a missing credential was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("CREDENTIALS_DIRECTORY is not set"), "\(text)")
            #expect(text.contains(":4:"), "\(text)")
        }
    }

    /// dist/agent.yaml, the package's /etc/sioagent/agent.yaml: it loads, and it points the agent
    /// at the notebook's server, the packaged rules and the directories the package creates.
    @Test func thePackagedConfigurationLoads() throws {
        let path = TestPaths.packageRoot + "/dist/agent.yaml"
        let c = try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: [:])
        #expect(c.server.url == "http://127.0.0.1:3000")
        #expect(c.rules == "/etc/sioagent/rules")
        #expect(c.spool.dir == "/var/lib/sioagent/spool")
        #expect(c.commands.cwd == "/var/log/sioagent")
        // An unreachable server is retried forever, and the agent never exits for it: no restart loop.
        #expect(c.reconnection.attempts == 0)
        #expect(c.reconnection.whenExhausted == .retrySlowly)
    }
}
