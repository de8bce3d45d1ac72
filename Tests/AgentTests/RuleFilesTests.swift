import Agent
import Foundation
import Rules
import TestSupport
import Testing

/// Finding and reading rule files (the agent's side; `Rules` itself only compiles texts).
struct RuleFilesTests {
    @Test func loadsDirectoriesAndTestFilesBesideRules() throws {
        let (set, diagnostics) = RuleSet.load(paths: [TestPaths.packageRoot + "/rules"], environment: [:])
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let s = try #require(set)
        #expect(s.ruleIDs.contains("battery-low"))
        #expect(s.ruleIDs.contains("feedback-ok"))
        #expect(!s.tests.isEmpty)
    }

    @Test func searchesRecursivelyInNameOrderSkippingDotNamesAndLoops() throws {
        let dir = try TestPaths.temporaryDirectory("rule-files")
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/b", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir + "/.hidden", withIntermediateDirectories: true)
        for path in ["/b/z.yml", "/a.yaml", "/.dot.yaml", "/.hidden/x.yaml", "/notes.txt"] {
            try "rules: []\n".write(toFile: dir + path, atomically: true, encoding: .utf8)
        }
        // A link back to the directory itself is searched once, not forever.
        try fm.createSymbolicLink(atPath: dir + "/b/loop", withDestinationPath: dir)
        #expect(RuleSet.yamlFiles(in: dir) == [dir + "/a.yaml", dir + "/b/z.yml"])
    }

    @Test func testFileBringsItsRulesFileAndUnreadableFilesAreErrors() throws {
        let dir = try TestPaths.temporaryDirectory("rule-files")
        try "rules:\n  - id: a\n    on: x\n    then: [{log: stdout}]\n".write(toFile: dir + "/r.yml", atomically: true, encoding: .utf8)
        try "tests:\n  - name: t\n    events: [{at: 1s, event: x}]\n    expect: [{at: 1s, rule: a}]\n".write(toFile: dir + "/r.test.yaml", atomically: true, encoding: .utf8)
        let (set, diagnostics) = RuleSet.load(paths: [dir + "/r.test.yaml"], environment: [:])
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        #expect(set?.tests.first?.rulesFile == dir + "/r.yml")

        try Data([0x72, 0x3A, 0xFF, 0x0A]).write(to: URL(fileURLWithPath: dir + "/bad.yaml"))
        let (none, problems) = RuleSet.load(paths: [dir + "/bad.yaml", dir + "/missing.yaml"], environment: [:])
        #expect(none == nil)
        #expect(problems.map(\.description) == [
            "\(dir)/missing.yaml: error: no such file or directory", "\(dir)/bad.yaml: error: the file is not UTF-8 text",
        ])
    }
}
