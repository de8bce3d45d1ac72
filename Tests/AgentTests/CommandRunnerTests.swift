import Agent
import Foundation
import TestSupport
import Testing

struct CommandRunnerTests {
    func runner(max: Int = 4, grace: Duration = .seconds(5)) -> CommandRunner {
        CommandRunner(maxConcurrent: max, defaultTimeout: .seconds(30), killGrace: grace, workingDirectory: "/", passEnvironment: ["PATH": "/usr/bin:/bin"])
    }

    @Test func capturesExitCodeAndTheFirstKiBOfOutput() async {
        let outcome = await runner().run(CommandSpec(argv: ["/bin/sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a; echo oops >&2; exit 3"]))
        #expect(outcome.exitCode == 3)
        #expect(outcome.status == "exited(3)")
        #expect(outcome.standardOutput == String(repeating: "a", count: 1024))
        #expect(outcome.standardError == "oops\n")
    }

    @Test func passesOnlyTheChosenEnvironmentAndStdin() async {
        setenv("SIOAGENT_TEST_SECRET", "hidden", 1)
        let outcome = await runner().run(
            CommandSpec(argv: ["sh", "-c", "echo \"$X|$SIOAGENT_TEST_SECRET|$(cat)\""], environment: ["X": "y"], standardInput: Array("in".utf8)))
        #expect(outcome.standardOutput == "y||in\n")
    }

    @Test func timeoutSendsSIGTERMThenSIGKILLAfterTheGrace() async throws {
        let dir = try TestPaths.temporaryDirectory("timeout")
        // Traps SIGTERM (records it) and keeps running: only SIGKILL ends it.
        let script = "trap 'echo term > \(dir)/got-term' TERM; while :; do sleep 0.05; done"
        let start = ContinuousClock.now
        let outcome = await runner(grace: .milliseconds(500)).run(CommandSpec(argv: ["/bin/sh", "-c", script], timeout: .milliseconds(300)))
        let elapsed = ContinuousClock.now - start
        #expect(outcome.timedOut)
        #expect(FileManager.default.fileExists(atPath: dir + "/got-term"))
        #expect(elapsed >= .milliseconds(700))
        #expect(elapsed < .seconds(60))  // it ended: SIGKILL came after the grace
    }

    @Test func runsAtMostNAtOnceAndQueuesTheRest() async throws {
        let dir = try TestPaths.temporaryDirectory("limit")
        let runner = self.runner(max: 2)
        // Each command records how many run at that moment (a file per running command).
        let script = "touch \(dir)/run.$$; ls \(dir) | grep -c '^run' >> \(dir)/counts; sleep 0.3; rm \(dir)/run.$$"
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<6 { group.addTask { _ = await runner.run(CommandSpec(argv: ["/bin/sh", "-c", script])) } }
        }
        let counts = try String(contentsOfFile: dir + "/counts", encoding: .utf8).split(separator: "\n").compactMap { Int($0) }
        #expect(counts.count == 6)
        #expect(counts.max()! <= 2)
    }

    @Test func aMissingProgramIsAnOutcomeNotACrash() async {
        let outcome = await runner().run(CommandSpec(argv: ["/nonexistent/program"]))
        #expect(outcome.exitCode == nil)
        #expect(outcome.status.hasPrefix("failed to start"))
    }
}
