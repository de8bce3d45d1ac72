import Dispatch
import Logging
import NIOCore
import NIOPosix
import Rules
import SocketIO
import Synchronization

/// Performs planned actions for real.
///
/// - `emit` goes through the ``AlertOutbox`` (the client, or the disk spool until delivered). The
///   spool has its own ``DiskWriter`` thread: a `log` target that blocks never delays it.
/// - `reply` answers the triggering event's ack request at once, on the event loop.
/// - `run` and `shell` each get their own task on the ``CommandRunner`` (bounded concurrency and
///   queue, timeout with SIGTERM then SIGKILL to the command's process group); their outcome is
///   logged.
/// - `log` lines are collected on the loop and handed to the ``DiskWriter`` thread together
///   (``LineBatcher``: every 100 ms, or at 64 KiB), so they keep their order, never block the loop
///   and cost no thread wakeup each; their control characters are escaped, so one firing is one
///   line. While the disk is stuck, lines wait up to the batcher's bound; beyond it the oldest
///   are dropped, with a warning (at most one every 10 s) and `sioagent_dropped_total{budget="log_lines"}`.
///
/// `Sendable` as checked: the outbox, which is confined to the client's event loop (where every
/// method of the ActionExecutor protocol is called), is reached through `NIOLoopBound`, which
/// traps when touched from elsewhere.
public final class LiveExecutor: ActionExecutor, Sendable {
    private let boundOutbox: NIOLoopBoundBox<AlertOutbox>
    /// The outbox; on the loop only.
    private var outbox: AlertOutbox { boundOutbox.value }
    private let runner: CommandRunner
    private let writer: DiskWriter
    private let spoolWriter: DiskWriter
    private let lines: LineBatcher
    private let logFiles: AgentConfiguration.LogFiles
    private let dropped: DropCounter
    private let logger: Logger
    private let commands: AgentConfiguration.Commands
    private let tasks = TaskTracker()
    private let loop: any EventLoop
    private let metrics: AgentMetrics?

    /// Reads the spool (this blocks on the disk: call it at start, not on the event loop).
    /// - Parameter writer: the thread that writes `log` lines.
    /// - Parameter spoolWriter: the thread that writes the spool; nil makes one of its own, whose
    ///   queue of alerts holds half of `spool.max_memory` (``DiskWriter/forSpool(maxMemory:)``).
    /// - Parameter metrics: counts actions and their latency, when metrics are configured.
    public init(
        configuration: AgentConfiguration, client: SocketIOClient, logger: Logger, writer: DiskWriter = .shared,
        spoolWriter: DiskWriter? = nil, metrics: AgentMetrics? = nil
    ) throws {
        self.metrics = metrics
        let spool = try Spool(
            directory: configuration.spool.dir, maxItems: configuration.spool.maxItems, maxBytes: configuration.spool.maxBytes,
            maxMemory: configuration.spool.maxMemory)
        self.loop = client.eventLoop
        self.writer = writer
        let spoolWriter = spoolWriter ?? DiskWriter.forSpool(maxMemory: configuration.spool.maxMemory)
        self.spoolWriter = spoolWriter
        let droppedLogger = logger
        let dropped = DropCounter { total, _ in
            droppedLogger.warning(
                "log lines dropped: the disk is not keeping up; the oldest waiting lines were dropped",
                metadata: ["log.dropped": "\(total)"])
        }
        self.dropped = dropped
        self.lines = LineBatcher(writer: writer, loop: client.eventLoop) { count in
            metrics?.dropped(.logLines, count: count)
            dropped.dropped(count)
        }
        let namespaces = Set(configuration.server.namespaces.keys.map { $0.hasPrefix("/") ? $0 : "/" + $0 })
        // Made off the loop (reading the spool blocks), then only touched on it.
        let outbox = AlertOutbox(
            client: client, spool: spool, writer: spoolWriter, logger: logger, retryDelay: configuration.reconnection.maxDelay,
            namespaces: namespaces, inFlight: configuration.spool.inFlight, metrics: metrics)
        self.boundOutbox = NIOLoopBoundBox.makeBoxSendingValue(outbox, eventLoop: client.eventLoop)
        var passed: [String: String] = [:]
        for name in configuration.commands.passEnv {
            if let value = configuration.environment[name] { passed[name] = value }
        }
        self.runner = CommandRunner(
            maxConcurrent: configuration.commands.maxConcurrent, maxQueued: configuration.commands.maxQueued,
            defaultTimeout: configuration.commands.timeout,
            killGrace: configuration.commands.killGrace, workingDirectory: configuration.commands.cwd,
            passEnvironment: passed)
        self.logFiles = configuration.logFiles
        self.logger = logger
        self.commands = configuration.commands
    }

