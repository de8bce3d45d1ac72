import NIOCore

/// Collects `log` action lines and `--record` lines on the event loop and hands them to the
/// ``DiskWriter`` thread together: at most ``interval`` after the first line of a batch, or as soon
/// as ``handOverBytes`` are waiting. One hand-off wakes the writer at most once, however many
/// lines it carries, so a busy loop no longer pays a thread wakeup (a `futex`) per line.
///
/// Confined to its loop (checked by `NIOLoopBoundBox`): ``append(_:to:failed:)`` and
/// ``handOver()`` are called there.
///
/// Bounded: at most ``maxBytes`` bytes and ``maxLines`` lines wait here. The writer takes what
/// fits in its own queue; the rest stays here, in order, and is offered again on the next tick.
/// When the disk is stuck long enough for this buffer to fill as well, the oldest lines are
/// dropped (`onDrop` gets the count, on the loop) so that the loop never waits and memory stays
/// bounded.
final class LineBatcher: Sendable {
    /// What waits on the loop.
    private final class State {
        var jobs: [DiskWriter.Job] = []
        var bytes = 0
        var timer: Scheduled<Void>?
    }

    let writer: DiskWriter
    let loop: any EventLoop
    let interval: TimeAmount
    let handOverBytes: Int
    let maxBytes: Int
    let maxLines: Int
    private let state: NIOLoopBoundBox<State>
    private let onDrop: @Sendable (Int) -> Void

    /// - Parameters:
    ///   - interval: the longest a line waits before it is handed over (when the writer has room).
    ///   - handOverBytes: hand over at once when this many bytes wait.
    ///   - maxBytes, maxLines: what may wait here while the writer's queue is full.
    ///   - onDrop: called on the loop with the number of lines just dropped, the oldest ones.
    init(
        writer: DiskWriter, loop: any EventLoop, interval: TimeAmount = .milliseconds(100), handOverBytes: Int = 64 << 10,
        maxBytes: Int = 4 << 20, maxLines: Int = 20_000, onDrop: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        self.writer = writer
        self.loop = loop
        self.interval = max(interval, .zero)
        self.handOverBytes = max(1, handOverBytes)
        self.maxBytes = max(1, maxBytes)
        self.maxLines = max(1, maxLines)
        self.onDrop = onDrop
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: loop)
    }

    /// Queues a line (`bytes` must end with a newline); on the loop.
    func append(_ bytes: [UInt8], to target: DiskWriter.LineTarget, failed: (@Sendable (DiskError) -> Void)? = nil) {
        let s = state.value
        s.jobs.append(.line(target, bytes, failed: failed))
        s.bytes += bytes.count
        if s.bytes >= handOverBytes && s.bytes - bytes.count < handOverBytes {
            // Crossing the threshold: hand over now (while the writer is full, the tick retries).
            handOver()
        } else if s.timer == nil {
            schedule(s)
        }
        dropBeyondBounds(s)
    }

    /// Lines waiting here (the writer's queue was full); on the loop.
    var waiting: Int { state.value.jobs.count }

    /// Hands every waiting line the writer has room for to it, now; on the loop.
    /// - Returns: how many lines still wait (the writer's queue was full).
    @discardableResult
    func handOver() -> Int {
        let s = state.value
        s.timer?.cancel()
        s.timer = nil
        guard !s.jobs.isEmpty else { return 0 }
        let taken = writer.submit(lines: s.jobs[...])
        if taken == s.jobs.count {
            s.jobs.removeAll(keepingCapacity: s.jobs.capacity <= 1024)
            s.bytes = 0
            return 0
        }
        for job in s.jobs[..<taken] { s.bytes -= Self.size(job) }
        s.jobs.removeFirst(taken)
        schedule(s)
        return s.jobs.count
    }

    /// Hands everything over and waits until the writer wrote it, or `deadline`; true when
    /// written. Not on the loop (shutdown, tests).
    func flush(until deadline: ContinuousClock.Instant) async -> Bool {
        while true {
            let waiting = try? await loop.submit { self.handOver() }.get()
            let written = await writer.flush(until: deadline)
            if waiting == 0 { return written }
            if !written || ContinuousClock.now >= deadline { return false }
        }
    }

    private func schedule(_ s: State) {
        s.timer = loop.scheduleTask(in: interval) { [self] in
            state.value.timer = nil
            handOver()
        }
    }

    private func dropBeyondBounds(_ s: State) {
        guard s.bytes > maxBytes || s.jobs.count > maxLines else { return }
        var n = 0
        var bytes = s.bytes
        while n < s.jobs.count, bytes > maxBytes || s.jobs.count - n > maxLines {
            bytes -= Self.size(s.jobs[n])
            n += 1
        }
        s.jobs.removeFirst(n)
        s.bytes = bytes
        if n > 0 { onDrop(n) }
    }

    private static func size(_ job: DiskWriter.Job) -> Int {
        if case .line(_, let bytes, _) = job { return bytes.count }
        return 0
    }
}
