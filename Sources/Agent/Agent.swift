import Logging
import NIOCore
import NIOPosix
import Rules
import SocketIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why the agent could not start.
public struct AgentError: Error, CustomStringConvertible {
    public var description: String
}

/// The long-running agent: the Socket.IO client, the rules, and an executor for what they plan.
///
/// Events are matched where the client delivers them, on its event loop: an event that fires
/// nothing never leaves it. Only planned actions go to the executor, which hands anything slow
/// to a task. Timers (`for`, `every`) run on the same loop, so the rule state needs no lock.
public final class Agent: Sendable {
    public let configuration: AgentConfiguration
    private let logger: Logger
    private let client: SocketIOClient
    private let loop: any EventLoop
    private let executor: any ActionExecutor
    private let runtime: NIOLoopBoundBox<RuntimeState>
    /// Whether shutdown was asked for, and `run()` waiting for it.
    private let stop = Mutex<(requested: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
    private let clientStopped = Atomic<Bool>(false)

    /// True once the client stopped for good (`reconnection.when_exhausted: exit`): ``run()``
    /// then returned, and the process should exit non-zero so its supervisor restarts it.
    public var connectionGaveUp: Bool { clientStopped.load(ordering: .acquiring) }

    /// The rule state and what goes with it; lives on the event loop.
    final class RuntimeState {
        var engine: RuleEngine
        var accepting = true
        var timer: Scheduled<Void>?
        var timerDeadline: Double?
        var recorder: EventRecorder?

        init(engine: RuleEngine) {
            self.engine = engine
        }
    }

    /// Loads the rules and prepares the client; connects only in ``run()``.
    /// - Parameters:
    ///   - executor: what performs actions; nil picks ``LiveExecutor``, or ``DryRunExecutor``
    ///     when the configuration says dry-run.
    public init(
        configuration: AgentConfiguration, logger: Logger,
        eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
        executor: (any ActionExecutor)? = nil
    ) throws {
        self.configuration = configuration
        self.logger = logger
        self.loop = eventLoop
        let ruleSet = try Self.loadRules(configuration, logger: logger)
        let engine = RuleEngine(ruleSet: ruleSet, startTime: wallClock())
        let state = RuntimeState(engine: engine)
        if let path = configuration.recordPath {
            state.recorder = try EventRecorder(
                path: path, maxBytes: configuration.logFiles.maxBytes, keep: configuration.logFiles.keep, logger: logger)
        }
        self.runtime = NIOLoopBoundBox.makeBoxSendingValue(state, eventLoop: eventLoop)

        // The hook needs `self`; it is set once the client exists.
        let hook = HookBox()
        self.client = SocketIOClient(
            configuration: configuration.clientConfiguration, eventLoop: eventLoop,
            logger: logger, onEvent: { event in hook.call(event) })
        if let executor {
            self.executor = executor
        } else if configuration.dryRun {
            self.executor = DryRunExecutor()
        } else {
            self.executor = try LiveExecutor(configuration: configuration, client: client, logger: logger)
        }
        hook.set { [unowned self] event in self.handle(event) }
        logger.info(
            "rules loaded",
            metadata: ["rules.path": "\(configuration.rules)", "rules.count": "\(ruleSet.ruleIDs.count)", "dry_run": "\(configuration.dryRun)"])
    }

    /// Connects, reconnects as needed, and acts on events until ``shutdown()`` (or SIGTERM, when
    /// the caller wires signals to it); then stops taking events, lets running actions finish
    /// until the shutdown deadline, keeps undelivered alerts on disk, and disconnects.
    public func run() async {
        client.connect()
        loop.execute { self.rescheduleTimer() }
        let watcher: Task<Void, Never>? =
            configuration.watchRules
            ? Task { [weak self] in
                var last = rulesFingerprint(self?.configuration.rules ?? "")
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    guard let self else { return }
                    let now = rulesFingerprint(self.configuration.rules)
                    if now != last {
                        last = now
                        self.logger.info("rule files changed; reloading")
                        await self.reload()
                    }
                }
            } : nil

        await withCheckedContinuation { continuation in
            let already = stop.withLock { stop -> Bool in
                if !stop.requested { stop.waiter = continuation }
                return stop.requested
            }
            if already { continuation.resume() }
        }
        watcher?.cancel()

        logger.info("shutting down")
        try? await loop.submit {
            let state = self.runtime.value
            state.accepting = false
            state.timer?.cancel()
            state.timer = nil
            state.recorder?.close()
        }.get()
        await executor.shutdown(timeout: configuration.shutdownTimeout)
        await client.disconnect()
        logger.info("stopped")
    }

    /// Asks ``run()`` to finish (what SIGTERM and SIGINT do).
    public func shutdown() {
        let waiter = stop.withLock { stop -> CheckedContinuation<Void, Never>? in
            stop.requested = true
            defer { stop.waiter = nil }
            return stop.waiter
        }
        waiter?.resume()
    }

    /// Loads and validates the rules again. When they are valid, swaps them in, keeping the
    /// state of every rule whose definition did not change; otherwise keeps the running rules
    /// and logs every problem. What SIGHUP and a changed rule file do.
    @discardableResult
    public func reload() async -> Bool {
        let ruleSet: RuleSet
        do {
            ruleSet = try Self.loadRules(configuration, logger: logger)
        } catch {
            logger.error("reload failed; keeping the running rules")
            return false
        }
        let summary = try? await loop.submit {
            let state = self.runtime.value
            let summary = state.engine.reload(ruleSet, at: wallClock())
            self.rescheduleTimer()
            return summary
        }.get()
        if let summary {
            logger.info(
                "rules reloaded",
                metadata: [
                    "rules.added": .array(summary.added.map { .string($0) }),
                    "rules.changed": .array(summary.changed.map { .string($0) }),
                    "rules.removed": .array(summary.removed.map { .string($0) }),
                ])
        }
        return summary != nil
    }

