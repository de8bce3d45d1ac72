import Agent
import Foundation
import TestSupport
import Testing

struct ConfigurationTests {
    func write(_ text: String) throws -> String {
        let dir = try TestPaths.temporaryDirectory("config")
        let path = dir + "/agent.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func readsEveryKeyOfTheDocumentedFile() throws {
        let path = try write(
            """
            server:
              url: http://127.0.0.1:3000
              path: /socket.io/
              transports: [websocket]
              namespaces:
                /: {}
                /devices: {auth: {token: "${DEVICE_TOKEN}"}}
              headers: {X-Device-Id: pump-7}
              tls: {ca_file: /etc/sioagent/ca.pem, insecure: false}
            reconnection: {delay: 2s, max_delay: 10s, randomization: 0.25, attempts: 7}
            rules: rules
            spool: {dir: /var/lib/sioagent/spool, max_items: 50}
            commands: {timeout: 30s, max_concurrent: 2, allow_shell: false, cwd: /, pass_env: [PATH, LANG]}
            log: {format: text, level: debug}
            """)
        let c = try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: ["DEVICE_TOKEN": "s3cret"])
        #expect(c.server.url == "http://127.0.0.1:3000")
        #expect(c.server.transports == .websocket)
        #expect(c.server.namespaces["/devices"] == .some(.some(["token": "s3cret"])))
        #expect(c.server.namespaces["/"] == .some(nil))
        #expect(c.server.headers.map { "\($0.name)=\($0.value)" } == ["X-Device-Id=pump-7"])
        #expect(c.server.tls.caFile == "/etc/sioagent/ca.pem")
        #expect(c.reconnection.delay == .seconds(2))
        #expect(c.reconnection.maxDelay == .seconds(10))
        #expect(c.reconnection.randomization == 0.25)
        #expect(c.reconnection.attempts == 7)
        #expect(c.rules == (path as NSString).deletingLastPathComponent + "/rules")
        #expect(c.spool.dir == "/var/lib/sioagent/spool")
        #expect(c.spool.maxItems == 50)
        #expect(c.commands.maxConcurrent == 2)
        #expect(c.commands.allowShell == false)
        #expect(c.log.format == .text)
        #expect(c.log.level == "debug")
    }

    @Test func unsetVariableIsAnErrorAtItsColumnUnlessItHasADefault() throws {
        let path = try write(
            """
            server:
              url: http://h:1
              headers: {A: "x-${MISSING}", B: "${ALSO:-fallback}"}
            rules: r
            """)
        do {
            _ = try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect(error.errors.count == 1)
            let e = error.errors[0]
            #expect(e.line == 3)
            #expect(e.column == 19)  // the `$` of ${MISSING}, inside the quotes
            #expect(e.description.hasPrefix("\(path):3:19: error: environment variable MISSING is not set"))
            #expect(e.description.hasSuffix("\n                  ^"))
        }
        let ok = try AgentConfiguration.load(
            path: path, overrides: AgentOverrides(), environment: ["MISSING": "m"])
        #expect(ok.server.headers.map(\.value) == ["x-m", "fallback"])
    }

    @Test func reportsEveryProblemWithItsPositionAndSuggestions() throws {
        let path = try write(
            """
            server:
              url: ftp://h
              transprots: [websocket]
            reconnection: {delay: soon}
            rules: r
            spool: {max_items: -1}
            """)
        do {
            _ = try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: [:])
            Issue.record("expected errors")
        } catch {
            let lines = error.errors.map { "\($0.line):\($0.column): \($0.message)" }
            #expect(lines.contains("2:8: server.url must start with http://, https://, ws:// or wss://"))
            #expect(lines.contains("3:3: unknown key 'transprots' in server; did you mean 'transports'?"))
            #expect(lines.contains { $0.hasPrefix("4:23: reconnection.delay: 'soon' is not a duration") })
            #expect(lines.contains { $0.hasPrefix("6:20: spool.max_items must be a whole number of at least 1") })
        }
    }

    @Test func limitsAreReadAndRanged() throws {
        let ok = try AgentConfiguration.load(
            path: try write("server: {url: http://h}\nrules: r\nlimits: {window_samples: 5000, key_bytes: 16MiB}\n"),
            overrides: AgentOverrides(), environment: [:])
        #expect(ok.maxWindowSamples == 5000)
        #expect(ok.maxKeyBytes == 16 << 20)
        let plain = try AgentConfiguration.load(path: try write("server: {url: http://h}\nrules: r\n"), overrides: AgentOverrides(), environment: [:])
        #expect(plain.maxKeyBytes == 8 << 20)
        let small = try write("server: {url: http://h}\nrules: r\nlimits: {key_bytes: 4KiB}\n")
        do {
            _ = try AgentConfiguration.load(path: small, overrides: AgentOverrides(), environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect(error.errors.map(\.message) == ["limits.key_bytes must be within 1MiB and 1GiB, not '4096' bytes"])
        }
        // Zero is out of range, not "not a size".
        let zero = try write("server: {url: http://h}\nrules: r\nlimits: {key_bytes: 0}\nspool: {max_memory: 0KiB}\nlog_files: {max_size: 0}\n")
        do {
            _ = try AgentConfiguration.load(path: zero, overrides: AgentOverrides(), environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect(
                error.errors.map(\.message) == [
                    "limits.key_bytes must be within 1MiB and 1GiB, not '0' bytes", "spool.max_memory must be within 64KiB and 1GiB, not '0' bytes",
                    "log_files.max_size must be at least 1 byte, not '0' bytes",
                ])
        }
    }

    @Test func brokenYAMLIsAPositionedError() throws {
        let path = try write("server:\n  url: [unclosed\nrules: r\n")
        #expect {
            try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: [:])
        } throws: { error in
            let e = (error as! ConfigErrors).errors[0]
            return e.line >= 2 && e.message.hasPrefix("invalid YAML")
        }
    }

    @Test func flagsBeatEnvironmentWhichBeatsTheFile() throws {
        let path = try write("server: {url: http://file:1}\nrules: from-file\nlog: {level: info}\n")
        let env = ["SIOAGENT_URL": "http://env:2", "SIOAGENT_LOG_LEVEL": "warning", "SIOAGENT_DRY_RUN": "true"]
        var flags = AgentOverrides()
        flags.url = "http://flag:3"
        let merged = try AgentOverrides.fromEnvironment(env).overridden(by: flags)
        let c = try AgentConfiguration.load(path: path, overrides: merged, environment: env)
        #expect(c.server.url == "http://flag:3")
        #expect(c.log.level == "warning")
        #expect(c.dryRun)
        #expect(c.rules.hasSuffix("/from-file"))
        // Defaults fill the rest.
        #expect(c.spool.maxItems == 10_000)
        #expect(c.commands.timeout == .seconds(30))
    }

    @Test func worksWithoutAFileFromFlagsAlone() throws {
        var flags = AgentOverrides()
        flags.url = "ws://h:1"
        flags.rules = "rules"
        flags.namespaces = ["devices", "/"]
        let c = try AgentConfiguration.load(path: nil, overrides: flags, environment: ["STATE_DIRECTORY": "/var/lib/sioagent"])
        #expect(c.server.namespaces.keys.sorted() == ["/", "/devices"])
        #expect(c.spool.dir == "/var/lib/sioagent/spool")
        #expect(throws: ConfigErrors.self) { try AgentConfiguration.load(path: nil, overrides: AgentOverrides(), environment: [:]) }
    }
}
