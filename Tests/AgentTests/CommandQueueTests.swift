import Agent
import Foundation
import TestSupport
import Testing

/// The runner's queue bound, the E2BIG fallback, the exit detection used on kernels without
/// pidfd, and the `commands.max_queued` key.
@Suite(.timeLimit(.minutes(2)))
struct CommandQueueTests {
    @Test func aFullQueueDropsTheOldestWaitingCommand() async throws {
        let dir = try TestPaths.temporaryDirectory("queue")
        let runner = CommandRunner(
            maxConcurrent: 1, maxQueued: 2, defaultTimeout: .seconds(30), killGrace: .seconds(1), workingDirectory: dir,
            passEnvironment: ["PATH": "/usr/bin:/bin"])
        // The first command holds the only slot until the file `go` exists.
        let blocker = Task { await runner.run(CommandSpec(argv: ["/bin/sh", "-c", "while [ ! -e go ]; do sleep 0.02; done"])) }
        try await waitFor("the blocker to run") { await runner.load == (1, 0) }
        var queued: [Task<CommandOutcome, Never>] = []
        for i in 0..<4 {
            queued.append(Task { await runner.run(CommandSpec(argv: ["/bin/sh", "-c", "echo \(i) >> ran"])) })
            // Queued in this order: wait until each one waits (or pushed the oldest out).
            try await waitFor("command \(i) to queue") { await runner.load.waiting == min(i + 1, 2) }
        }
        _ = FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        #expect(await blocker.value.status == "exited(0)")
        var outcomes: [CommandOutcome] = []
        for task in queued { outcomes.append(await task.value) }
        #expect(outcomes.map(\.dropped) == [true, true, false, false])
        #expect(outcomes[0].status.hasPrefix("dropped"))
        #expect(try String(contentsOfFile: dir + "/ran", encoding: .utf8) == "2\n3\n")
        #expect(await runner.load == (0, 0))
    }

    @Test func maxQueuedIsReadFromTheConfiguration() throws {
        let dir = try TestPaths.temporaryDirectory("config-queue")
        try "server: {url: http://h:1}\nrules: r\ncommands: {max_queued: 7}\n".write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        let c = try AgentConfiguration.load(path: dir + "/a.yaml", overrides: AgentOverrides(), environment: [:])
        #expect(c.commands.maxQueued == 7)
        #expect(AgentConfiguration.Commands().maxQueued == 100)
    }

    @Test func aPayloadTooBigForTheEnvironmentGoesToStdinOnly() async {
        let runner = CommandRunner(maxConcurrent: 1, defaultTimeout: .seconds(30), killGrace: .seconds(1), workingDirectory: "/", passEnvironment: [:])
        let payload = String(repeating: "p", count: 200 * 1024)
        let spec = CommandSpec(
            argv: ["/bin/sh", "-c", "echo ${SIOAGENT_PAYLOAD:-unset} ${SIOAGENT_ARGS:-unset} $SMALL; wc -c"],
            environment: ["SIOAGENT_PAYLOAD": payload, "SIOAGENT_ARGS": "[\(payload)]", "SMALL": "kept"],
            standardInput: Array(payload.utf8), redundantEnvironment: ["SIOAGENT_PAYLOAD", "SIOAGENT_ARGS"])
        let outcome = await runner.run(spec)
        #expect(outcome.status == "exited(0)")
        #expect(outcome.standardOutput == "unset unset kept\n\(200 * 1024)\n")
        #expect(outcome.warnings.count == 1)
        #expect(outcome.warnings.first?.contains("SIOAGENT_ARGS and SIOAGENT_PAYLOAD not set") == true)
    }

    /// The same children with exits found by polling waitid, as on kernels before 5.3.
    @Test func withoutPidfdExitsTimeoutsAndGrandchildrenAreStillHandled() async throws {
        let runner = CommandRunner.polling(
            maxConcurrent: 4, defaultTimeout: .seconds(30), killGrace: .milliseconds(200), workingDirectory: "/",
            passEnvironment: ["PATH": "/usr/bin:/bin"])
        let big = [UInt8](repeating: 1, count: 1 << 20)
        #expect(await runner.run(CommandSpec(argv: ["/bin/sh", "-c", "exit 3"], standardInput: big)).status == "exited(3)")
        let start = ContinuousClock.now
        let held = await runner.run(CommandSpec(argv: ["/bin/sh", "-c", "sleep 300 & echo $!"]))
        #expect(held.status == "exited(0)")
        #expect(ContinuousClock.now - start < .seconds(5))
        try await waitUntilGone(try #require(Int32(held.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines))))
        let stubborn = await runner.run(CommandSpec(argv: ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"], timeout: .milliseconds(100)))
        #expect(stubborn.timedOut)
        #expect(stubborn.status.contains("SIGKILL"))
    }
}

/// Polls `condition` every 10 ms until it holds, for at most `timeout`.
func waitFor(_ what: String, timeout: Duration = .seconds(10), _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while await !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting for \(what)")
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}
