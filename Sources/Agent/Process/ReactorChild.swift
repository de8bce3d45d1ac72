#if canImport(Glibc)
import Glibc
#endif

// What the reactor thread keeps per command (see ``ProcessReactor``).

extension CommandOutcome {
    static func failedToStart(_ reason: String, after duration: Duration, warnings: [String] = []) -> CommandOutcome {
        CommandOutcome(
            status: "failed to start: \(reason)", exitCode: nil, signal: nil, timedOut: false, dropped: false, duration: duration,
            standardOutput: "", standardError: "", warnings: warnings)
    }
}

/// The first bytes of a stream, and how many there were in all.
struct Capture {
    var kept: [UInt8] = []
    var total = 0

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        let room = CommandRunner.captureLimit - kept.count
        if room > 0 { kept.append(contentsOf: bytes.prefix(room)) }
        total = total.addingReportingOverflow(bytes.count).overflow ? Int.max : total + bytes.count
    }

    var text: String { String(decoding: kept, as: UTF8.self) }
}

/// A running child, owned by the reactor thread.
final class Child {
    let done: CheckedContinuation<CommandOutcome, Never>
    let pid: pid_t
    var pidfd: Int32
    var stdin: Int32
    var stdout: Int32
    var stderr: Int32
    let input: [UInt8]
    var written = 0
    var out = Capture()
    var err = Capture()
    let started: ContinuousClock.Instant
    let timeout: Duration
    let deadline: ContinuousClock.Instant
    let grace: Duration
    var killAt: ContinuousClock.Instant?
    var killed = false
    var exited = false
    var warnings: [String]

    init(
        _ process: SpawnedProcess, pidfd: Int32, command: PreparedCommand, started: ContinuousClock.Instant,
        warnings: [String], done: CheckedContinuation<CommandOutcome, Never>
    ) {
        self.done = done
        pid = process.pid
        self.pidfd = pidfd
        stdin = process.stdin
        stdout = process.stdout
        stderr = process.stderr
        input = command.input
        self.started = started
        timeout = command.timeout
        deadline = started + command.timeout
        grace = command.grace
        self.warnings = warnings
    }
}
