import Agent
import Foundation
import TestSupport
import Testing

/// 100 commands a second for 30 s through one ``CommandRunner``, mixing every child behaviour
/// of issue 8 item 1. Afterwards the process has as many descriptors and threads as before, and
/// no child of it is left a zombie. Prints the figures.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct CommandSoakTests {
    struct Behaviour: Sendable {
        var name: String
        var spec: CommandSpec
        var expected: @Sendable (CommandOutcome) -> Bool
    }

    static func behaviours(_ dir: String) -> [Behaviour] {
        let stdin = [UInt8](repeating: UInt8(ascii: "s"), count: 100 * 1024)
        func sh(_ script: String, input: [UInt8]? = nil, timeout: Duration? = nil) -> CommandSpec {
            CommandSpec(argv: ["/bin/sh", "-c", script], timeout: timeout, standardInput: input)
        }
        return [
            Behaviour(name: "exits without reading stdin", spec: sh("exit 0", input: stdin)) { $0.status == "exited(0)" },
            Behaviour(name: "ignores stdin", spec: sh("sleep 0.05", input: stdin)) { $0.status == "exited(0)" },
            Behaviour(name: "reads part of stdin", spec: CommandSpec(argv: ["head", "-c", "10"], standardInput: stdin)) {
                $0.status == "exited(0)" && $0.standardOutput == "ssssssssss"
            },
            Behaviour(name: "closes stdout early", spec: sh("exec 1>&-; sleep 0.01; echo e >&2")) { $0.status == "exited(0)" && $0.standardError == "e\n" },
            Behaviour(name: "writes 2 MB", spec: sh("head -c 2000000 /dev/zero")) { $0.status == "exited(0)" && $0.outputBytes == 2_000_000 },
            Behaviour(name: "grandchild holds the pipes", spec: sh("sleep 300 & echo started")) { $0.status == "exited(0)" && $0.duration < .seconds(5) },
            Behaviour(name: "times out", spec: sh("sleep 300", timeout: .milliseconds(100))) { $0.timedOut && $0.status.hasSuffix("terminated (SIGTERM)") },
            Behaviour(name: "ignores SIGTERM", spec: sh("trap '' TERM; sleep 300", timeout: .milliseconds(100))) { $0.timedOut && $0.status.contains("SIGKILL") },
            Behaviour(name: "missing program", spec: CommandSpec(argv: ["/nonexistent/program"])) { $0.status.hasPrefix("failed to start") },
            Behaviour(name: "not executable", spec: CommandSpec(argv: [dir + "/not-executable"])) { $0.status.hasPrefix("failed to start") },
            Behaviour(name: "killed by a signal", spec: sh("kill -9 $$")) { $0.status == "signaled(9)" && $0.signal == 9 },
            Behaviour(name: "exit 3", spec: sh("exit 3", input: Array("x".utf8))) { $0.exitCode == 3 },
        ]
    }

    @Test func hundredCommandsASecondFor30Seconds() async throws {
        let dir = try TestPaths.temporaryDirectory("soak")
        _ = FileManager.default.createFile(atPath: dir + "/not-executable", contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o644])
        let runner = CommandRunner(
            maxConcurrent: 32, maxQueued: 3000, defaultTimeout: .seconds(10), killGrace: .milliseconds(100), workingDirectory: dir,
            passEnvironment: ["PATH": "/usr/bin:/bin"])
        let behaviours = Self.behaviours(dir)
        let tenMB = Behaviour(name: "writes 10 MB", spec: CommandSpec(argv: ["/bin/sh", "-c", "head -c 10000000 /dev/zero"])) {
            $0.status == "exited(0)" && $0.outputBytes == 10_000_000
        }

        // Warm up: the command thread exists and the task pool has its threads.
        _ = await withTaskGroup(of: CommandOutcome.self) { group in
            for behaviour in behaviours { group.addTask { await runner.run(behaviour.spec) } }
            return await group.reduce(into: 0) { n, _ in n += 1 }
        }
        // Task.sleep makes the dispatch timer descriptors (timerfd) that the pacing below uses.
        let clock = ContinuousClock()
        try await Task.sleep(until: clock.now + .milliseconds(10))
        try await Task.sleep(for: .milliseconds(10))
        let baseline = (fds: Self.count("/proc/self/fd"), threads: Self.count("/proc/self/task"))
        let baselineDescriptors = Self.descriptors()
        // Children other tests of this process left unreaped are not the runner's.
        let baselineZombies = Self.zombieChildren()
        var peak = baseline

        let count = 3000
        let start = clock.now
        let failures = await withTaskGroup(of: String?.self) { group in
            for i in 0..<count {
                let behaviour = i % 100 == 99 ? tenMB : behaviours[i % behaviours.count]
                group.addTask {
                    let outcome = await runner.run(behaviour.spec)
                    return behaviour.expected(outcome) ? nil : "\(behaviour.name): \(outcome.status) (\(outcome.duration))"
                }
                if i % 10 == 0 {
                    peak.fds = max(peak.fds, Self.count("/proc/self/fd"))
                    peak.threads = max(peak.threads, Self.count("/proc/self/task"))
                }
                // 100 a second (pacing, not synchronisation).
                try? await Task.sleep(until: start + .milliseconds(10 * (i + 1)))
            }
            return await group.reduce(into: [String]()) { list, failure in if let failure { list.append(failure) } }
        }
        let elapsed = clock.now - start
        #expect(failures.isEmpty, "\(failures.count) unexpected outcomes, first: \(failures.prefix(5))")

        // Everything is closed and reaped when each run returns; threads may take a moment to idle out.
        let deadline = clock.now + .seconds(20)
        var after = (fds: Self.count("/proc/self/fd"), threads: Self.count("/proc/self/task"))
        while (after.fds > baseline.fds || after.threads > baseline.threads) && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            after = (Self.count("/proc/self/fd"), Self.count("/proc/self/task"))
        }
        let zombies = Self.zombieChildren().filter { !baselineZombies.contains($0) }
        print(
            "command soak: \(count) commands in \(elapsed) (\(failures.count) unexpected); descriptors baseline \(baseline.fds), peak \(peak.fds), after \(after.fds); threads baseline \(baseline.threads), peak \(peak.threads), after \(after.threads); zombie children \(zombies.count)"
        )
        #expect(after.fds <= baseline.fds, "new descriptors: \(Self.descriptors().subtracting(baselineDescriptors).sorted())")
        #expect(after.threads <= baseline.threads)
        #expect(zombies.isEmpty, "zombie children: \(zombies)")
        #expect(await runner.load == (0, 0))
    }

    /// "fd -> target" for each open descriptor.
    static func descriptors() -> Set<String> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).map { fd in
            "\(fd) -> \((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd)) ?? "?")"
        })
    }

    static func count(_ directory: String) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: directory).count) ?? -1
    }

    /// Our children in state Z (exited, never reaped).
    static func zombieChildren() -> [Int32] {
        let me = getpid()
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name -> Int32? in
            guard let pid = Int32(name),
                let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            return fields.count > 1 && fields[0] == "Z" && Int32(fields[1]) == me ? pid : nil
        }
    }
}
