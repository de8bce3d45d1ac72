import DequeModule

/// A process to start: an argument vector, never a shell line (unless argv[0] is the shell,
/// for `shell` actions, whose script is fixed text from the rule file).
public struct CommandSpec: Sendable {
    public var argv: [String]
    /// Set on top of the passed-through part of the agent's environment.
    public var environment: [String: String]
    public var workingDirectory: String?
    public var timeout: Duration?
    public var standardInput: [UInt8]?
    /// Variables of `environment` whose data also arrives on stdin. When the arguments and the
    /// environment are too big for the kernel (E2BIG), these are dropped with a warning and the
    /// command starts anyway (`shell`: `SIOAGENT_PAYLOAD` and `SIOAGENT_ARGS`).
    public var redundantEnvironment: Set<String>

    public init(
        argv: [String], environment: [String: String] = [:], workingDirectory: String? = nil, timeout: Duration? = nil,
        standardInput: [UInt8]? = nil, redundantEnvironment: Set<String> = []
    ) {
        self.argv = argv
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.timeout = timeout
        self.standardInput = standardInput
        self.redundantEnvironment = redundantEnvironment
    }
}

/// How a command ended.
public struct CommandOutcome: Sendable {
    /// `exited(N)`, `signaled(N)`, `timed out after …`, `failed to start: …` or `dropped: …`.
    public var status: String
    public var exitCode: Int32?
    /// The signal that ended it, if one did.
    public var signal: Int32?
    public var timedOut: Bool
    /// Never started: the queue was full and newer commands pushed it out.
    public var dropped: Bool
    public var duration: Duration
    /// The first KiB of standard output and standard error.
    public var standardOutput: String
    public var standardError: String
    /// Things to log as warnings (the payload left out of the environment, …).
    public var warnings: [String]
    /// How many bytes the command wrote in all (only the first KiB is kept).
    public var outputBytes: Int
    public var errorBytes: Int

    public var succeeded: Bool { exitCode == 0 }

    public init(
        status: String, exitCode: Int32?, signal: Int32? = nil, timedOut: Bool, dropped: Bool = false, duration: Duration,
        standardOutput: String, standardError: String, warnings: [String] = [], outputBytes: Int = 0, errorBytes: Int = 0
    ) {
        self.status = status
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.dropped = dropped
        self.duration = duration
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.warnings = warnings
        self.outputBytes = outputBytes
        self.errorBytes = errorBytes
    }
}

