import Testing

/// The command line itself (our own parser, Sources/sioagent/Arguments.swift): help, version,
/// usage errors with exit status 2, option spellings. Runs the built binary.
@Suite(.serialized)
struct CLIParsingTests {
    @Test func rootHelpListsEverySubcommand() throws {
        for arguments in [[], ["--help"], ["-h"], ["help"]] {
            let r = try sioagent(arguments)
            #expect(r.status == 0, "\(arguments)")
            for name in ["run", "check", "test", "replay", "listen", "emit"] {
                #expect(r.out.contains("\n  \(name) "), "\(arguments): \(r.out)")
            }
        }
    }

    @Test(arguments: [
        ("run", ["--config <config>", "--namespace <namespace>", "--dry-run", "--log-format <log-format>", "--record <record>"]),
        ("check", ["<paths>", "--format <format>", "(default: text)"]),
        ("test", ["<paths>"]),
        ("replay", ["<events>", "--rules <path>", "--explain"]),
        ("listen", ["<url>", "--namespace <namespace>", "--header <header>", "--transport <transport>", "--protocol <protocol-version>", "--ca-file <ca-file>", "--insecure", "--proxy <proxy>", "--count <count>", "--timeout <timeout>"]),
        ("emit", ["<url>", "<event>", "<json-args>", "--ack <duration>", "--wait <wait>", "--timeout <timeout>", "Exit codes:"]),
    ])
    func subcommandHelpNamesItsOptions(command: String, expected: [String]) throws {
        for arguments in [[command, "--help"], [command, "-h"], ["help", command]] {
            let r = try sioagent(arguments)
            #expect(r.status == 0, "\(arguments): \(r.err)")
            #expect(r.out.contains("USAGE: sioagent \(command)"), "\(r.out)")
            for text in expected {
                #expect(r.out.contains(text), "\(arguments): \(text) missing in\n\(r.out)")
            }
        }
    }

    @Test func versionPrintsTheVersion() throws {
        for arguments in [["--version"], ["check", "--version"]] {
            let r = try sioagent(arguments)
            #expect(r.status == 0)
            // The commit and date are "unknown" unless scripts/build-release recorded them.
            #expect(r.out.wholeMatch(of: /sioagent \d+\.\d+\.\d+ \(commit (?:[0-9a-f]{7,40}|unknown), built (?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|unknown)\)\n/) != nil, "\(r.out)")
        }
    }

    @Test(arguments: [
        ["frobnicate"],
        ["check", "--no-such-option", "rules"],
        ["check", "-x", "rules"],
        ["check", "--format"],
        ["check", "--format", "text", "--format", "json", "rules"],
        ["replay", "--explain=yes", "--rules", "rules", "-"],
        ["replay", "--rules", "rules", "a.jsonl", "b.jsonl"],
        ["listen"],
        ["listen", "http://127.0.0.1:1", "--count", "many"],
        ["listen", "http://127.0.0.1:1", "--protocol", "5"],
        ["emit", "http://127.0.0.1:1"],
        ["emit", "http://127.0.0.1:1", "x", "--timeout", "soon"],
        ["run", "--log-format", "xml"],
        ["run", "--log-level", "loud"],
    ])
    func badUsageExitsTwoWithTheUsageLine(arguments: [String]) throws {
        let r = try sioagent(arguments)
        #expect(r.status == 2, "\(arguments): \(r.err)")
        #expect(r.err.hasPrefix("Error: "), "\(arguments): \(r.err)")
        #expect(r.err.contains("\nUsage: sioagent "), "\(arguments): \(r.err)")
        #expect(r.out.isEmpty)
    }

    @Test func optionSpellingsAndRepeats() throws {
        // --name=value and --name value; a repeatable option; options after positionals.
        let a = try sioagent(["check", "--format=json", "rules"])
        #expect(a.status == 0, "\(a.err)")
        #expect(a.out.hasPrefix("{"), "\(a.out)")
        let b = try sioagent(["check", "rules", "--format", "json"])
        #expect(b.status == 0 && b.out == a.out)
        let c = try sioagent(["replay", "--rules", "rules/battery.yaml", "--rules", "rules/feedback.yaml", "-"],
                             stdin: "{\"at\": 0, \"event\": \"batery\", \"args\": [15]}\n")
        #expect(c.status == 0, "\(c.err)")
        #expect(c.out.contains("battery low: 15%"), "\(c.out)")
        // After --, everything is positional.
        let d = try sioagent(["check", "--", "--format"])
        #expect(d.status == 2)
        #expect(d.err.contains("no such file or directory: --format"), "\(d.err)")
    }
}
