import Foundation
import SIOCore
import TestSupport
import Testing

/// Runs the built `sioagent` (next to the test bundle in the build products) and returns (status, stdout, stderr).
func sioagent(_ arguments: [String], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
    let binary = URL(fileURLWithPath: try TestPaths.sioagent)
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    process.currentDirectoryURL = packageRoot
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

func temporaryFile(_ name: String, _ text: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sioagent-rules-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite(.serialized)
struct CommandLineTests {
    @Test func checkAcceptsTheExampleRules() throws {
        let r = try sioagent(["check", "rules"])
        #expect(r.status == 0)
        #expect(r.out.hasPrefix("ok: "), "\(r.out)")
    }

    @Test func checkReportsEveryErrorWithPositionSourceAndCaret() throws {
        let path = try temporaryFile("bad.yaml", "rules:\n  - id: a\n    on: x\n    wehn: payload < 1\n    then:\n      - emitt: x\n")
        let r = try sioagent(["check", path])
        #expect(r.status == 1)
        #expect(r.out.contains("\(path):4:5: error: unknown key \"wehn\" in a rule; did you mean \"when\"?\n    wehn: payload < 1\n    ^\n"), "\(r.out)")
        #expect(r.out.contains("\(path):6:9: error: unknown action \"emitt\"; did you mean \"emit\"?"))
        #expect(r.out.hasSuffix("2 errors\n"))
    }

    @Test func checkPointsAtAnUnsupportedRegexConstruct() throws {
        let path = try temporaryFile("bad.yaml", "rules:\n  - id: a\n    on: x\n    when: 'payload matches \"ab(?=c)\"'\n    then: [{log: stdout}]\n")
        let r = try sioagent(["check", path])
        #expect(r.status == 1)
        #expect(r.out.contains("\(path):4:31: error: invalid regular expression \"ab(?=c)\": lookahead (?=…) (?!…) is not supported by matches\n"), "\(r.out)")
    }

    @Test func checkWritesJSONForEditors() throws {
        let path = try temporaryFile("bad.yaml", "rules:\n  - id: a\n    on: x\n    for: 2\n    then: [{log: stdout}]\n")
        let r = try sioagent(["check", "--format", "json", path])
        #expect(r.status == 1)
        let report = try JSONValue(parsing: r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report["valid"] == false)
        let d = try #require(report["diagnostics"]?[0])
        #expect(d["line"] == 4 && d["column"] == 10 && d["severity"] == "error")
        let ok = try sioagent(["check", "--format", "json", "rules"])
        #expect(ok.status == 0)
        #expect(try JSONValue(parsing: ok.out.trimmingCharacters(in: .whitespacesAndNewlines))["valid"] == true)
    }

    @Test func badUsageExitsTwo() throws {
        #expect(try sioagent(["check"]).status == 2)
        #expect(try sioagent(["check", "--format", "xml", "rules"]).status == 2)
        #expect(try sioagent(["check", "/no/such/path"]).status == 2)
        #expect(try sioagent(["test"]).status == 2)
        #expect(try sioagent(["replay", "/tmp/x.jsonl"]).status == 2)
    }

    @Test func testRunsTheExampleTests() throws {
        let r = try sioagent(["test", "rules"])
        #expect(r.status == 0, "\(r.out)")
        let last = r.out.split(separator: "\n").last.map(String.init)
        #expect(last?.hasSuffix(" passed, 0 failed") == true)
    }

    @Test func testReportsEachFailureWithNameLocationAndDiff() throws {
        let path = try temporaryFile("r.yaml", """
            rules:
              - id: low
                on: b
                when: payload < 20
                then: [{emit: alert, data: "{{ payload }}"}]
            tests:
              - name: passes
                events: [{at: 1s, event: b, args: [10]}]
                expect: [{at: 1s, rule: low, args: [10]}]
              - name: wrong value
                events: [{at: 1s, event: b, args: [10]}]
                expect:
                  - {at: 1s, rule: low, args: [11]}
              - name: one too many
                events: [{at: 1s, event: b, args: [10]}, {at: 2s, event: b, args: [5]}]
                expect:
                  - {at: 1s, rule: low}
            """)
        let r = try sioagent(["test", path])
        #expect(r.status == 1)
        #expect(r.out.contains("FAIL \(path):10:5: wrong value"), "\(r.out)")
        #expect(r.out.contains("✗ #1 expected (\(path):13:9): at=1s rule=\"low\" args=[11]"))
        #expect(r.out.contains("args: expected [11], got [10]"))
        #expect(r.out.contains("FAIL \(path):14:5: one too many"))
        #expect(r.out.contains("+ #2 unexpected: 2s low then emit alert [5]"))
        #expect(r.out.hasSuffix("1 passed, 2 failed\n"))
    }

    @Test func testFailsWhenRulesDoNotLoad() throws {
        let path = try temporaryFile("r.yaml", "rules:\n  - id: a\n    on: x\n    when: payload <\n    then: [{log: stdout}]\n")
        let r = try sioagent(["test", path])
        #expect(r.status == 1)
        #expect(r.out.contains("\(path):4:20: error:"))
    }

    @Test func replayPrintsPlannedActionsAndExplains() throws {
        let events = try temporaryFile("events.jsonl", """
            {"at": 0, "event": "batery", "args": [30]}
            {"at": 1, "event": "batery", "args": [15]}
            this is not json
            {"at": "2026-11-24T10:00:00Z", "event": "batery", "args": [26]}
            """)
        let r = try sioagent(["replay", "--rules", "rules/battery.yaml", events])
        #expect(r.status == 1)  // a malformed line
        #expect(r.err.contains("\(events):3: error: invalid JSON"))
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines == [
            #"{"at":1,"rule":"battery-low","phase":"then","action":"emit","namespace":"/","event":"alert","args":["battery low: 15%"]}"#,
            #"{"at":1,"rule":"battery-low","phase":"then","action":"log","path":"logs/battery.log","message":"battery low: 15%"}"#,
            #"{"at":1795514400,"rule":"battery-low","phase":"on_clear","action":"log","path":"logs/battery.log","message":"battery back to 26%"}"#,
        ])
        let explained = try sioagent(["replay", "--rules", "rules/battery.yaml", "--explain", "-"], stdin: "{\"at\": 0, \"event\": \"batery\", \"args\": [23]}\n")
        #expect(explained.status == 0)
        #expect(explained.out.contains(#""reason":"when: `payload` is 23, needed < 20""#), "\(explained.out)")
    }
}
