import Agent
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Commands on glibc before 2.34 / 2.29 (issue 15, item 7): the fork/exec fallback, forced here,
/// gives the child descriptors 0-2 only and starts it in its working directory, with
/// `close_range` and, as on kernels before 5.9, without it.
@Suite(.timeLimit(.minutes(2)))
struct OlderSystemSpawnTests {
    func runner(closeRange: Bool, cwd: String) -> CommandRunner {
        CommandRunner.forkExec(
            closeRange: closeRange, maxConcurrent: 4, defaultTimeout: .seconds(20), killGrace: .seconds(2), workingDirectory: cwd,
            passEnvironment: ["PATH": "/usr/bin:/bin"])
    }

    /// The child's descriptors as `… N -> target` lines (its own listing's directory among them).
    static let probe = ["/bin/ls", "-ln", "/proc/self/fd"]

    @Test(arguments: [true, false])
    func theChildGetsOnlyItsThreeDescriptorsAndItsDirectory(closeRange: Bool) async throws {
        let dir = try TestPaths.temporaryDirectory("spawn-fallback")
        // Descriptors an agent thread may hold without close-on-exec (swift-nio's sockets).
        let leaked = open(dir + "/leak-marker", O_RDWR | O_CREAT, 0o600)
        let socketLeak = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(leaked); close(socketLeak) }
        #expect(leaked >= 3 && socketLeak >= 3)

        let outcome = await runner(closeRange: closeRange, cwd: dir).run(CommandSpec(argv: Self.probe, standardInput: Array("in".utf8)))
        #expect(outcome.status == "exited(0)", "\(outcome.status) \(outcome.standardError)")
        // "lr-x------ 1 0 0 64 Dec  7 01:40 3 -> /proc/1234/fd": the number and the target.
        let descriptors = outcome.standardOutput.split(separator: "\n").compactMap { line -> (Int, String)? in
            guard let arrow = line.range(of: " -> ") else { return nil }
            let number = line[..<arrow.lowerBound].split(separator: " ").last.flatMap { Int($0) }
            return number.map { ($0, String(line[arrow.upperBound...])) }
        }
        #expect(descriptors.map(\.0).sorted().prefix(3) == [0, 1, 2], "\(descriptors)")
        #expect(descriptors[0].1.hasPrefix("pipe:") && descriptors[1].1.hasPrefix("pipe:"), "\(descriptors)")
        // Beyond 0-2 only the directory `ls` itself is reading.
        for (number, target) in descriptors where number > 2 {
            #expect(target.hasSuffix("/fd"), "a descriptor leaked into the child: \(number) -> \(target)")
        }
        #expect(descriptors.count == 4, "\(descriptors)")
        #expect(!outcome.standardOutput.contains("leak-marker") && !outcome.standardOutput.contains("socket:"))
        let cwd = await runner(closeRange: closeRange, cwd: dir).run(CommandSpec(argv: ["/bin/pwd", "-P"]))
        #expect(cwd.standardOutput == (try resolved(dir)) + "\n")

        // A per-command directory wins, and one that does not exist is a failure in words.
        let sub = dir + "/sub"
        mkdir(sub, 0o700)
        let inSub = await runner(closeRange: closeRange, cwd: dir).run(CommandSpec(argv: ["/bin/pwd", "-P"], workingDirectory: sub))
        #expect(inSub.standardOutput == (try resolved(sub)) + "\n")
        let missing = await runner(closeRange: closeRange, cwd: dir).run(CommandSpec(argv: ["/bin/true"], workingDirectory: dir + "/nope"))
        #expect(missing.status == "failed to start: working directory \(dir)/nope: No such file or directory", "\(missing.status)")
        let noProgram = await runner(closeRange: closeRange, cwd: dir).run(CommandSpec(argv: [dir + "/no-such-program"]))
        #expect(noProgram.status.hasPrefix("failed to start: "), "\(noProgram.status)")
        #expect(noProgram.status.hasSuffix("No such file or directory"), "\(noProgram.status)")
    }

    @Test func theFallbackChildHasDefaultSignalsItsOwnGroupAndTheTimeoutStillKillsIt() async throws {
        let dir = try TestPaths.temporaryDirectory("spawn-fallback-signals")
        // SIGTERM is at its default action in the child: the timeout's SIGTERM ends it.
        let runner = CommandRunner.forkExec(
            closeRange: true, maxConcurrent: 2, defaultTimeout: .milliseconds(300), killGrace: .seconds(5), workingDirectory: dir,
            passEnvironment: ["PATH": "/usr/bin:/bin"])
        let start = ContinuousClock.now
        let outcome = await runner.run(CommandSpec(argv: ["/bin/sh", "-c", "echo $$ $(cut -d' ' -f5 /proc/$$/stat); exec sleep 30"]))
        #expect(outcome.status.hasPrefix("timed out after 0.3 seconds; terminated (SIGTERM)"), "\(outcome.status)")
        #expect(ContinuousClock.now - start < .seconds(4))
        let ids = outcome.standardOutput.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        #expect(ids.count == 2 && ids[0] == ids[1], "the child leads its own process group: \(ids)")
    }

    private func resolved(_ path: String) throws -> String {
        guard let p = realpath(path, nil) else { throw POSIXError(.ENOENT) }
        defer { free(p) }
        return String(cString: p)
    }
}
