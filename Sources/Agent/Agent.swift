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
    let logger: Logger
    private let client: SocketIOClient
    let loop: any EventLoop
    private let executor: any ActionExecutor
    let runtime: NIOLoopBoundBox<RuntimeState>
    /// systemd notifications (READY, STATUS, WATCHDOG) when started by systemd with `Type=notify`.
    private let notifications: ServiceNotifications?
    /// Prometheus metrics, when `metrics:` is configured.
    public let metrics: AgentMetrics?
    private let exporter: MetricsExporter?
    /// Writes the rules' shared state to its file, off the loop (nil in dry-run).
    private let persister: StatePersister?
    /// The `--record` lines waiting on the loop, flushed at shutdown.
    private let recordLines: LineBatcher?
    /// Whether shutdown was asked for, and `run()` waiting for it.
    private let stop = Mutex<(requested: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
    private let clientStopped = Atomic<Bool>(false)
    /// What the running rules were read from, and a change still settling.
    let rulesWatch: Mutex<RulesWatch>

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
        /// Metrics kept on the loop: events by the engine's labels, connection state.
        var eventCounts = EventCounts(labels: [])
        var connected: [String: Bool] = [:]
        /// The shared state version last handed to the persister.
        var persistedStateVersion: UInt64 = 0

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
        let snapshot = RuleFilesSnapshot.read(paths: [configuration.rules])
        let ruleSet = try Self.loadRules(snapshot, configuration, logger: logger)
        self.rulesWatch = Mutex(RulesWatch(loaded: snapshot))
        // The shared state survives restarts in its own file; dry runs read it but do not write it.
        let stateStore = StatePersister(path: configuration.stateFilePath, logger: logger)
        let stateSource = stateStore.migrateLegacy(spoolDirectory: configuration.spool.dir, dryRun: configuration.dryRun)
        let initialState = stateStore.load(now: wallClock(), from: stateSource)
        self.persister = configuration.dryRun ? nil : stateStore
        // Namespaces count as down until they connect, so absence windows start at the connection.
        let engine = RuleEngine(
            ruleSet: ruleSet, startTime: wallClock(), namespacesConnected: false, state: initialState,
            maxWindowSamples: configuration.maxWindowSamples, maxKeyBytes: configuration.maxKeyBytes)
        let state = RuntimeState(engine: engine)
        let metrics = configuration.metrics.enabled ? AgentMetrics() : nil
        self.metrics = metrics
        if metrics != nil {
            state.eventCounts = EventCounts(labels: ruleSet.eventLabels)
            for ns in configuration.server.namespaces.keys { state.connected[ns.hasPrefix("/") ? ns : "/" + ns] = false }
        }
        state.persistedStateVersion = engine.stateVersion
        if let path = configuration.recordPath {
            state.recorder = try EventRecorder(
                path: path, maxBytes: configuration.logFiles.maxBytes, keep: configuration.logFiles.keep, loop: eventLoop,
                logger: logger, metrics: metrics)
        }
        self.recordLines = state.recorder?.lines
        let runtime = NIOLoopBoundBox.makeBoxSendingValue(state, eventLoop: eventLoop)
        self.runtime = runtime

        // The hook needs `self`; it is set once the client exists.
        let hook = HookBox()
        let client = SocketIOClient(
            configuration: configuration.clientConfiguration, eventLoop: eventLoop,
            logger: logger, onEvent: { event in hook.call(event) })
        self.client = client
        self.notifications = SystemdNotifier(environment: configuration.environment).map {
            ServiceNotifications(notifier: $0, client: client, serverURL: configuration.server.url)
        }
        let chosen: any ActionExecutor
        if let executor {
            chosen = executor
        } else if configuration.dryRun {
            chosen = DryRunExecutor()
        } else {
            chosen = try LiveExecutor(configuration: configuration, client: client, logger: logger, metrics: metrics)
        }
        self.executor = chosen
        self.exporter = metrics.map { metrics in
            MetricsExporter(loop: eventLoop, logger: logger) { Self.renderMetrics(runtime.value, executor: chosen, metrics: metrics) }
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
        loop.execute {
            self.rescheduleTimer()
            self.notifications?.start()
        }
        let watcher: Task<Void, Never>? =
            configuration.watchRules
            ? Task { [weak self] in await self?.watchRules() } : nil

        if let exporter {
            if let listen = configuration.metrics.listen {
                do {
                    _ = try await exporter.listen(host: listen.host, port: listen.port)
                } catch {
                    logger.error("cannot serve metrics; running without the listener", metadata: [
                        "metrics.listen": "\(listen.host):\(listen.port)", "error": "\(error)"])
                }
            }
            if let textfile = configuration.metrics.textfile {
                exporter.startTextfile(path: textfile, interval: configuration.metrics.interval)
            }
        }

        await withCheckedContinuation { continuation in
            let already = stop.withLock { stop -> Bool in
                if !stop.requested { stop.waiter = continuation }
                return stop.requested
            }
            if already { continuation.resume() }
        }
        watcher?.cancel()

        await stopWithin(configuration.shutdownTimeout)
    }

    /// The shutdown path: ends within `timeout` of the request, whatever the server, the disk or
    /// the commands do. The executor gets most of it (running actions, alerts in flight, then
    /// the spool and the writer); the last quarter, at most 1 s, flushes the state file and
    /// disconnects.
    private func stopWithin(_ timeout: Duration) async {
        let timeout = max(timeout, .zero)
        let deadline = ContinuousClock.now + timeout
        logger.info("shutting down", metadata: ["shutdown.timeout_ms": "\(milliseconds(timeout))"])
        _ = await finishes(before: deadline) { done in
            self.loop.execute {
                let state = self.runtime.value
                state.accepting = false
                state.timer?.cancel()
                state.timer = nil
                state.recorder?.close()
                self.notifications?.stop()
                done()
            }
        }
        let executorBy = deadline - min(timeout / 4, .seconds(1))
        await executor.shutdown(timeout: max(.zero, executorBy - ContinuousClock.now))
        if let recordLines, await !recordLines.flush(until: executorBy) {
            logger.warning("shutdown: the recording was not written in time")
        }
        if let persister, await !finishes(before: deadline, { await persister.close() }) {
            logger.warning("shutdown: the state file was not written in time")
        }
        let client = self.client
        if await !finishes(before: deadline, { await client.disconnect() }) {
            logger.warning("shutdown: the connection did not close in time")
        }
        if let exporter { _ = await finishes(before: deadline, { await exporter.stop() }) }
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

    /// The client, for callers that want to watch the connection.
    public var socket: SocketIOClient { client }

    // MARK: - On the event loop

    private func handle(_ event: SocketIOClientEvent) {
        let state = runtime.value
        if let notifications, !event.isEvent { notifications.observe(event) }
        guard state.accepting else { return }
        let now = wallClock()
        let ruleEvent: RuleEvent
        var ack: SocketIOAck?
        switch event {
        case .event(let e):
            state.recorder?.record(e, at: now)
            ruleEvent = RuleEvent(namespace: e.namespace, name: e.name, arguments: e.arguments, canReply: e.ack != nil)
            ack = e.ack
        case .connect(let namespace):
            if metrics != nil { state.connected[namespace] = true }
            logger.info("connected", metadata: ["namespace": "\(namespace)"])
            executor.connectionChanged(namespace: namespace, connected: true)
            ruleEvent = RuleEvent(namespace: namespace, name: "connect", args: [])
        case .disconnect(let namespace, let reason):
            if metrics != nil { state.connected[namespace] = false }
            logger.warning("disconnected", metadata: ["namespace": "\(namespace)", "reason": "\(reason)"])
            executor.connectionChanged(namespace: namespace, connected: false)
            ruleEvent = RuleEvent(namespace: namespace, name: "disconnect", args: [.string("\(reason)")])
        case .connectError(let namespace, let error):
            logger.warning("connect error", metadata: ["namespace": "\(namespace)", "error": "\(error)"])
            if case .connectionRefused(_, let message, _) = error { executor.connectionRefused(namespace: namespace, message: message) }
            ruleEvent = RuleEvent(namespace: namespace, name: "connect_error", args: [.string("\(error)")])
        case .reconnect(let attempt):
            metrics?.reconnects.add()
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
        if metrics != nil, event.isEvent { state.eventCounts.count(state.engine.lastEventLabel) }
        for action in actions {
            executor.execute(action, ack: ack)
        }
        afterEngine(state)
        if Self.nextDeadline(&state.engine) != state.timerDeadline {
            rescheduleTimer()
        }
    }

    /// After the engine ran: logs its warnings (keys evicted, state full) and hands a changed
    /// shared state to the persister.
    @inline(__always)
    private func afterEngine(_ state: RuntimeState) {
        if !state.engine.warnings.isEmpty {
            for w in state.engine.takeWarnings() { logger.warning("\(w)") }
        }
        if !state.engine.errors.isEmpty {
            for e in state.engine.takeErrors() { logger.error("\(e)") }
        }
        if state.engine.stateVersion != state.persistedStateVersion {
            state.persistedStateVersion = state.engine.stateVersion
            persister?.submit(state.engine.sharedState)
        }
    }

    /// Read in place: a getter called on `state.engine` copies the whole engine first.
    private static func nextDeadline(_ engine: inout RuleEngine) -> Double? { engine.nextDeadline }

    /// Arms one timer for the engine's next deadline (`for`, `absent`, `every`, `at`, `cron`).
    func rescheduleTimer() {
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
            self.afterEngine(state)
            self.rescheduleTimer()
        }
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
