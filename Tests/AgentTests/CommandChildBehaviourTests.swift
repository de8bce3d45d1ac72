import Agent
import Foundation
import TestSupport
import Testing

/// Children that misbehave, each run for real through the ``CommandRunner``: none of them may
/// trap, leak, hang or bloat the agent (issue 8, item 1).
@Suite(.timeLimit(.minutes(2)))
struct CommandChildBehaviourTests {
    func runner(max: Int = 4, timeout: Duration = .seconds(30), grace: Duration = .seconds(5)) -> CommandRunner {
        CommandRunner(
            maxConcurrent: max, defaultTimeout: timeout, killGrace: grace, workingDirectory: "/",
            passEnvironment: ["PATH": "/usr/bin:/bin"])
    }

    static let mebibyte = [UInt8](repeating: UInt8(ascii: "i"), count: 1 << 20)

    @Test func aChildThatExitsWithoutReadingStdinIsNormal() async {
        // 1 MiB does not fit in a pipe: the writer sees EPIPE once the shell is gone.
        let runner = self.runner(max: 8)
        let outcomes = await withTaskGroup(of: CommandOutcome.self) { group in
            for _ in 0..<40 {
                group.addTask { await runner.run(CommandSpec(argv: ["/bin/sh", "-c", "exit 0"], standardInput: Self.mebibyte)) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.count == 40)
        #expect(outcomes.allSatisfy { $0.status == "exited(0)" }, "\(outcomes.map(\.status))")
    }

    @Test func aChildThatReadsPartOfStdinThenExits() async {
        let outcome = await runner().run(CommandSpec(argv: ["/usr/bin/head", "-c", "10"], standardInput: Self.mebibyte))
        #expect(outcome.status == "exited(0)")
        #expect(outcome.standardOutput == "iiiiiiiiii")
    }

    @Test func aChildThatIgnoresStdinAndKeepsRunning() async {
        let outcome = await runner().run(CommandSpec(argv: ["/bin/sleep", "0.3"], standardInput: Self.mebibyte))
        #expect(outcome.status == "exited(0)")
    }

    @Test func aChildThatClosesStdoutEarly() async {
        let outcome = await runner().run(
            CommandSpec(argv: ["/bin/sh", "-c", "exec 1>&-; sleep 0.2; echo still here >&2; exit 4"], standardInput: Self.mebibyte))
        #expect(outcome.status == "exited(4)")
        #expect(outcome.standardError == "still here\n")
    }

    @Test func aChildWriting10MBNeitherBlocksNorBloats() async {
        let start = ContinuousClock.now
        let outcome = await runner().run(
            CommandSpec(argv: ["/bin/sh", "-c", "head -c 10000000 /dev/zero | tr '\\0' o; head -c 10000000 /dev/zero >&2"]))
        #expect(outcome.status == "exited(0)")
        #expect(outcome.standardOutput == String(repeating: "o", count: 1024))
        #expect(outcome.standardError.utf8.count == 1024)
        #expect(ContinuousClock.now - start < .seconds(20))
    }

    @Test func aGrandchildHoldingThePipesDoesNotHoldTheCommandAndDies() async throws {
        let start = ContinuousClock.now
        // The grandchild inherits stdout and stderr and would keep them open for 300 s.
        let outcome = await runner().run(CommandSpec(argv: ["/bin/sh", "-c", "sleep 300 & echo $!"]))
        #expect(outcome.status == "exited(0)")
        #expect(ContinuousClock.now - start < .seconds(5), "waited for the grandchild's EOF")
        let grandchild = try #require(Int32(outcome.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)))
        try await waitUntilGone(grandchild)
    }

    @Test func aTimeoutIgnoringSIGTERMGetsSIGKILLAndItsGroupDies() async throws {
        let dir = try TestPaths.temporaryDirectory("term-ignored")
        // The shell and its grandchild both ignore SIGTERM (an ignored signal stays ignored
        // across exec): only SIGKILL to the whole group ends them.
        let script = "trap '' TERM; sleep 300 & echo $! > \(dir)/grandchild; while :; do sleep 0.05; done"
        let start = ContinuousClock.now
        let outcome = await runner(grace: .milliseconds(300)).run(
            CommandSpec(argv: ["/bin/sh", "-c", script], timeout: .milliseconds(300)))
        #expect(outcome.timedOut)
        #expect(outcome.exitCode == nil)
        #expect(ContinuousClock.now - start >= .milliseconds(600))
        #expect(ContinuousClock.now - start < .seconds(10))
        let grandchild = try #require(Int32(try String(contentsOfFile: dir + "/grandchild", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        try await waitUntilGone(grandchild)
    }

    @Test func aTimeoutEndsTheGroupWithSIGTERMWhenThatSuffices() async throws {
        let start = ContinuousClock.now
        let outcome = await runner(grace: .seconds(20)).run(
            CommandSpec(argv: ["/bin/sh", "-c", "sleep 300 & sleep 300"], timeout: .milliseconds(200)))
        #expect(outcome.timedOut)
        #expect(ContinuousClock.now - start < .seconds(5), "SIGTERM did not end the group")
    }

    @Test(arguments: ["/nonexistent/program", "no-such-program-sioagent", "/etc/hostname", "/"])
    func aProgramThatCannotStartIsAnOutcome(program: String) async {
        let outcome = await runner().run(CommandSpec(argv: [program, "arg"], standardInput: Array("x".utf8)))
        #expect(outcome.exitCode == nil)
        #expect(outcome.status.hasPrefix("failed to start"), "\(outcome.status)")
    }

    @Test func aMissingWorkingDirectoryIsAnOutcome() async {
        let outcome = await runner().run(CommandSpec(argv: ["/bin/true"], workingDirectory: "/nonexistent/dir"))
        #expect(outcome.status.hasPrefix("failed to start"), "\(outcome.status)")
    }

    @Test func argvTooBigForTheKernelIsAnOutcomeNotACrash() async {
        let huge = String(repeating: "a", count: 200 * 1024)
        let outcome = await runner().run(CommandSpec(argv: ["/bin/echo", huge]))
        #expect(outcome.exitCode == nil)
        #expect(outcome.status.hasPrefix("failed to start"), "\(outcome.status)")
    }
}

/// Waits until `pid` is gone or a zombie (killed, waiting for its new parent to reap it).
func waitUntilGone(_ pid: Int32, timeout: Duration = .seconds(10)) async throws {
    let deadline = ContinuousClock.now + timeout
    while processState(pid).map({ $0 != "Z" }) ?? false {
        if ContinuousClock.now > deadline {
            kill(pid, SIGKILL)
            Issue.record("process \(pid) is still alive")
            return
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// The state letter from /proc/PID/stat (R, S, Z, …), or nil when there is no such process.
func processState(_ pid: Int32) -> String? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    return stat[stat.index(close, offsetBy: 2)...].split(separator: " ").first.map(String.init)
}
