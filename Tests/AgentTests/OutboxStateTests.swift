@testable import Agent
import SIOCore
import Testing

/// The outbox's decisions as a value: inputs in, actions out, no loop and no disk.
struct OutboxStateTests {
    private func configuration(maxItems: Int = 100) -> OutboxState.Configuration {
        OutboxState.Configuration(namespaces: ["/"], maxItems: maxItems, retryDelay: .seconds(5))
    }

    private func alert(_ n: Int, ack: Bool = true) -> SpoolItem {
        SpoolItem(namespace: "/", event: "alert", args: [.number(Double(n))], ackTimeout: ack ? .seconds(5) : nil, rule: "r")
    }

    private func stored(_ actions: [OutboxAction]) -> [SpoolItem] {
        actions.compactMap { if case .store(let item) = $0 { item } else { nil } }
    }

    private func removed(_ actions: [OutboxAction]) -> [String] {
        actions.compactMap { if case .remove(let file) = $0 { file } else { nil } }
    }

    private func sent(_ actions: [OutboxAction]) -> [(OutboxSend, SpoolItem)] {
        actions.compactMap { if case .send(let s, let item) = $0 { (s, item) } else { nil } }
    }

    @Test func anAckAlertIsWrittenBeforeItIsSentAndItsFileGoesOnceAcknowledged() {
        var state = OutboxState(configuration: configuration(), loaded: [], failedCount: 0, nextSequence: 1)
        _ = state.handle(.connected("/"))
        let fired = state.handle(.fire(alert(1), plannedAt: nil))
        #expect(stored(fired).count == 1)
        #expect(sent(fired).isEmpty)
        let item = stored(fired)[0]
        let written = state.handle(.written(sequence: item.sequence, file: "f1", inFile: 1, error: nil))
        #expect(sent(written).map(\.1.sequence) == [item.sequence])
        let acked = state.handle(.sendCompleted(.spooled(item.sequence), .delivered))
        #expect(removed(acked) == ["f1"])
        #expect(state.pending == 0 && state.isIdle)
    }

    /// Issue 14: a burst larger than spool.max_items within one write released the batch file
    /// when the first dropped alert reported, before the survivors were counted.
    @Test func anAlertDroppedWhileItsBatchIsWrittenDoesNotReleaseTheFileUnderTheOthers() {
        var state = OutboxState(configuration: configuration(maxItems: 2), loaded: [], failedCount: 0, nextSequence: 1)
        var items: [SpoolItem] = []
        for n in 1...10 { items += stored(state.handle(.fire(alert(n), plannedAt: nil))) }
        #expect(items.count == 10)
        #expect(state.pending == 2)
        var removals: [String] = []
        for item in items {
            removals += removed(state.handle(.written(sequence: item.sequence, file: "batch", inFile: 10, error: nil)))
        }
        #expect(removals.isEmpty)
        #expect(state.queue.map(\.item.args) == [[.number(9)], [.number(10)]])
        // Delivered, both: now the file goes.
        _ = state.handle(.connected("/"))
        // spool.max_items 2: one in flight at a time.
        let first = state.inFlight["/"]!
        #expect(first.count == 1)
        removals += removed(state.handle(.sendCompleted(.spooled(first[0]), .delivered)))
        removals += removed(state.handle(.sendCompleted(.spooled(state.inFlight["/"]![0]), .delivered)))
        #expect(removals == ["batch"])
    }

    @Test func theFaultPutBackReleasesTheBatchEarly() {
        var c = configuration(maxItems: 2)
        c.mutation = .batchReleasedEarly
        var state = OutboxState(configuration: c, loaded: [], failedCount: 0, nextSequence: 1)
        var items: [SpoolItem] = []
        for n in 1...10 { items += stored(state.handle(.fire(alert(n), plannedAt: nil))) }
        var removals: [String] = []
        for item in items { removals += removed(state.handle(.written(sequence: item.sequence, file: "batch", inFile: 10, error: nil))) }
        #expect(!removals.isEmpty)
    }

