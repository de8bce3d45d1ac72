import Logging
import NIOCore
import Rules
import Synchronization

/// Reading the rules again: SIGHUP (``Agent/reload()``) and the watcher of the rule files. Each
/// reading is compiled off the event loop and swapped in on it, keeping the state of every rule
/// whose definition did not change.
extension Agent {
    /// Looks at the rule files every ``watchInterval`` (off the event loop: a task) and reloads
    /// a change once it has settled (``RulesWatch``). The files are read only when their stamps
    /// (inode, size, times, followed through symbolic links) changed, or while a change settles.
    func watchRules() async {
        let clock = ContinuousClock()
        let start = clock.now
        // Empty: the first look reads the files, in case they changed since they were loaded.
        var stamps: [String]? = nil
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.watchInterval)
            let now = rulesFingerprint(configuration.rules)
            guard now != stamps || rulesWatch.withLock({ $0.waiting }) else { continue }
            stamps = now
            let snapshot = RuleFilesSnapshot.read(paths: [configuration.rules])
            let elapsed = clock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            guard let settled = rulesWatch.withLock({ $0.observe(snapshot, stamps: now, at: seconds) }) else { continue }
            logger.info("rule files changed; reloading")
            await install(settled)
        }
    }

    /// How often the watcher looks at the rule files.
    static let watchInterval = Duration.milliseconds(250)

    /// Loads and validates the rules again. When they are valid, swaps them in, keeping the
    /// state of every rule whose definition did not change; otherwise keeps the running rules
    /// and logs every problem. What SIGHUP does (at once; a changed file waits until it settles).
    @discardableResult
    public func reload() async -> Bool {
        let snapshot = RuleFilesSnapshot.read(paths: [configuration.rules])
        rulesWatch.withLock { $0.loaded(snapshot) }
        return await install(snapshot)
    }

    /// Compiles `snapshot` and swaps it in when valid.
    @discardableResult
    private func install(_ snapshot: RuleFilesSnapshot) async -> Bool {
        let ruleSet: RuleSet
        do {
            ruleSet = try Self.loadRules(snapshot, configuration, logger: logger)
        } catch {
            logger.error("reload failed; keeping the running rules")
            return false
        }
        // A SIGHUP and the watcher may each be compiling a reading at once, and a large older
        // one can finish last. Only the reading last declared loaded is swapped in: the check
        // and the swap happen together on the loop, so an older reading never replaces a newer
        // one (the watcher would then see the files as loaded and never correct it).
        let outcome: ReloadSummary?
        do {
            outcome = try await loop.submit { () -> ReloadSummary? in
                guard self.rulesWatch.withLock({ $0.loaded == snapshot }) else { return nil }
                let state = self.runtime.value
                let summary = state.engine.reload(ruleSet, at: wallClock())
                if self.metrics != nil { state.eventCounts.relabel(ruleSet.eventLabels) }
                self.rescheduleTimer()
                return summary
            }.get()
        } catch {
            return false
        }
        guard let summary = outcome else {
            logger.info("a newer reading of the rule files was loaded meanwhile; this one is not used")
            return true
        }
        logger.info(
            "rules reloaded",
            metadata: [
                "rules.added": .array(summary.added.map { .string($0) }),
                "rules.changed": .array(summary.changed.map { .string($0) }),
                "rules.removed": .array(summary.removed.map { .string($0) }),
            ])
        return true
    }

    static func loadRules(_ snapshot: RuleFilesSnapshot, _ configuration: AgentConfiguration, logger: Logger) throws -> RuleSet {
        let (ruleSet, diagnostics) = RuleSet.load(snapshot, environment: configuration.environment)
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

/// What changes when a rule file changes: the names of the files that loading the rules would
/// read, and the identity of each (device, inode, size, times) through symbolic links, so that
/// swapping a ConfigMap's `..data` link counts as a change. Cheap: no file is read.
func rulesFingerprint(_ path: String) -> [String] {
    guard let stamp = fileStamp(path) else { return [] }
    let files = stamp.isDirectory ? RuleSet.yamlFiles(in: path) : [path]
    return files.map { file in
        "\(file) \(fileIdentity(file) ?? [])"
    }
}