    /// Alerts accepted and not yet delivered.
    public var pendingAlerts: EventLoopFuture<Int> {
        loop.submit { self.outbox.pending }
    }

    /// Alerts not yet delivered; on the loop.
    var pendingOnLoop: Int { outbox.pending }

    public func connectionChanged(namespace: String, connected: Bool) {
        outbox.connectionChanged(namespace: namespace, connected: connected)
    }

    public func connectionRefused(namespace: String, message: String) {
        outbox.connectionRefused(namespace: namespace, message: message)
    }

    public func execute(_ action: PlannedAction, ack: SocketIOAck?) {
        // Built only when a line is logged (swift-log takes metadata as an autoclosure).
        var meta: Logger.Metadata {
            ["rule.id": .string(action.rule), "rule.phase": .string(action.phase.rawValue), "event.name": .string(action.trigger?.name ?? "")]
        }
        switch action.kind {
        case .set, .unset:
            // The engine applied it already; counted like the other actions.
            metrics?.action(action.kind, .ok)
        case .emit(let namespace, let event, let args, let ackTimeout):
            logger.info(
                "emit",
                metadata: meta.merging([
                    "emit.event": "\(event)", "emit.namespace": "\(namespace)", "emit.args": "\(JSONValue.array(args).jsonString())",
                ]) { $1 })
            outbox.enqueue(
                SpoolItem(namespace: namespace, event: event, args: args, ackTimeout: ackTimeout, rule: action.rule), plannedAt: action.at)

        case .reply(let args):
            if let ack {
                ack.reply(args)
                metrics?.action(action.kind, .ok)
                metrics?.actionDone(plannedAt: action.at)
                logger.info("reply", metadata: meta)
            } else {
                metrics?.action(action.kind, .skipped)
                logger.warning("reply: the event did not ask for an acknowledgement; nothing sent", metadata: meta)
            }

        case .run(let argv, let env, let cwd, let timeout):
            let spec = CommandSpec(argv: argv, environment: env, workingDirectory: cwd.map(resolveInCwd), timeout: timeout)
            startCommand(spec, metadata: meta, kind: 2, plannedAt: action.at)

        case .shell(let script, let env, let stdin, let cwd, let timeout):
            guard commands.allowShell else {
                metrics?.action(action.kind, .skipped)
                logger.error("shell actions are disabled (commands.allow_shell: false); not run", metadata: meta)
                return
            }
            let spec = CommandSpec(
                argv: ["/bin/sh", "-c", script], environment: env, workingDirectory: cwd.map(resolveInCwd), timeout: timeout,
                standardInput: Array(stdin.utf8), redundantEnvironment: ["SIOAGENT_PAYLOAD", "SIOAGENT_ARGS"])
            startCommand(spec, metadata: meta, kind: 3, plannedAt: action.at)

        case .log(let target, let message):
            let destination: DiskWriter.LineTarget
            switch target {
            case .stdout: destination = .descriptor(1)
            case .stderr: destination = .descriptor(2)
            case .file(let p): destination = .file(path: resolveInCwd(p), maxBytes: logFiles.maxBytes, keep: logFiles.keep)
            }
            var line = Array(escapingControlCharacters(message).utf8)
            line.append(0x0A)
            let logger = self.logger
            let failureMetadata = meta
            let metrics = self.metrics
            lines.append(line, to: destination) { error in
                metrics?.action(index: 4, .failed)
                logger.error("log action failed", metadata: failureMetadata.merging(["error": "\(error)"]) { $1 })
            }
            if let metrics {
                metrics.action(index: 4, .ok)
                metrics.actionDone(plannedAt: action.at)
            }
        }
    }

