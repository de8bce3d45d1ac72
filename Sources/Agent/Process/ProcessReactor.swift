import CProcessSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A command as the reactor starts it: everything already merged and bounded.
struct PreparedCommand: Sendable {
    var argv: [String]
    var environment: [String: String]
    /// Variables whose data also goes to stdin; dropped (with a warning) when the arguments
    /// and environment are too big for the kernel (E2BIG).
    var redundantEnvironment: Set<String>
    var directory: String?
    var input: [UInt8]
    var timeout: Duration
    var grace: Duration
}

/// One thread that starts every command and watches all of them: it writes their stdin, reads
/// their output, notices their exit, enforces their timeouts and reaps them. No thread per
/// command, nothing on the event loop, and no signal handler.
///
/// - Exits are seen through a pidfd per child (Linux 5.3+), polled in the same `poll(2)` as the
///   pipes. Where `pidfd_open` is missing, each child is checked with `waitid(WNOHANG|WNOWAIT)`
///   every 10 ms instead.
/// - When the child has exited, what is in its pipes is read, the pipes are closed and the rest
///   of its process group gets SIGKILL before the child is reaped (so that its group id cannot
///   have been reused): a grandchild holding the pipes (`sleep 300 &`) ends with it.
/// - SIGPIPE is blocked on this thread, so a child that exits without reading its stdin gives
///   EPIPE, which ends the write.
final class ProcessReactor: Sendable {
    static let shared = ProcessReactor()

    /// How exits are detected: pidfd where the kernel has it, or polling with waitid.
    enum ExitDetection: Sendable {
        case automatic
        case polling
    }

    fileprivate struct Job: Sendable {
        var command: PreparedCommand
        var done: CheckedContinuation<CommandOutcome, Never>
    }

    private struct Inbox {
        var jobs: [Job] = []
        var threadStarted = false
    }

    private let inbox = Mutex(Inbox())
    /// An eventfd that wakes the thread for new jobs (-1 if it could not be made: the thread
    /// then looks for jobs every 50 ms).
    fileprivate let wakeDescriptor: Int32
    fileprivate let exitDetection: ExitDetection
    /// How children are started (tests force the fork/exec fallback of older glibc).
    fileprivate let spawnMethod: SpawnMethod

    init(exitDetection: ExitDetection = .automatic, spawnMethod: SpawnMethod = .automatic) {
        self.exitDetection = exitDetection
        self.spawnMethod = spawnMethod
        wakeDescriptor = sioagent_eventfd()
    }

    /// Starts `command` and returns how it ended. Never throws and never traps: a command that
    /// cannot start is an outcome too.
    func run(_ command: PreparedCommand) async -> CommandOutcome {
        await withCheckedContinuation { continuation in
            submit(Job(command: command, done: continuation))
        }
    }

    private func submit(_ job: Job) {
        let mustStart = inbox.withLock { inbox -> Bool in
            inbox.jobs.append(job)
            defer { inbox.threadStarted = true }
            return !inbox.threadStarted
        }
        if mustStart {
            let code = startThread()
            if code != 0 {
                let jobs = inbox.withLock { inbox -> [Job] in
                    inbox.threadStarted = false
                    defer { inbox.jobs.removeAll() }
                    return inbox.jobs
                }
                for job in jobs {
                    job.done.resume(returning: .failedToStart("cannot start the command thread: \(errnoText(code))", after: .zero))
                }
                return
            }
        }
        if wakeDescriptor >= 0 {
            var one: UInt64 = 1
            _ = write(wakeDescriptor, &one, 8)
        }
    }

    fileprivate func takeJobs() -> [Job] {
        inbox.withLock { inbox in
            defer { inbox.jobs.removeAll(keepingCapacity: true) }
            return inbox.jobs
        }
    }

    /// Starts the thread (detached; it lives as long as the process). Returns 0 or an errno.
    private func startThread() -> Int32 {
        let retained = Unmanaged.passRetained(self)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let code = pthread_create(
            &thread, &attributes,
            { argument in
                let reactor = Unmanaged<ProcessReactor>.fromOpaque(argument!).takeRetainedValue()
                ReactorLoop(reactor: reactor).run()
            }, retained.toOpaque())
        if code != 0 { retained.release() }
        return code
    }
}

/// The reactor thread's state and loop. Confined to that thread.
private final class ReactorLoop {
    private enum Slot {
        case stdin, stdout, stderr, exit
    }

    private let reactor: ProcessReactor
    private var children: [Child] = []
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
    private let clock = ContinuousClock()