/// Runs commands: at most `maxConcurrent` at once, up to `maxQueued` waiting in order (beyond
/// that the oldest waiting one is dropped), a timeout that sends SIGTERM to the command's
/// process group and SIGKILL after a grace period, and the first KiB of output kept (the rest
/// is read and discarded, so a chatty command never blocks on a full pipe).
///
/// The processes themselves are started and watched by one thread shared by every runner
/// (``ProcessReactor``): `posix_spawn`, pipes, pidfds.
public actor CommandRunner {
    public static let captureLimit = 1024
    /// Timeouts and grace periods beyond this are taken as this (about 68 years).
    static let longestWait = Duration.seconds(Int64(Int32.max))

    private let maxConcurrent: Int
    private let maxQueued: Int
    private let killGrace: Duration
    private let defaultTimeout: Duration
    private let defaultDirectory: String?
    private let baseEnvironment: [String: String]
    private let reactor: ProcessReactor
    private var running = 0
    /// Resumed with true when a slot is free, false when dropped.
    private var waiting: Deque<CheckedContinuation<Bool, Never>> = []

    /// - Parameters:
    ///   - maxQueued: commands waiting for a slot; beyond it the oldest waiting one is dropped.
    ///   - passEnvironment: the agent's variables that commands inherit (others are not passed).
    public init(
        maxConcurrent: Int, maxQueued: Int = 100, defaultTimeout: Duration, killGrace: Duration, workingDirectory: String?,
        passEnvironment: [String: String]
    ) {
        self.init(
            maxConcurrent: maxConcurrent, maxQueued: maxQueued, defaultTimeout: defaultTimeout, killGrace: killGrace,
            workingDirectory: workingDirectory, passEnvironment: passEnvironment, reactor: .shared)
    }

    /// With a reactor of its own (tests: exits detected by polling, as on kernels before 5.3).
    init(
        maxConcurrent: Int, maxQueued: Int, defaultTimeout: Duration, killGrace: Duration, workingDirectory: String?,
        passEnvironment: [String: String], reactor: ProcessReactor
    ) {
        self.maxConcurrent = max(1, maxConcurrent)
        self.maxQueued = max(0, maxQueued)
        self.defaultTimeout = defaultTimeout
        self.killGrace = killGrace
        self.defaultDirectory = workingDirectory
        self.baseEnvironment = passEnvironment
        self.reactor = reactor
    }

    /// For tests: a runner whose reactor detects exits by polling `waitid` (no pidfd).
    package static func polling(
        maxConcurrent: Int, defaultTimeout: Duration, killGrace: Duration, workingDirectory: String?, passEnvironment: [String: String]
    ) -> CommandRunner {
        CommandRunner(
            maxConcurrent: maxConcurrent, maxQueued: 100, defaultTimeout: defaultTimeout, killGrace: killGrace,
            workingDirectory: workingDirectory, passEnvironment: passEnvironment, reactor: ProcessReactor(exitDetection: .polling))
    }

    /// For tests: a runner that starts children as on glibc before 2.34 (fork and exec), with
    /// `close_range` or, as on kernels before 5.9, by reading /proc/self/fd.
    package static func forkExec(
        closeRange: Bool, maxConcurrent: Int, defaultTimeout: Duration, killGrace: Duration, workingDirectory: String?,
        passEnvironment: [String: String]
    ) -> CommandRunner {
        CommandRunner(
            maxConcurrent: maxConcurrent, maxQueued: 100, defaultTimeout: defaultTimeout, killGrace: killGrace,
            workingDirectory: workingDirectory, passEnvironment: passEnvironment,
            reactor: ProcessReactor(spawnMethod: .forkExec(closeRange: closeRange)))
    }

    /// Commands started and not yet finished, and commands waiting for a slot.
    public var load: (running: Int, waiting: Int) { (running, waiting.count) }

    /// Runs `spec` when a slot is free; returns how it ended. Never throws: a command that cannot
    /// start, or is dropped from a full queue, is an outcome too.
    public func run(_ spec: CommandSpec) async -> CommandOutcome {
        guard await acquire() else {
            return CommandOutcome(
                status: "dropped: the command queue is full (commands.max_queued: \(maxQueued))", exitCode: nil, timedOut: false,
                dropped: true, duration: .zero, standardOutput: "", standardError: "")
        }
        defer { release() }
        var environment = baseEnvironment
        for (k, v) in spec.environment { environment[k] = v }
        let command = PreparedCommand(
            argv: spec.argv, environment: environment, redundantEnvironment: spec.redundantEnvironment,
            directory: spec.workingDirectory ?? defaultDirectory, input: spec.standardInput ?? [],
            timeout: min(max(.zero, spec.timeout ?? defaultTimeout), Self.longestWait),
            grace: min(max(.zero, killGrace), Self.longestWait))
        return await reactor.run(command)
    }

    private func acquire() async -> Bool {
        if running < maxConcurrent {
            running += 1
            return true
        }
        return await withCheckedContinuation { continuation in
            waiting.append(continuation)
            if waiting.count > maxQueued {
                waiting.removeFirst().resume(returning: false)
            }
        }
    }

    private func release() {
        if let next = waiting.popFirst() {
            // The slot passes straight to the next waiter.
            next.resume(returning: true)
        } else {
            running -= 1
        }
    }
}