    /// Ends within `timeout`, whatever the server, the disk or the commands do: running actions
    /// and alerts in flight get the first part of it; at the last third (at most 2 s before the
    /// end) alerts still in flight, an unacknowledged one included, are written to the spool, and
    /// the spool's writer and the line writer get until the end. A pending ack never extends it.
    /// What is still not on disk then (alerts, lines) is lost with the process: it is counted and
    /// reported in one line.
    public func shutdown(timeout: Duration) async {
        let timeout = max(timeout, .zero)
        let deadline = ContinuousClock.now + timeout
        let saveBy = deadline - min(timeout / 3, .seconds(2))
        // Running commands and log lines may finish until then.
        if await !tasks.waitUntilIdle(until: saveBy) {
            logger.warning("shutdown: actions still running at the deadline", metadata: ["actions.running": "\(tasks.count)"])
        }
        // Alerts being sent: they may complete until then; whatever is still unsent is kept on disk.
        let idle = await finishes(before: saveBy) { done in
            self.loop.execute { self.outbox.waitUntilIdle().whenComplete { _ in done() } }
        }
        if !idle {
            logger.info("shutdown: alerts still in flight at the deadline; kept in the spool for the next start")
        }
        _ = await finishes(before: deadline) { done in
            self.loop.execute {
                self.outbox.persistInFlight()
                done()
            }
        }
        // Everything handed to the writers (the alerts just persisted included) and the log lines
        // still waiting on the loop reach the disk, the spool's writer never behind the lines.
        let spoolWriter = self.spoolWriter
        async let spoolWritten = spoolWriter.flush(until: deadline)
        let linesWritten = await lines.flush(until: deadline)
        _ = await spoolWritten
        // Counted on the loop, after the write reports queued there before.
        let alerts = (try? await loop.submit { self.outbox.notOnDisk }.get()) ?? 0
        let waitingLines = (try? await loop.submit { self.lines.waiting }.get()) ?? 0
        let unwrittenLines = linesWritten ? 0 : waitingLines + writer.unwritten.lines
        // The counts of drops that a quiet period still holds, so that every one is reported.
        dropped.flush()
        try? await loop.submit { self.outbox.flushWarnings() }.get()
        if alerts > 0 || unwrittenLines > 0 {
            logger.log(
                level: alerts > 0 ? .error : .warning,
                "shutdown: not everything reached the disk by the deadline; the rest is lost with the process",
                metadata: ["shutdown.alerts_unwritten": "\(alerts)", "shutdown.lines_unwritten": "\(unwrittenLines)"])
        }
    }

    private func startCommand(_ spec: CommandSpec, metadata: Logger.Metadata, kind: Int, plannedAt: Double) {
        let runner = self.runner
        let logger = self.logger
        let metrics = self.metrics
        tasks.started()
        logger.info("command started", metadata: metadata.merging(["command": "\(spec.argv.first ?? "")"]) { $1 })
        Task { [tasks] in
            defer { tasks.finished() }
            let outcome = await runner.run(spec)
            if let metrics {
                let seconds = outcome.duration.secondsValue
                metrics.action(index: kind, outcome.timedOut ? .timeout : outcome.succeeded ? .ok : .failed)
                metrics.commandDuration.observe(seconds)
                // Carried out when the process started.
                metrics.actionDone(plannedAt: plannedAt, now: wallClock() - seconds)
            }
            var meta = metadata
            meta["command"] = "\(spec.argv.first ?? "")"
            meta["command.status"] = "\(outcome.status)"
            for warning in outcome.warnings {
                logger.warning("command: \(warning)", metadata: meta)
            }
            if outcome.dropped {
                logger.warning("command dropped", metadata: meta)
                return
            }
            meta["command.duration_ms"] = "\(milliseconds(outcome.duration))"
            if let code = outcome.exitCode { meta["command.exit_code"] = "\(code)" }
            if let signal = outcome.signal { meta["command.signal"] = "\(signal)" }
            if !outcome.standardOutput.isEmpty { meta["command.stdout"] = "\(outcome.standardOutput)" }
            if !outcome.standardError.isEmpty { meta["command.stderr"] = "\(outcome.standardError)" }
            if outcome.outputBytes > CommandRunner.captureLimit { meta["command.stdout_bytes"] = "\(outcome.outputBytes)" }
            if outcome.errorBytes > CommandRunner.captureLimit { meta["command.stderr_bytes"] = "\(outcome.errorBytes)" }
            if outcome.succeeded {
                logger.info("command finished", metadata: meta)
            } else {
                logger.warning("command failed", metadata: meta)
            }
        }
    }

