import Agent
import Rules
import SIOCore
import SocketIO

/// The agent's shell in the simulation: what the NIO shells do with the cores' actions, done
/// with simulated time, a simulated client and server, and the simulated disk.
extension World {
    // MARK: - Start, SIGKILL, SIGTERM

    func startAgent() {
        if let agent, !agent.exited { return }
        runs += 1
        let spool: Spool
        do {
            spool = try Spool(
                directory: settings.spoolDirectory, maxItems: settings.maxItems, maxBytes: settings.maxBytes, maxMemory: settings.maxMemory,
                storage: disk)
        } catch {
            checker.violation("the spool directory cannot be opened: \(error)")
            return
        }
        spool.quarantinesForeignFiles = mutation == .stateInSpool
        let (index, corrupt) = spool.loadIndex(payloadBudget: settings.maxMemory)
        for (name, reason) in corrupt { note("start: spool file \(name) moved to corrupt/: \(reason)") }
        let items = index.map(\.item)
        let loaded = index.map { OutboxState.Loaded(item: $0.item, file: $0.file, hasPayload: $0.hasPayload, bytes: $0.bytes) }
        let failedCount = disk.list(spool.failedDirectory).count
        var configuration = OutboxState.Configuration(
            namespaces: settings.namespaces, maxItems: settings.maxItems, maxBytes: settings.maxBytes, maxMemory: settings.maxMemory,
            inFlight: settings.inFlight, retryDelay: settings.retryDelay)
        configuration.mutation = mutation?.outbox
        var outbox = OutboxState(configuration: configuration, loaded: loaded, failedCount: failedCount, nextSequence: spool.sequenceAfterLoad)
        let statePath = settings.stateDirectory + "/" + settings.stateFileName
        let (state, warning) = StateFile.load(storage: disk, path: statePath, now: wall)
        if let warning { note("start: state file unreadable: \(warning)") }
        let engine = RuleEngine(
            ruleSet: SimulationRules.load(variant: ruleVariant), startTime: wall, namespacesConnected: false, timeZone: "UTC", state: state)
        var client = ClientStateMachine(
            namespaces: settings.namespaces.sorted().map { (name: $0, auth: nil) }, policy: settings.policy,
            connectTimeout: settings.connectTimeout, protocolVersion: faults.v3 ? .v3 : .v4, seed: random.next())
        client.mutation = mutation?.client
        let agent = AgentProcess(run: runs, outbox: outbox, engine: engine, client: client)
        self.agent = agent
        note("start #\(runs): \(items.count) alerts in the spool, state \(state.keys.sorted())")
        // The reference reads what the index left on disk, to know which alerts are there.
        var full = items
        var files: [String: [UInt64: SpoolItem]] = [:]
        for (i, found) in index.enumerated() where !found.hasPayload {
            if files[found.file] == nil {
                files[found.file] = (try? Spool.readPayloads(directory: settings.spoolDirectory, file: found.file, storage: disk)) ?? [:]
            }
            if let item = files[found.file]?[found.item.sequence] { full[i] = item }
        }
        checker.started(self, loaded: full, failed: disk.list(spool.failedDirectory), state: state)
        let actions = outbox.start()
        agent.outbox = outbox
        perform(actions, agent)
        armEngineTimer(agent)
        // The first connection goes at once.
        performClient(agent.client.start(), agent)
    }

    func crash(_ agent: AgentProcess) {
        note("SIGKILL")
        dropSession(agent)
        agent.exited = true
        disk.crash()
        checker.agentStopped(self)
        schedule(.startAgent, after: random.seconds(1, 10))
    }

    /// SIGTERM, as `LiveExecutor.shutdown(timeout:)` does it: alerts in flight may complete
    /// until the last third of `shutdown.timeout` (at most 2 s before its end); then whatever is
    /// not on disk is written, and the writer gets until the end. A pending ack never extends it.
    func sigterm(_ agent: AgentProcess) {
        note("SIGTERM (shutdown.timeout \(settings.shutdownTimeout))")
        agent.shutdown = (now, false)
        if mutation != .shutdownWaitsForAck {
            let timeout = nanoseconds(settings.shutdownTimeout)
            schedule(.shutdownSave(run: agent.run), after: timeout - min(timeout / 3, 2_000_000_000))
            schedule(.shutdownDeadline(run: agent.run), after: timeout)
        }
        finishShutdownIfReady(agent)
    }

