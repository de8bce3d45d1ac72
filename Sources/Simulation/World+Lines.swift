import Agent

/// The line writer in the simulation: `log` action lines go to a thread of their own, as in the
/// agent (the spool has another). The `log` target may hang (a FIFO nobody reads): a line batch
/// then never completes until it is freed. Only what the spool's invariants need is modelled:
/// lines are counted, not written; the queue is bounded and drops its oldest beyond the bound.
extension World {
    /// Lines waiting for the line writer (the agent's `LineBatcher` bound and the writer's queue,
    /// together): beyond it the oldest are dropped with a warning.
    static let maxWaitingLines = 1_000

    /// The longest a spool write may wait for the spool's writer: the batch being written and its
    /// own, each at most the slowest disk latency (3 s), with room to spare. A spool write that
    /// waits longer waits for something else than its disk.
    static let longestSpoolWait: Int64 = 10_000_000_000

    /// A `log` action's line.
    func appendLine(_ agent: AgentProcess) {
        if agent.lineJobs >= Self.maxWaitingLines {
            agent.linesDropped += 1
        } else {
            agent.lineJobs += 1
        }
        startLineBatch(agent)
    }

    private func startLineBatch(_ agent: AgentProcess) {
        guard !agent.lineBusy, agent.lineJobs > 0 else { return }
        agent.lineBusy = true
        agent.lineBatch = agent.lineJobs
        agent.lineJobs = 0
        schedule(.lineWriterDone(run: agent.run), after: lineRandom.seconds(0.0005, 0.01))
    }

    /// The line batch ends, unless the target hangs: then it holds the line writer until freed.
    func lineBatchDone(_ agent: AgentProcess) {
        guard agent.lineBusy else { return }
        if logStuck {
            if !agent.lineHung { note("writer of lines hangs on the log target (\(agent.lineBatch) lines)") }
            agent.lineHung = true
            return
        }
        agent.lineHung = false
        agent.lineBatch = 0
        agent.lineBusy = false
        startLineBatch(agent)
        // With the `shared-writer` mutation, the spool's batch waited for this one.
        if agent.spoolWaitsForLines {
            agent.spoolWaitsForLines = false
            schedule(.writerDone(run: agent.run), after: 0)
        }
    }

    /// The `log` target takes writes again.
    func logFree() {
        logStuck = false
        note("the log target takes writes again")
        if let agent, !agent.exited, agent.lineHung { schedule(.lineWriterDone(run: agent.run), after: 0) }
    }

    /// Lines not written: queued, and the batch being written.
    func unwrittenLines(_ agent: AgentProcess) -> Int { agent.lineJobs + agent.lineBatch }
}