    private func resolveInCwd(_ path: String) -> String {
        resolve(path, base: commands.cwd)
    }
}

/// Counts running actions so that shutdown can wait for them.
final class TaskTracker: Sendable {
    private struct State {
        var running = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    var count: Int { state.withLock { $0.running } }

    func started() {
        state.withLock { $0.running += 1 }
    }

    func finished() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.running -= 1
            guard state.running == 0 else { return [] }
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for w in waiters { w.resume() }
    }

    /// True when everything finished before `deadline`.
    func waitUntilIdle(until deadline: ContinuousClock.Instant) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let done = self.state.withLock { state -> Bool in
                        if state.running == 0 { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if done { continuation.resume() }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return false
            }
            let first = await group.next() ?? false
            if !first {
                // Release the waiter so the group can end.
                let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                    defer { state.waiters.removeAll() }
                    return state.waiters
                }
                for w in waiters { w.resume() }
            }
            group.cancelAll()
            return first
        }
    }
}

/// Counts what a bound dropped or refused, and reports it without a storm: the first at once,
/// then at most one report every 10 seconds with the count since the last. What a quiet period
/// counts is reported when it ends (on a Dispatch thread, so a stuck event loop cannot hold it
/// back), and ``flush()`` reports the rest at once (at shutdown). Every count is reported once.
final class DropCounter: Sendable {
    private struct State {
        var count = 0
        var metadata: Logger.Metadata = [:]
        var last: ContinuousClock.Instant?
        /// A report of the quiet period is scheduled.
        var armed = false
    }

    private let interval: Duration
    private let state = Mutex(State())
    private let report: @Sendable (Int, Logger.Metadata) -> Void

    /// `report` gets the count and the metadata of the last call that counted.
    init(interval: Duration = .seconds(10), report: @escaping @Sendable (_ count: Int, _ metadata: Logger.Metadata) -> Void) {
        self.interval = interval
        self.report = report
    }

    /// Counts `count`: reported now when a report is due, else with the quiet period's.
    func dropped(_ count: Int = 1, metadata: Logger.Metadata = [:]) {
        let (now, arm) = state.withLock { s -> (Int?, Duration?) in
            s.count += count
            s.metadata = metadata
            let now = ContinuousClock.now
            if let last = s.last, now - last < interval {
                if s.armed { return (nil, nil) }
                s.armed = true
                return (nil, interval - (now - last))
            }
            s.last = now
            defer { s.count = 0 }
            return (s.count, nil)
        }
        if let now { report(now, metadata) }
        if let arm {
            let delay = Int(clamping: milliseconds(arm))
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(max(1, delay))) { [self] in
                flush(endingQuietPeriod: true)
            }
        }
    }

    /// Reports what was counted and not yet reported, now.
    func flush() {
        flush(endingQuietPeriod: false)
    }

    /// `endingQuietPeriod`: the quiet period's timer; it is disarmed under the same lock that
    /// takes the count, so a drop that comes meanwhile starts a new period rather than a second
    /// report a moment later.
    private func flush(endingQuietPeriod: Bool) {
        let pending = state.withLock { s -> (Int, Logger.Metadata)? in
            if endingQuietPeriod { s.armed = false }
            guard s.count > 0 else { return nil }
            defer { s.count = 0 }
            s.last = ContinuousClock.now
            return (s.count, s.metadata)
        }
        if let (count, metadata) = pending { report(count, metadata) }
    }
}

/// Whole milliseconds of `d`, saturating.
func milliseconds(_ d: Duration) -> Int64 {
    let (seconds, attoseconds) = d.components
    let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
    if overflow { return seconds < 0 ? Int64.min : Int64.max }
    return ms.addingReportingOverflow(attoseconds / 1_000_000_000_000_000).overflow ? Int64.max : ms + attoseconds / 1_000_000_000_000_000
}