    /// Keeps on disk what is not once nothing is in flight (or at `save`), and exits once the
    /// writer is done (or at `deadline`, whatever it still holds lost with the process).
    func finishShutdownIfReady(_ agent: AgentProcess, save: Bool = false, deadline: Bool = false) {
        guard let shutdown = agent.shutdown, !agent.exited else { return }
        if !shutdown.persisted, agent.outbox.isIdle || save || deadline {
            agent.shutdown = (shutdown.started, true)
            perform(agent.outbox.handle(.persistInFlight), agent)
            if agent.engine.stateVersion != agent.persistedStateVersion { persistState(agent) }
        }
        // The line writer gets until the deadline too (a stuck `log` target holds it there).
        guard deadline || (agent.shutdown!.persisted && agent.writerJobs.isEmpty && !agent.writerBusy && !agent.lineBusy) else { return }
        dropSession(agent)
        agent.exited = true
        // What is not on disk is lost with the process, and reported in one line.
        let alerts = agent.outbox.notOnDisk, lines = unwrittenLines(agent)
        note(
            agent.writerJobs.isEmpty && alerts == 0 && lines == 0
                ? "exited after SIGTERM" : "exited after SIGTERM; reported not written: \(alerts) alerts, \(lines) lines")
        checker.shutdownEnded(self, started: shutdown.started)
        checker.shutdownReported(self, alertsNotOnDisk: alerts)
        checker.agentStopped(self)
        schedule(.startAgent, after: random.seconds(1, 10))
    }

    // MARK: - Events of the running agent

    func handleAgent(_ event: Event, _ agent: AgentProcess) {
        switch event {
        case .engineTimer(let run, let token):
            guard run == agent.run, token == agent.engineTimerToken, let due = agent.engineTimerDue else { return }
            agent.engineTimerDue = nil
            if wallJumps == agent.engineTimerJumps, abs(wall - due) > 0.001 {
                checker.violation("a rule timer due at \(due) fired at \(wall): off by more than a tick")
            }
            performRules(agent.engine.advance(to: max(due, wall)), agent)
            if let next = agent.engine.nextDeadline, next <= max(due, wall) {
                checker.violation("the rule engine's next deadline \(next) does not move past \(max(due, wall)): the loop would spin")
            }
            afterRules(agent)
        case .writerDone(let run):
            guard run == agent.run else { return }
            runWriterBatch(agent)
        case .lineWriterDone(let run):
            guard run == agent.run else { return }
            lineBatchDone(agent)
        case .statePersist(let run):
            guard run == agent.run else { return }
            agent.statePersistScheduled = false
            persistState(agent)
        case .outboxRetry(let run):
            guard run == agent.run else { return }
            perform(agent.outbox.handle(.retryTimer), agent)
        case .outboxPersistRetry(let run):
            guard run == agent.run else { return }
            perform(agent.outbox.handle(.persistRetryTimer), agent)
        case .shutdownSave(let run):
            guard run == agent.run else { return }
            finishShutdownIfReady(agent, save: true)
        case .shutdownDeadline(let run):
            guard run == agent.run else { return }
            finishShutdownIfReady(agent, deadline: true)
        case .clientTimer(let run, let timer, let token, let due):
            guard run == agent.run else { return }
            clientTimerFired(agent, timer, token: token, due: due)
        case .heartbeat(let run, let generation, let token, let due):
            guard run == agent.run, generation == agent.client.generation else { return }
            heartbeatFired(agent, token: token, due: due)
        case .ackTimeout(let run, let seq, let token):
            guard run == agent.run else { return }
            ackTimedOut(agent, seq: seq, token: token)
        case .sendWritten(let run, let generation, let seq):
            guard run == agent.run else { return }
            emitWritten(agent, generation: generation, seq: seq)
        case .sendFailed(let run, let send, let reason):
            guard run == agent.run else { return }
            perform(agent.outbox.handle(.sendCompleted(send, .failed(reason, permanent: false))), agent)
        default:
            handleServer(event, agent)
        }
        finishShutdownIfReady(agent)
    }

