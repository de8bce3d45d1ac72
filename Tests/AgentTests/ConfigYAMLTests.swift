import Agent
import Foundation
import Rules
import TestSupport
import Testing

/// The configuration is read by the same YAML layer as rule files: the same scalar rule, the same
/// positioned errors, the same limits.
struct ConfigYAMLTests {
    func write(_ text: String) throws -> String {
        let dir = try TestPaths.temporaryDirectory("config-yaml")
        let path = dir + "/agent.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Every error of loading `text`, as "line:column: message".
    func errors(_ text: String) throws -> [String] {
        let path = try write(text)
        do {
            _ = try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: ["ON": "true"])
            return []
        } catch {
            return error.errors.map { "\($0.line):\($0.column): \($0.message)" }
        }
    }

    @Test func booleansAreTrueOrFalseAsInRuleFiles() throws {
        let base = "server: {url: http://h:1}\nrules: r\n"
        #expect(try errors(base + "watch_rules: yes\n") == ["3:14: watch_rules must be true or false, not 'yes' (YAML 1.2: write true or false)"])
        #expect(try errors(base + "commands: {allow_shell: on}\n") == ["3:25: commands.allow_shell must be true or false, not 'on' (YAML 1.2: write true or false)"])
        #expect(try errors(base + "watch_rules: 'true'\n") == ["3:14: watch_rules must be true or false, not 'true'"])
        let path = try write("server:\n  url: http://h:1\n  tls:\n    insecure: ${ON}\nrules: r\nwatch_rules: True\ncommands: {allow_shell: FALSE}\n")
        let c = try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: ["ON": "true"])
        #expect(c.watchRules == true)
        #expect(c.commands.allowShell == false)
        #expect(c.server.tls.insecure == true)
    }

    @Test func authPayloadsReadScalarsAsRuleFilesDo() throws {
        let path = try write(
            "server:\n  url: http://h:1\n  namespaces:\n    /d: {auth: {flag: yes, on: off, n: 3, t: true, z: ~, q: '3', s: \"${T}\"}}\nrules: r\n")
        let c = try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: ["T": "true"])
        let expected: JSONValue = .object(.init(uniqueKeysWithValues: [
            ("flag", .string("yes")), ("on", .string("off")), ("n", .number(3)), ("t", .bool(true)), ("z", .null),
            ("q", .string("3")), ("s", .string("true")),
        ]))
        #expect(c.server.namespaces["/d"] == .some(.some(expected)))
    }

    @Test func aProxyPasswordWithAnUnencodedSlashIsAPositionedError() throws {
        for (value, column) in [("http://bob:pa/ss@proxy.corp:3128", 23), ("'http://bob:pa/ss@proxy.corp:3128'", 24)] {
            let found = try errors("server:\n  url: http://h:1\n  proxy: \(value)\nrules: r\n")
            #expect(found.count == 1)
            #expect(found.first?.hasPrefix("3:\(column): server.proxy: ") == true, "\(found)")
            #expect(found.first?.contains("unencoded '/'") == true, "\(found)")
            #expect(found.first?.contains("pa/ss") == false, "the password shows: \(found)")
        }
    }

    @Test func duplicateKeysAndSyntaxErrorsArePositioned() throws {
        #expect(try errors("server: {url: http://h:1}\nrules: r\nrules: s\n") == ["2:1: invalid YAML: duplicate key \"rules\" in this mapping"])
        #expect(try errors("server:\n  url: [x\nrules: r\n") == ["3:6: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence that starts at line 2, column 8)"])
    }

    @Test func aliasBombIsAPositionedError() throws {
        var text = "server: {url: http://h:1}\nrules: r\nlog_files: {keep: 1}\nx0: &a0 [lol]\n"
        for i in 1...9 { text += "x\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        let found = try errors(text)
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("8:") == true, "\(found)")
        #expect(found.first?.hasSuffix("invalid YAML: aliases expand to more than 10000 nodes in this document") == true, "\(found)")
    }

    /// Sizes, durations and counts never overflow: past their range they are positioned errors.
    @Test func hugeNumbersAreRejectedWhereTheyAreWritten() throws {
        let found = try errors("""
            server: {url: http://h:1}
            rules: r
            log_files: {max_size: 9999999999999GiB, keep: 5000}
            shutdown: {timeout: 99999999999999999999s}
            spool: {max_items: 99999999999999999999}
            reconnection: {delay: 36501d}
            """)
        #expect(found == [
            "3:23: log_files.max_size: '9999999999999GiB' is larger than the largest size, 1TiB",
            "3:47: log_files.keep must be at most 1000, not '5000'",
            "4:21: shutdown.timeout: '99999999999999999999s' is longer than the longest duration, 36500d (100 years)",
            "5:20: spool.max_items must be at most 1000000000, not '99999999999999999999'",
            "6:23: reconnection.delay: '36501d' is longer than the longest duration, 36500d (100 years)",
        ])
        #expect(try errors("server: {url: http://h:1}\nrules: r\nlog_files: {max_size: 1024GiB}\n").isEmpty)
    }

    /// A reconnection delay of a few nanoseconds made ~1,200 attempts a second against the server.
    @Test func reconnectionDelaysHaveAFloor() throws {
        #expect(try errors("server: {url: http://h:1}\nrules: r\nreconnection: {delay: 0.00001ms, max_delay: 99ms}\n") == [
            "3:23: reconnection.delay must be at least 100ms",
            "3:45: reconnection.max_delay must be at least 100ms",
        ])
        #expect(try errors("server: {url: http://h:1}\nrules: r\nreconnection: {delay: 100ms, max_delay: 100ms}\n").isEmpty)
    }

    @Test func spoolInFlightIsFrom1To1024() throws {
        let base = "server: {url: http://h:1}\nrules: r\n"
        #expect(try errors(base + "spool: {in_flight: 0}\n") == ["3:20: spool.in_flight must be a whole number of at least 1, not '0'"])
        #expect(try errors(base + "spool: {in_flight: 1025}\n") == ["3:20: spool.in_flight must be at most 1024, not '1025'"])
        #expect(try errors(base + "spool: {in_flight: 4.5}\n") == ["3:20: spool.in_flight must be a whole number of at least 1, not '4.5'"])
        let path = try write(base + "spool: {in_flight: 1024}\n")
        let c = try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: [:])
        #expect(c.spool.inFlight == 1024)
        let defaults = try AgentConfiguration.load(path: try write(base), overrides: AgentOverrides(), environment: [:])
        #expect(defaults.spool.inFlight == 32)
    }
}
