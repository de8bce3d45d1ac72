@testable import Agent
import Foundation
import Rules
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Reloading rule files that are being written, and configuration made of symbolic links
/// (issue 15, items 3 and 4), with the real binary.
@Suite(.timeLimit(.minutes(3)))
struct ReloadEdgeTests {
    /// Every version changes `echo`; the last one also adds `final`.
    static func rules(_ version: Int, last: Bool = false) -> String {
        """
        rules:
          - id: tick
            every: 1s
            then: [{log: stdout, message: tick}]
          - id: echo
            on: ping
            then: [{log: stdout, message: "v\(version)"}]

        """ + (last ? "  - id: final\n    every: 1s\n    then: [{log: stdout, message: final}]\n" : "")
    }

    /// The ticks the dry run printed, as their times.
    static func ticks(_ agent: ChildProcess) -> [Double] {
        agent.stdoutLines.compactMap { line -> Double? in
            guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any], o["rule"] as? String == "tick" else { return nil }
            return o["at"] as? Double
        }
    }

    /// Writes `text` over `path` in place, as `>` does: truncated first, the text 0.3 s later.
    static func rewriteInPlace(_ path: String, _ text: String) async throws {
        let fd = open(path, O_WRONLY | O_TRUNC)
        #expect(fd >= 0)
        defer { close(fd) }
        try await Task.sleep(for: .milliseconds(300))
        let bytes = Array(text.utf8)
        #expect(write(fd, bytes, bytes.count) == bytes.count)
    }

    /// As editors save: the old file renamed to a backup, the new one written 0.3 s later.
    static func saveLikeAnEditor(_ path: String, _ text: String) async throws {
        #expect(rename(path, path + "~") == 0)
        try await Task.sleep(for: .milliseconds(300))
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        unlink(path + "~")
    }

    @Test func rewritesInPlaceMissNoTickAndRemoveNoRule() async throws {
        let fixture = try AgentFixture(label: "reload-in-place")
        // Nothing listens there; the dry run prints what the rules plan.
        try fixture.writeConfig(url: "http://127.0.0.1:9")
        try fixture.writeRules(Self.rules(0))
        let agent = try fixture.startAgent(["--dry-run"])
        defer { agent.signal(SIGKILL) }
        try await agent.waitFor("the first tick") { Self.ticks(agent).count >= 1 }
        let path = fixture.path("rules/main.yaml")
        for version in 1...8 {
            try await Self.rewriteInPlace(path, Self.rules(version))
            // The next write comes while the last one may still be settling.
            try await Task.sleep(for: .milliseconds(700))
        }
        for version in 9...10 {
            try await Self.saveLikeAnEditor(path, Self.rules(version, last: version == 10))
            try await Task.sleep(for: .milliseconds(700))
        }
        // The last version is what runs in the end.
        try await agent.waitFor("the last version") {
            agent.stdoutLines.contains { $0.contains(#""rule":"final""#) }
        }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)

        let reloads = agent.logged("rules reloaded")
        #expect(!reloads.isEmpty)
        for reload in reloads {
            #expect(jsonText(reload["rules.removed"] ?? []) == "[]", "a rule was removed: \(reload)")
            let added = jsonText(reload["rules.added"] ?? [])
            #expect(added == "[]" || added == #"["final"]"#, "a rule came back: \(reload)")
        }
        #expect(agent.logged("reload failed; keeping the running rules").isEmpty)
        let ticks = Self.ticks(agent)
        #expect(ticks.count >= 9, "\(ticks)")
        for (a, b) in zip(ticks, ticks.dropFirst()) {
            #expect(abs(b - a - 1) < 0.01, "a tick was missed or moved between \(a) and \(b)")
        }
    }

    @Test func anOlderReadingThatCompilesLastDoesNotReplaceANewerOne() async throws {
        // The watcher starts compiling a large version; meanwhile the file gets a small final
        // version and SIGHUP reloads it at once. The large one finished last and replaced it,
        // and the watcher, which saw the final file as loaded, never corrected it: 3000 rules
        // ran while the file held 1.
        let fixture = try AgentFixture(label: "reload-race")
        try fixture.writeConfig(url: "http://127.0.0.1:9")
        try fixture.writeRules(Self.rules(0))
        let agent = try fixture.startAgent(["--dry-run"])
        defer { agent.signal(SIGKILL) }
        try await agent.waitFor("the rules to load") { !agent.logged("rules loaded").isEmpty }
        var big = "rules:\n"
        for i in 0..<3000 { big += "  - id: big\(i)\n    on: e\(i)\n    when: payload > \(i)\n    then: [{log: stdout, message: 'b{{ payload }}'}]\n" }
        let path = fixture.path("rules/main.yaml")
        try big.write(toFile: path, atomically: true, encoding: .utf8)
        try await agent.waitFor("the watcher to start reloading") { !agent.logged("rule files changed; reloading").isEmpty }
        try "rules:\n  - id: final\n    on: f\n    then: [{log: stdout}]\n".write(toFile: path, atomically: true, encoding: .utf8)
        agent.signal(SIGHUP)
        let superseded = "a newer reading of the rule files was loaded meanwhile; this one is not used"
        try await agent.waitFor("both reloads to end", timeout: .seconds(60)) {
            agent.logged("rules reloaded").count + agent.logged(superseded).count >= 2
        }
        // What runs is the file's last version.
        let last = try #require(agent.logged("rules reloaded").last)
        #expect(jsonText(last["rules.added"] ?? []) == #"["final"]"#, "\(last)")
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// The Kubernetes ConfigMap layout: every file a link into `..data`, itself a link to a
    /// timestamped directory that an update replaces by renaming a new link over `..data`.
    static func makeConfigMap(_ dir: String, version: String, files: [String: String]) throws {
        let fm = FileManager.default
        let data = dir + "/.." + version
        try fm.createDirectory(atPath: data, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(toFile: data + "/" + name, atomically: true, encoding: .utf8) }
        for name in files.keys where (try? fm.destinationOfSymbolicLink(atPath: dir + "/" + name)) == nil {
            try fm.createSymbolicLink(atPath: dir + "/" + name, withDestinationPath: "..data/" + name)
        }
        try fm.createSymbolicLink(atPath: dir + "/..data_tmp", withDestinationPath: ".." + version)
        #expect(rename(dir + "/..data_tmp", dir + "/..data") == 0)
    }

    @Test func aConfigMapStartsAndItsSwapIsReloaded() async throws {
        let base = try TestPaths.temporaryDirectory("configmap")
        let config = """
            server: {url: "http://127.0.0.1:9", transports: [websocket]}
            reconnection: {delay: 200ms, max_delay: 1s}
            rules: \(base)/rules
            spool: {dir: \(base)/spool}
            commands: {cwd: \(base), pass_env: [PATH]}
            log: {format: json, level: debug}

            """
        try Self.makeConfigMap(base + "/config", version: "2026_01_01_00_00_00.1", files: ["agent.yaml": config])
        let a = "rules:\n  - id: a\n    on: x\n    then: [{log: stdout, message: a1}]\n"
        try Self.makeConfigMap(base + "/rules", version: "2026_01_01_00_00_00.1", files: ["a.yaml": a])
        let agent = try ChildProcess(
            try TestPaths.sioagent, ["run", "--dry-run", "--config", base + "/config/agent.yaml"], directory: base, name: "sioagent")
        defer { agent.signal(SIGKILL) }
        try await agent.waitFor("the rules to load") { !agent.logged("rules loaded").isEmpty }
        #expect(agent.logged("rules loaded").first?["rules.count"] as? String == "1")

        // An update: a changed and a new key, swapped in at once.
        let a2 = "rules:\n  - id: a\n    on: x\n    then: [{log: stdout, message: a2}]\n"
        let b = "rules:\n  - id: b\n    on: y\n    then: [{log: stdout}]\n"
        try Self.makeConfigMap(base + "/rules", version: "2026_01_01_00_05_00.2", files: ["a.yaml": a2, "b.yaml": b])
        try await agent.waitFor("the reload") { !agent.logged("rules reloaded").isEmpty }
        let reload = try #require(agent.logged("rules reloaded").first)
        #expect(jsonText(reload["rules.added"] ?? []) == #"["b"]"#)
        #expect(jsonText(reload["rules.changed"] ?? []) == #"["a"]"#)
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test func readsFollowLinksButWhatTheAgentOwnsDoesNot() throws {
        let dir = try TestPaths.temporaryDirectory("links")
        try "rules: []\n".write(toFile: dir + "/target.yaml", atomically: true, encoding: .utf8)
        #expect(symlink(dir + "/target.yaml", dir + "/link.yaml") == 0)
        #expect(try readLinkedFile(dir + "/link.yaml") == Array("rules: []\n".utf8))
        // Spool and state files: never through a link.
        #expect((try? readFile(dir + "/link.yaml")) == nil)
        #expect((try? createExclusive(dir + "/link.yaml")) == nil)
        // A rules path that is itself a link to a directory of links.
        #expect(symlink(dir, dir + "/dirlink") == 0)
        #expect(RuleFilesSnapshot.read(paths: [dir + "/dirlink"]).sources.map(\.path) == [dir + "/dirlink/link.yaml", dir + "/dirlink/target.yaml"])
    }
}

/// The settling rule of reloads, as a value.
struct RulesWatchTests {
    func snapshot(_ text: String) -> RuleFilesSnapshot {
        var s = RuleFilesSnapshot()
        s.sources = [RuleSource(path: "r.yaml", text: text)]
        return s
    }

    @Test func aChangeIsLoadedOnlyOnceTwoReadingsHalfASecondApartAgree() {
        var watch = RulesWatch(loaded: snapshot("v1"))
        #expect(watch.observe(snapshot("v1"), at: 0) == nil)
        // Truncated, then written 0.3 s later, then read again.
        #expect(watch.observe(snapshot(""), at: 1) == nil)
        #expect(watch.observe(snapshot(""), at: 1.25) == nil)
        #expect(watch.observe(snapshot("v2"), at: 1.5) == nil)
        #expect(watch.observe(snapshot("v2"), at: 1.75) == nil)
        #expect(watch.observe(snapshot("v2"), at: 2.0) == snapshot("v2"))
        #expect(watch.observe(snapshot("v2"), at: 2.25) == nil)
        // Back to what is loaded: nothing to do.
        #expect(watch.observe(snapshot("v3"), at: 3) == nil)
        #expect(watch.observe(snapshot("v2"), at: 3.25) == nil)
        #expect(watch.observe(snapshot("v2"), at: 4) == nil)
        // SIGHUP loaded v4 meanwhile: the watcher does not load it again.
        #expect(watch.observe(snapshot("v4"), at: 5) == nil)
        watch.loaded(snapshot("v4"))
        #expect(watch.observe(snapshot("v4"), at: 6) == nil)
    }

    @Test func readingsAgreeOnlyWhenTheFilesWereNotRewrittenBetweenThem() {
        // A loop of `: > f; cat four > f` looked at every 250 ms: the same text read twice 0.5 s
        // apart, but rewritten in between (other stamps), is not settled. Once seen with an
        // empty file, this removed every rule for a moment.
        var watch = RulesWatch(loaded: snapshot("v1"))
        #expect(watch.observe(snapshot("four"), stamps: ["f 1"], at: 0) == nil)
        #expect(watch.observe(snapshot("four"), stamps: ["f 2"], at: 0.25) == nil)
        #expect(watch.observe(snapshot("four"), stamps: ["f 3"], at: 0.5) == nil)
        #expect(watch.observe(snapshot(""), stamps: ["f 4"], at: 0.75) == nil)
        #expect(watch.observe(snapshot(""), stamps: ["f 5"], at: 1.25) == nil)
        // Writing stopped: the same text and stamps for 0.5 s.
        #expect(watch.observe(snapshot("five"), stamps: ["f 6"], at: 1.5) == nil)
        #expect(watch.observe(snapshot("five"), stamps: ["f 6"], at: 1.75) == nil)
        #expect(watch.observe(snapshot("five"), stamps: ["f 6"], at: 2.0) == snapshot("five"))
    }
}