    func performRules(_ actions: [PlannedAction], _ agent: AgentProcess) {
        for action in actions {
            if case .log = action.kind {
                appendLine(agent)
                continue
            }
            guard case .emit(let namespace, let event, let args, let ack) = action.kind else { continue }
            let item = SpoolItem(namespace: namespace, event: event, args: args, ackTimeout: ack, rule: action.rule)
            checker.fired(item, run: agent.run)
            perform(agent.outbox.handle(.fire(item, plannedAt: action.at)), agent)
        }
    }

    /// After the rules ran: persist a changed state (batched, 200 ms) and set the rule timer.
    func afterRules(_ agent: AgentProcess) {
        if agent.engine.stateVersion != agent.persistedStateVersion, !agent.statePersistScheduled {
            agent.statePersistScheduled = true
            schedule(.statePersist(run: agent.run), after: 200_000_000 + diskLatency())
        }
        armEngineTimer(agent)
    }

    func armEngineTimer(_ agent: AgentProcess) {
        guard let deadline = agent.engine.nextDeadline else { return }
        if let due = agent.engineTimerDue, due <= deadline { return }
        agent.engineTimerDue = deadline
        agent.engineTimerToken += 1
        agent.engineTimerJumps = wallJumps
        // Rounded up to the nanosecond, so that it never fires before its deadline.
        let delay = max(0, deadline - wall)
        schedule(.engineTimer(run: agent.run, token: agent.engineTimerToken), after: Int64((delay * 1e9).rounded(.up)))
    }

    private func persistState(_ agent: AgentProcess) {
        let snapshot = agent.engine.sharedState
        agent.persistedStateVersion = agent.engine.stateVersion
        do {
            try StateFile.store(snapshot, storage: disk, directory: settings.stateDirectory, name: settings.stateFileName)
            checker.stateDurable(snapshot)
        } catch {
            note("state write failed: \(error)")
            // Tried again at the next change, as the agent does.
        }
    }

    // MARK: - The outbox's actions

    func perform(_ actions: [OutboxAction], _ agent: AgentProcess) {
        for action in actions {
            switch action {
            case .store(let item): submit(.spool(item), agent)
            case .storeFailed(let item, let reason, let payloadIn):
                checker.resolved(item, "failed: \(reason)")
                submit(.failed(item, payloadIn: payloadIn), agent)
            case .failedDirectoryFull(let item, let reason): checker.resolved(item, "failed (only logged): \(reason)")
            case .remove(let file):
                note("outbox removes spool file \(file)")
                submit(.remove(file), agent)
            case .readPayloads(let file):
                note("outbox reads payloads back from \(file)")
                submit(.readPayloads(file), agent)
            case .quarantine(let file): submit(.quarantine(file), agent)
            case .lost(let items, let reason):
                checker.lost(items, reason)
                note("outbox lost \(items.count) alerts: \(reason)")
            case .send(let send, let item): emitAlert(send, item, agent)
            case .scheduleRetry(let delay): schedule(.outboxRetry(run: agent.run), after: nanoseconds(delay))
            case .cancelRetry: break  // the state ignores a timer it did not arm
            case .schedulePersistRetry(let delay): schedule(.outboxPersistRetry(run: agent.run), after: nanoseconds(delay))
            case .delivered: break
            case .discarded(let items, let budget):
                for item in items { checker.resolved(item, "dropped: budget \(budget)") }
                note("outbox dropped \(items.count) alerts: budget \(budget)")
            case .metric: break
            case .log(let level, let message, _):
                if level >= .warning { note("log \(level): \(message)") }
            case .warning(let kind, let count, _): note("log warning: \(kind.message) (\(count))")
            }
        }
    }

    private func submit(_ job: AgentProcess.WriterJob, _ agent: AgentProcess) {
        if agent.writerJobs.isEmpty { agent.writerOldest = now }
        agent.writerJobs.append(job)
        guard !agent.writerBusy else { return }
        agent.writerBusy = true
        schedule(.writerDone(run: agent.run), after: diskLatency())
    }

    func diskLatency() -> Int64 {
        faults.slowDisk && random.chance(0.3) ? random.seconds(0.05, 3) : random.seconds(0.0005, 0.01)
    }

