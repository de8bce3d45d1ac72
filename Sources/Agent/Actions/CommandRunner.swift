import Subprocess

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// A process to start: an argument vector, never a shell line (unless argv[0] is the shell,
/// for `shell` actions, whose script is fixed text from the rule file).
public struct CommandSpec: Sendable {
    public var argv: [String]
    /// Set on top of the passed-through part of the agent's environment.
    public var environment: [String: String]
    public var workingDirectory: String?
    public var timeout: Duration?
    public var standardInput: [UInt8]?

    public init(argv: [String], environment: [String: String] = [:], workingDirectory: String? = nil, timeout: Duration? = nil, standardInput: [UInt8]? = nil) {
        self.argv = argv
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.timeout = timeout
        self.standardInput = standardInput
    }
}

/// How a command ended.
public struct CommandOutcome: Sendable {
    /// `exited(N)`, `signaled(N)`, `timed out`, or `failed to start: …`.
    public var status: String
    public var exitCode: Int32?
    public var timedOut: Bool
    public var duration: Duration
    /// The first KiB of standard output and standard error.
    public var standardOutput: String
    public var standardError: String

    public var succeeded: Bool { exitCode == 0 }
}

/// Runs commands with a limit on how many run at once (the rest wait in order), a timeout that
/// sends SIGTERM and then SIGKILL after a grace period, and a bounded capture of their output.
public actor CommandRunner {
    public static let captureLimit = 1024

    private let maxConcurrent: Int
    private let killGrace: Duration
    private let defaultTimeout: Duration
    private let defaultDirectory: String?
    private let baseEnvironment: [String: String]
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// - Parameters:
    ///   - passEnvironment: the agent's variables that commands inherit (others are not passed).
    public init(
        maxConcurrent: Int, defaultTimeout: Duration, killGrace: Duration, workingDirectory: String?,
        passEnvironment: [String: String]
    ) {
        self.maxConcurrent = max(1, maxConcurrent)
        self.defaultTimeout = defaultTimeout
        self.killGrace = killGrace
        self.defaultDirectory = workingDirectory
        self.baseEnvironment = passEnvironment
    }

    /// Commands started and not yet finished, and commands waiting for a slot.
    public var load: (running: Int, waiting: Int) { (running, waiting.count) }

    /// Runs `spec` when a slot is free; returns how it ended. Never throws: a command that cannot
    /// start is an outcome too.
    public func run(_ spec: CommandSpec) async -> CommandOutcome {
        await acquire()
        defer { release() }
        return await Self.execute(
            spec, timeout: spec.timeout ?? defaultTimeout, grace: killGrace,
            directory: spec.workingDirectory ?? defaultDirectory, environment: baseEnvironment)
    }

    private func acquire() async {
        if running < maxConcurrent {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty {
            running -= 1
        } else {
            // The slot passes straight to the next waiter.
            waiting.removeFirst().resume()
        }
    }

    private nonisolated static func execute(
        _ spec: CommandSpec, timeout: Duration, grace: Duration, directory: String?, environment base: [String: String]
    ) async -> CommandOutcome {
        let clock = ContinuousClock()
        let start = clock.now
        guard let program = spec.argv.first, !program.isEmpty else {
            return CommandOutcome(status: "failed to start: empty command", exitCode: nil, timedOut: false, duration: .zero, standardOutput: "", standardError: "")
        }
        var merged = base
        for (k, v) in spec.environment { merged[k] = v }
        let env = merged
        let outcome = await withTaskGroup(of: CommandOutcome?.self) { group in
            group.addTask {
                var custom: [Environment.Key: String] = [:]
                for (k, v) in env { custom[Environment.Key(stringLiteral: k)] = v }
                // A bare name is looked up in the command's PATH; a path is used as it is.
                let executable: Executable = program.contains("/") ? .path(FilePath(program)) : .name(program)
                var options = PlatformOptions()
                options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: grace)]
                do {
                    let input = spec.standardInput ?? []
                    let result = try await Subprocess.run(
                        executable,
                        arguments: Arguments(Array(spec.argv.dropFirst())),
                        environment: .custom(custom),
                        workingDirectory: directory.map { FilePath($0) },
                        platformOptions: options,
                        input: .array(input),
                        output: .sequence,
                        error: .sequence
                    ) { execution in
                        async let out = capture(execution.standardOutput)
                        async let err = capture(execution.standardError)
                        return try await (out, err)
                    }
                    let (out, err) = result.closureResult
                    let code: Int32?
                    let status: String
                    switch result.terminationStatus {
                    case .exited(let c):
                        code = Int32(c)
                        status = "exited(\(c))"
                    case .signaled(let s):
                        code = nil
                        status = "signaled(\(s))"
                    }
                    return CommandOutcome(
                        status: status, exitCode: code, timedOut: false, duration: clock.now - start,
                        standardOutput: out, standardError: err)
                } catch is CancellationError {
                    return nil
                } catch {
                    if Task.isCancelled { return nil }
                    return CommandOutcome(
                        status: "failed to start: \(error)", exitCode: nil, timedOut: false, duration: clock.now - start,
                        standardOutput: "", standardError: "")
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            // The first to finish wins: the command, or the timer (which cancels the command,
            // and cancellation runs the SIGTERM → grace → SIGKILL teardown).
            let first = await group.next() ?? nil
            group.cancelAll()
            while await group.next() != nil {}
            return first
        }
        return outcome
            ?? CommandOutcome(
                status: "timed out after \(timeout); terminated", exitCode: nil, timedOut: true,
                duration: clock.now - start, standardOutput: "", standardError: "")
    }
}

/// Keeps the first `CommandRunner.captureLimit` bytes of an output stream and drains the rest,
/// so a chatty command never blocks on a full pipe.
private func capture(_ sequence: SubprocessOutputSequence) async throws -> String {
    var kept: [UInt8] = []
    for try await buffer in sequence {
        let room = CommandRunner.captureLimit - kept.count
        if room > 0 {
            buffer.withUnsafeBytes { raw in
                kept.append(contentsOf: raw.prefix(room))
            }
        }
    }
    return String(decoding: kept, as: UTF8.self)
}