    @Test func aMissingAckIsRetriedAfterThePause() {
        var state = OutboxState(configuration: configuration(), loaded: [], failedCount: 0, nextSequence: 1)
        _ = state.handle(.connected("/"))
        let item = stored(state.handle(.fire(alert(1), plannedAt: nil)))[0]
        _ = state.handle(.written(sequence: item.sequence, file: "f", inFile: 1, error: nil))
        let failed = state.handle(.sendCompleted(.spooled(item.sequence), .failed("timeout", permanent: false)))
        #expect(failed.contains { if case .scheduleRetry = $0 { true } else { false } })
        #expect(sent(state.handle(.retryTimer)).count == 1)
        // A timer the state did not arm does nothing.
        #expect(state.handle(.retryTimer).isEmpty)
    }

    @Test func aRefusedWriteKeepsTheAlertInMemoryAndSendsIt() {
        var state = OutboxState(configuration: configuration(), loaded: [], failedCount: 0, nextSequence: 1)
        _ = state.handle(.connected("/"))
        let item = stored(state.handle(.fire(alert(1), plannedAt: nil)))[0]
        let refused = state.handle(.written(sequence: item.sequence, file: "f", inFile: 1, error: DiskError(storage: "full", code: 28)))
        #expect(sent(refused).count == 1)
        #expect(refused.contains { if case .schedulePersistRetry = $0 { true } else { false } })
    }

    @Test func aPayloadLeftOnDiskIsReadBackBeforeItIsSent() {
        var item = alert(1)
        item.sequence = 1
        var stripped = item
        stripped.args = []
        var state = OutboxState(
            configuration: configuration(), loaded: [OutboxState.Loaded(item: stripped, file: "f", hasPayload: false, bytes: 40)], failedCount: 0,
            nextSequence: 2)
        let connected = state.handle(.connected("/"))
        #expect(sent(connected).isEmpty)
        #expect(connected.contains { if case .readPayloads(file: "f") = $0 { true } else { false } })
        let read = state.handle(.payloadsRead(file: "f", .success([1: item])))
        #expect(sent(read).map(\.1) == [item])
    }

    @Test func alertsRewrittenAfterARefusedWriteStayWithinMaxItems() {
        var state = OutboxState(configuration: configuration(maxItems: 3), loaded: [], failedCount: 0, nextSequence: 1)
        var items: [SpoolItem] = []
        for n in 1...3 { items += stored(state.handle(.fire(alert(n), plannedAt: nil))) }
        for item in items { _ = state.handle(.written(sequence: item.sequence, file: "f\(item.sequence)", inFile: 1, error: DiskError(storage: "full", code: 28))) }
        for n in 4...6 {
            for item in stored(state.handle(.fire(alert(n), plannedAt: nil))) {
                _ = state.handle(.written(sequence: item.sequence, file: "f\(item.sequence)", inFile: 1, error: nil))
            }
        }
        _ = state.handle(.persistRetryTimer)
        #expect(state.totals.spooled <= 3)
    }

    @Test func loadedAlertsGoOutInOrderOnConnect() {
        let loaded = (1...3).map { n -> OutboxState.Loaded in
            var item = alert(n)
            item.sequence = UInt64(n)
            return OutboxState.Loaded(item: item, file: "f")
        }
        var state = OutboxState(configuration: configuration(), loaded: loaded, failedCount: 0, nextSequence: 4)
        _ = state.start()
        #expect(sent(state.handle(.connected("/"))).map(\.1.sequence) == [1, 2, 3])
        #expect(sent(state.handle(.sendCompleted(.spooled(1), .delivered))).isEmpty)
        // A new alert takes a sequence above the loaded ones.
        #expect(stored(state.handle(.fire(alert(9), plannedAt: nil))).map(\.sequence) == [4])
    }
}