    /// The client, for callers that want to watch the connection.
    public var socket: SocketIOClient { client }

    // MARK: - On the event loop

    private func handle(_ event: SocketIOClientEvent) {
        let state = runtime.value
        guard state.accepting else { return }
        let now = wallClock()
        let ruleEvent: RuleEvent
        var ack: SocketIOAck?
        switch event {
        case .event(let e):
            state.recorder?.record(e, at: now)
            ruleEvent = RuleEvent(namespace: e.namespace, name: e.name, args: e.args, canReply: e.ack != nil)
            ack = e.ack
        case .connect(let namespace):
            logger.info("connected", metadata: ["namespace": "\(namespace)"])
            executor.connectionChanged(namespace: namespace, connected: true)
            ruleEvent = RuleEvent(namespace: namespace, name: "connect", args: [])
        case .disconnect(let namespace, let reason):
            logger.warning("disconnected", metadata: ["namespace": "\(namespace)", "reason": "\(reason)"])
            executor.connectionChanged(namespace: namespace, connected: false)
            ruleEvent = RuleEvent(namespace: namespace, name: "disconnect", args: [.string("\(reason)")])
        case .connectError(let namespace, let error):
            logger.warning("connect error", metadata: ["namespace": "\(namespace)", "error": "\(error)"])
            if case .connectionRefused(_, let message, _) = error { executor.connectionRefused(namespace: namespace, message: message) }
            ruleEvent = RuleEvent(namespace: namespace, name: "connect_error", args: [.string("\(error)")])
        case .reconnect(let attempt):
            logger.info("reconnected", metadata: ["reconnect.attempt": "\(attempt)"])
            ruleEvent = RuleEvent(namespace: "/", name: "reconnect", args: [.number(Double(attempt))])
        case .reconnectAttempt(let attempt):
            logger.debug("reconnecting", metadata: ["reconnect.attempt": "\(attempt)"])
            return
        case .reconnectFailed:
            logger.error("reconnection.attempts reached", metadata: ["when_exhausted": "\(configuration.reconnection.whenExhausted.rawValue)"])
            return
        case .stopped(let error):
            logger.critical("the connection was given up; stopping so the service manager restarts the agent", metadata: ["error": "\(error)"])
            clientStopped.store(true, ordering: .releasing)
            shutdown()
            return
        }
        let actions = state.engine.handle(ruleEvent, at: now)
        for action in actions {
            executor.execute(action, ack: ack)
        }
        if Self.nextDeadline(&state.engine) != state.timerDeadline {
            rescheduleTimer()
        }
    }

    /// Read in place: a getter called on `state.engine` copies the whole engine first.
    private static func nextDeadline(_ engine: inout RuleEngine) -> Double? { engine.nextDeadline }

    /// Arms one timer for the engine's next deadline (`for` elapsing, `every`).
    private func rescheduleTimer() {
        let state = runtime.value
        state.timer?.cancel()
        state.timer = nil
        state.timerDeadline = state.engine.nextDeadline
        guard state.accepting, let deadline = state.timerDeadline else { return }
        let delay = max(0, deadline - wallClock())
        state.timer = loop.scheduleTask(in: TimeAmount(seconds: delay)) {
            let state = self.runtime.value
            state.timer = nil
            state.timerDeadline = nil
            guard state.accepting else { return }
            for action in state.engine.advance(to: max(deadline, wallClock())) {
                self.executor.execute(action, ack: nil)
            }
            self.rescheduleTimer()
        }
    }

    private static func loadRules(_ configuration: AgentConfiguration, logger: Logger) throws -> RuleSet {
        let (ruleSet, diagnostics) = RuleSet.load(paths: [configuration.rules], environment: configuration.environment)
        for d in diagnostics {
            logger.error("\(d)")
        }
        guard let ruleSet else {
            throw AgentError(description: "the rules in \(configuration.rules) have \(diagnostics.count) problem(s)")
        }
        if !configuration.commands.allowShell, !ruleSet.rulesUsingShell.isEmpty, !configuration.dryRun {
            throw AgentError(
                description: "rules \(ruleSet.rulesUsingShell.joined(separator: ", ")) use shell, but commands.allow_shell is false")
        }
        return ruleSet
    }
}

/// Lets the client's hook reach the agent, which exists only after the client.
///
/// The closure sits in a class: a closure kept directly in a generic container (`Mutex<F?>`) is
/// re-wrapped in conversion thunks on every `inout` access, so each event would make the next
/// call slower.
private final class HookBox: Sendable {
    private final class Target: Sendable {
        let call: @Sendable (SocketIOClientEvent) -> Void

        init(_ call: @escaping @Sendable (SocketIOClientEvent) -> Void) {
            self.call = call
        }
    }

    private let target = Mutex<Target?>(nil)

    func set(_ f: @escaping @Sendable (SocketIOClientEvent) -> Void) {
        let t = Target(f)
        target.withLock { $0 = t }
    }

    func call(_ event: SocketIOClientEvent) {
        target.withLock { $0 }?.call(event)
    }
}

/// Seconds since the Unix epoch.
func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// What changes when a rule file changes: the names, sizes and modification times of the files
/// that loading the rules would read.
func rulesFingerprint(_ path: String) -> [String] {
    guard let stamp = fileStamp(path) else { return [] }
    let files = stamp.isDirectory ? RuleSet.yamlFiles(in: path) : [path]
    return files.map { file in
        let s = fileStamp(file)
        return "\(file) \(s?.size ?? -1) \(s?.modified ?? -1)"
    }
}