    /// The writer thread takes everything queued: removals in order, then the alerts stored
    /// together into one file per directory (at most 1 MiB), fsynced, renamed, directory fsynced.
    private func runWriterBatch(_ agent: AgentProcess) {
        // One thread for the spool and the lines (the mutation): the spool's batch waits behind
        // a line batch that hangs.
        if mutation == .sharedWriter, agent.lineHung {
            agent.spoolWaitsForLines = true
            return
        }
        if let oldest = agent.writerOldest, now - oldest > Self.longestSpoolWait {
            checker.violation("a spool write waited \(seconds(now - oldest)) for the spool's writer: spool progress depends on something else than its disk")
        }
        agent.writerOldest = nil
        let jobs = agent.writerJobs
        agent.writerJobs.removeAll()
        var spoolBatches: [(items: [SpoolItem], bytes: [UInt8])] = []
        var failedItems: [SpoolItem] = []
        var reads: [String] = []
        var current: [SpoolItem] = []
        var currentBytes: [UInt8] = []
        for job in jobs {
            switch job {
            case .remove(let file): disk.remove(settings.spoolDirectory + "/" + file)
            case .failed(let item, let payloadIn):
                if let file = payloadIn, let full = (try? Spool.readPayloads(directory: settings.spoolDirectory, file: file, storage: disk))?[item.sequence] {
                    failedItems.append(full)
                } else {
                    failedItems.append(item)
                }
            case .readPayloads(let file): reads.append(file)
            case .quarantine(let file):
                try? disk.makeDirectories(settings.spoolDirectory + "/corrupt")
                _ = disk.rename(settings.spoolDirectory + "/" + file, settings.spoolDirectory + "/corrupt/" + file)
            case .spool(let item):
                let bytes = item.encoded()
                if !current.isEmpty, currentBytes.count + bytes.count > 1 << 20 {
                    spoolBatches.append((current, currentBytes))
                    current = []
                    currentBytes = []
                }
                current.append(item)
                currentBytes += bytes
            }
        }
        if !current.isEmpty { spoolBatches.append((current, currentBytes)) }
        let failedDirectory = settings.spoolDirectory + "/failed"
        for item in failedItems {
            try? disk.storeDurably(directory: failedDirectory, name: Spool.fileName(item.sequence), bytes: item.encoded())
        }
        if !failedItems.isEmpty { try? disk.syncDirectory(failedDirectory) }
        var results: [(items: [SpoolItem], file: String, error: DiskError?)] = []
        for (batch, bytes) in spoolBatches {
            let file = Spool.fileName(batch[0].sequence)
            do {
                try disk.storeDurably(directory: settings.spoolDirectory, name: file, bytes: bytes)
                results.append((batch, file, nil))
            } catch let error as DiskError {
                results.append((batch, file, error))
            } catch {
                results.append((batch, file, DiskError(storage: "\(error)", code: 0)))
            }
        }
        if results.contains(where: { $0.error == nil }) { try? disk.syncDirectory(settings.spoolDirectory) }
        for (items, file, error) in results {
            if error == nil { checker.durable(items) }
            note("writer: \(file) holds \(items.compactMap(World.id(of:)))\(error.map { " refused: \($0)" } ?? "")")
            for item in items {
                perform(agent.outbox.handle(.written(sequence: item.sequence, file: file, inFile: items.count, error: error)), agent)
            }
        }
        for file in reads {
            let result: Result<[UInt64: SpoolItem], DiskError>
            do {
                result = .success(try Spool.readPayloads(directory: settings.spoolDirectory, file: file, storage: disk))
            } catch {
                result = .failure(error as? DiskError ?? DiskError(storage: "\(error)", code: 0))
            }
            perform(agent.outbox.handle(.payloadsRead(file: file, result)), agent)
        }
        // SIGKILL right after a write, now and then: the moments after the disk changed are
        // where losses hide.
        if faults.crashes && !healing && random.chance(0.03) { schedule(.fault(.crashOnce), after: random.seconds(0, 2)) }
        if agent.writerJobs.isEmpty {
            agent.writerBusy = false
        } else {
            schedule(.writerDone(run: agent.run), after: diskLatency())
        }
    }

    func nanoseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s &* 1_000_000_000 &+ atto / 1_000_000_000
    }
}