    init(reactor: ProcessReactor) {
        self.reactor = reactor
    }

    func run() -> Never {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
        sioagent_name_thread("sioagent-cmds")

        var fds: [pollfd] = []
        var slots: [(child: Child, slot: Slot)] = []
        while true {
            for job in reactor.takeJobs() { start(job) }

            fds.removeAll(keepingCapacity: true)
            slots.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: reactor.wakeDescriptor, events: Int16(POLLIN), revents: 0))
            for child in children {
                func add(_ fd: Int32, _ events: Int32, _ slot: Slot) {
                    guard fd >= 0 else { return }
                    fds.append(pollfd(fd: fd, events: Int16(events), revents: 0))
                    slots.append((child, slot))
                }
                add(child.stdin, POLLOUT, .stdin)
                add(child.stdout, POLLIN, .stdout)
                add(child.stderr, POLLIN, .stderr)
                add(child.pidfd, POLLIN, .exit)
            }
            if poll(&fds, nfds_t(fds.count), nextTimeout()) < 0, errno != EINTR {
                // Not expected (EINVAL, ENOMEM); do not spin.
                usleep(10_000)
            }
            if fds[0].revents != 0 {
                var value: UInt64 = 0
                _ = read(reactor.wakeDescriptor, &value, 8)
            }
            for (index, entry) in slots.enumerated() where fds[index + 1].revents != 0 {
                let child = entry.child
                switch entry.slot {
                case .stdin: writeInput(child)
                case .stdout: readOutput(&child.stdout, into: &child.out, reads: 4)
                case .stderr: readOutput(&child.stderr, into: &child.err, reads: 4)
                case .exit: child.exited = true
                }
            }
            let now = clock.now
            for child in children where !child.exited {
                if child.pidfd < 0 { child.exited = hasExited(child.pid) }
                if child.exited { continue }
                if let killAt = child.killAt {
                    if !child.killed, now >= killAt {
                        kill(-child.pid, SIGKILL)
                        child.killed = true
                    }
                } else if now >= child.deadline {
                    kill(-child.pid, SIGTERM)
                    child.killAt = now + child.grace
                }
            }
            if children.contains(where: { $0.exited }) {
                children.removeAll { child in
                    guard child.exited else { return false }
                    finish(child)
                    return true
                }
            }
        }
    }

    /// Milliseconds until the next timer, for poll(2); -1 when there is none.
    private func nextTimeout() -> Int32 {
        var next: ContinuousClock.Instant?
        var polling = reactor.wakeDescriptor < 0 ? Duration.milliseconds(50) : nil
        for child in children where !child.exited {
            let due: ContinuousClock.Instant?
            if let killAt = child.killAt {
                due = child.killed ? nil : killAt
            } else {
                due = child.deadline
            }
            if let due, next.map({ due < $0 }) ?? true { next = due }
            if child.pidfd < 0 { polling = .milliseconds(10) }
        }
        var wait = next.map { max(.zero, $0 - clock.now) }
        if let polling { wait = min(wait ?? polling, polling) }
        guard let wait else { return -1 }
        let (seconds, attoseconds) = wait.components
        if seconds >= 86_400 { return 86_400_000 }
        // Round up, so that the timer is due when poll returns.
        return Int32(seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }

    // MARK: Starting

    private func start(_ job: ProcessReactor.Job) {
        let command = job.command
        let started = clock.now
        func fail(_ reason: String, warnings: [String] = []) {
            job.done.resume(returning: .failedToStart(reason, after: clock.now - started, warnings: warnings))
        }
        guard let program = command.argv.first, !program.isEmpty else { return fail("empty command") }
        if command.argv.contains(where: { $0.utf8.contains(0) })
            || command.environment.contains(where: { $0.key.utf8.contains(0) || $0.value.utf8.contains(0) })
        {
            return fail("an argument or environment value contains a NUL byte")
        }
        let path: String
        switch resolveProgram(program, path: command.environment["PATH"]) {
        case .success(let p): path = p
        case .failure(let failure): return fail(failure.description)
        }
        var environment = command.environment
        var warnings: [String] = []
        var request = SpawnRequest(
            path: path, argv: command.argv, environment: Self.pairs(environment), directory: command.directory,
            hasInput: !command.input.isEmpty, method: reactor.spawnMethod)
        var result = spawnProcess(request)
        if case .failure(let failure) = result, failure.code == E2BIG,
            !command.redundantEnvironment.isDisjoint(with: environment.keys)
        {
            // Too big for the kernel: the data in these variables is also on stdin.
            let dropped = command.redundantEnvironment.filter { environment[$0] != nil }.sorted()
            for name in dropped { environment[name] = nil }
            warnings.append(
                "payload too large for the environment (E2BIG); \(dropped.joined(separator: " and ")) not set, the event is on stdin only")
            request.environment = Self.pairs(environment)
            result = spawnProcess(request)
        }
        switch result {
        case .success(let process):
            let pidfd = reactor.exitDetection == .polling ? -1 : sioagent_pidfd_open(process.pid)
            children.append(Child(process, pidfd: pidfd, command: command, started: started, warnings: warnings, done: job.done))
        case .failure(let failure):
            if failure.code == E2BIG {
                return fail(
                    "argument list too long (E2BIG): the arguments and environment exceed the kernel's limit (128 KiB for one value)",
                    warnings: warnings)
            }
            if failure.code == ENOENT, let directory = command.directory, access(directory, F_OK) != 0 {
                return fail("working directory \(directory): \(errnoText(ENOENT))", warnings: warnings)
            }
            fail(failure.description, warnings: warnings)
        }
    }

    private static func pairs(_ environment: [String: String]) -> [String] {
        environment.filter { !$0.key.isEmpty && !$0.key.contains("=") }.map { "\($0.key)=\($0.value)" }.sorted()
    }

    // MARK: Pipes

    private func writeInput(_ child: Child) {
        while child.written < child.input.count {
            let count = min(child.input.count - child.written, 64 * 1024)
            let n = child.input.withUnsafeBytes { write(child.stdin, $0.baseAddress! + child.written, count) }
            if n > 0 {
                child.written += n
                continue
            }
            let code = errno
            if n < 0, code == EAGAIN || code == EINTR { return }
            if code == EPIPE { clearPendingSIGPIPE() }
            // EPIPE: the child exited or closed its stdin without reading it all. That is normal.
            break
        }
        close(child.stdin)
        child.stdin = -1
    }

    /// Reads up to `reads` times from `fd`; keeps the first KiB and discards the rest. Closes
    /// it at end of file or on an error.
    private func readOutput(_ fd: inout Int32, into capture: inout Capture, reads: Int) {
        for _ in 0..<reads {
            let n = read(fd, scratch.baseAddress, scratch.count)
            if n > 0 {
                capture.add(UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                continue
            }
            if n < 0, errno == EAGAIN || errno == EINTR { return }
            close(fd)
            fd = -1
            return
        }
    }

    private func clearPendingSIGPIPE() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        _ = sigtimedwait(&set, nil, &zero)
    }

    // MARK: Ending

    /// Whether the child has exited, without reaping it (polling mode).
    private func hasExited(_ pid: pid_t) -> Bool {
        var info = siginfo_t()
        let rc = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        if rc != 0 { return errno == ECHILD }  // reaped by someone else (SIGCHLD ignored)
        return info.si_signo == SIGCHLD
    }

    private func finish(_ child: Child) {
        // What is already in the pipes (a grandchild may still hold them: read no further).
        if child.stdout >= 0 { readOutput(&child.stdout, into: &child.out, reads: 16) }
        if child.stderr >= 0 { readOutput(&child.stderr, into: &child.err, reads: 16) }
        for fd in [child.stdin, child.stdout, child.stderr, child.pidfd] where fd >= 0 { close(fd) }
        // The rest of the group, while the unreaped child still holds its id.
        kill(-child.pid, SIGKILL)
        var status: Int32 = 0
        var reaped: pid_t
        repeat { reaped = waitpid(child.pid, &status, 0) } while reaped < 0 && errno == EINTR
        let duration = clock.now - child.started

        var exitCode: Int32?
        var signal: Int32?
        var text: String
        if reaped != child.pid {
            text = "exited (status unknown: \(errnoText(errno)))"
        } else if status & 0x7f == 0 {
            exitCode = (status >> 8) & 0xff
            text = "exited(\(exitCode!))"
        } else {
            signal = status & 0x7f
            text = "signaled(\(signal!))"
        }
        let timedOut = child.killAt != nil
        if timedOut {
            text = "timed out after \(child.timeout); " + (child.killed ? "killed (SIGKILL after kill_grace \(child.grace))" : "terminated (SIGTERM)")
            exitCode = nil
        }
        child.done.resume(
            returning: CommandOutcome(
                status: text, exitCode: exitCode, signal: signal, timedOut: timedOut, dropped: false, duration: duration,
                standardOutput: child.out.text, standardError: child.err.text, warnings: child.warnings,
                outputBytes: child.out.total, errorBytes: child.err.total))
    }
}
