@testable import Agent
import SIOCore
import Testing

/// `spool.in_flight`: several `ack:` alerts per namespace on the wire at once, in fire order; a
/// failed send makes the namespace start again from its oldest unacknowledged alert.
struct OutboxWindowTests {
    private func alert(_ n: Int, namespace: String = "/") -> SpoolItem {
        SpoolItem(namespace: namespace, event: "alert", args: [.number(Double(n))], ackTimeout: .seconds(5), rule: "r")
    }

    private func sent(_ actions: [OutboxAction]) -> [UInt64] {
        actions.compactMap { if case .send(.spooled(let s), _) = $0 { s } else { nil } }
    }

    private func removed(_ actions: [OutboxAction]) -> [String] {
        actions.compactMap { if case .remove(let file) = $0 { file } else { nil } }
    }

    private func retries(_ actions: [OutboxAction]) -> Int {
        actions.count { if case .scheduleRetry = $0 { true } else { false } }
    }

    /// A state with `count` alerts written together into file "batch" (sequences 1…count),
    /// namespace "/" not yet connected.
    private func stateWithBatch(_ count: Int, inFlight: Int, maxItems: Int = 1000, namespaces: Set<String> = ["/"]) -> OutboxState {
        var state = OutboxState(
            configuration: OutboxState.Configuration(namespaces: namespaces, maxItems: maxItems, inFlight: inFlight, retryDelay: .seconds(5)),
            loaded: [], failedCount: 0, nextSequence: 1)
        for n in 1...count { _ = state.handle(.fire(alert(n), plannedAt: nil)) }
        for s in 1...count { _ = state.handle(.written(sequence: UInt64(s), file: "batch", inFile: count, error: nil)) }
        return state
    }

    private func ack(_ state: inout OutboxState, _ s: UInt64) -> [OutboxAction] {
        state.handle(.sendCompleted(.spooled(s), .delivered))
    }

    private func fail(_ state: inout OutboxState, _ s: UInt64, _ why: String = "no acknowledgement in time") -> [OutboxAction] {
        state.handle(.sendCompleted(.spooled(s), .failed(why, permanent: false)))
    }

    @Test func upToTheWindowGoOutInFireOrderAndEachAckMakesRoomForTheNext() {
        var state = stateWithBatch(10, inFlight: 4)
        #expect(sent(state.handle(.connected("/"))) == [1, 2, 3, 4])
        #expect(state.inFlight["/"] == [1, 2, 3, 4])
        #expect(sent(ack(&state, 1)) == [5])
        #expect(sent(ack(&state, 2)) == [6])
        #expect(state.inFlight["/"] == [3, 4, 5, 6])
    }

    @Test func outOfOrderAcksReleaseTheFileOnlyWhenItsLastAlertIsAcknowledged() {
        var state = stateWithBatch(6, inFlight: 32)
        #expect(sent(state.handle(.connected("/"))) == [1, 2, 3, 4, 5, 6])
        var removals: [String] = []
        for s: UInt64 in [4, 6, 2, 5, 3] {
            let actions = ack(&state, s)
            removals += removed(actions)
            #expect(sent(actions).isEmpty)
        }
        #expect(removals.isEmpty)
        #expect(state.queue.map(\.item.sequence) == [1])
        #expect(removed(ack(&state, 1)) == ["batch"])
        #expect(state.pending == 0 && state.isIdle)
    }

    @Test func aDisconnectWithAlertsInFlightResendsFromTheOldestUnacknowledgedInOrder() {
        var state = stateWithBatch(8, inFlight: 4)
        #expect(sent(state.handle(.connected("/"))) == [1, 2, 3, 4])
        _ = ack(&state, 2)  // 5 goes
        _ = state.handle(.disconnected("/"))
        // Connected again before the client reported the failures of the old connection: nothing
        // new goes while they are still in flight, else 6 could reach the server before 1.
        #expect(sent(state.handle(.connected("/"))).isEmpty)
        #expect(sent(fail(&state, 4, "disconnected")).isEmpty)
        #expect(sent(fail(&state, 1, "disconnected")).isEmpty)
        #expect(sent(fail(&state, 3, "disconnected")).isEmpty)
        let last = fail(&state, 5, "disconnected")
        #expect(retries(last) == 0)
        #expect(sent(last) == [1, 3, 4, 5])
        #expect(state.queue.map(\.item.sequence) == [1, 3, 4, 5, 6, 7, 8])
    }

    @Test func afterADisconnectTheNextConnectSendsFromTheOldest() {
        var state = stateWithBatch(5, inFlight: 3)
        #expect(sent(state.handle(.connected("/"))) == [1, 2, 3])
        _ = state.handle(.disconnected("/"))
        for s: UInt64 in [1, 2, 3] { #expect(sent(fail(&state, s, "disconnected")).isEmpty) }
        #expect(sent(state.handle(.connected("/"))) == [1, 2, 3])
    }

    @Test func anAckTimeoutOfAMiddleOneWaitsForTheWindowThenPausesThenResendsItFirst() {
        var state = stateWithBatch(8, inFlight: 4)
        #expect(sent(state.handle(.connected("/"))) == [1, 2, 3, 4])
        // 2's ack does not come in time; the others are still on the wire and may be acked.
        let timedOut = fail(&state, 2)
        #expect(sent(timedOut).isEmpty && retries(timedOut) == 0)
        #expect(sent(ack(&state, 1)).isEmpty)
        #expect(sent(ack(&state, 4)).isEmpty)
        let drained = ack(&state, 3)
        #expect(sent(drained).isEmpty)
        #expect(retries(drained) == 1)
        // A new alert while the namespace pauses waits behind the others.
        _ = state.handle(.fire(alert(9), plannedAt: nil))
        #expect(sent(state.handle(.written(sequence: 9, file: "f9", inFile: 1, error: nil))).isEmpty)
        #expect(sent(state.handle(.retryTimer)) == [2, 5, 6, 7])
    }

    @Test func aPermanentFailureInTheWindowDoesNotStopTheOthers() {
        var state = stateWithBatch(5, inFlight: 2)
        #expect(sent(state.handle(.connected("/"))) == [1, 2])
        let failed = state.handle(.sendCompleted(.spooled(1), .failed("reserved", permanent: true)))
        #expect(failed.contains { if case .storeFailed = $0 { true } else { false } })
        #expect(sent(failed) == [3])
    }

    @Test func anAlertStillBeingWrittenHoldsBackTheOnesBehindIt() {
        var state = OutboxState(
            configuration: OutboxState.Configuration(namespaces: ["/"], maxItems: 100, inFlight: 8, retryDelay: .seconds(5)),
            loaded: [], failedCount: 0, nextSequence: 1)
        _ = state.handle(.connected("/"))
        for n in 1...3 { _ = state.handle(.fire(alert(n), plannedAt: nil)) }
        // 2 and 3 are durable first (two files), 1 is not yet: nothing may overtake it.
        #expect(sent(state.handle(.written(sequence: 2, file: "f2", inFile: 1, error: nil))).isEmpty)
        #expect(sent(state.handle(.written(sequence: 3, file: "f3", inFile: 1, error: nil))).isEmpty)
        #expect(sent(state.handle(.written(sequence: 1, file: "f1", inFile: 1, error: nil))) == [1, 2, 3])
    }

    @Test func eachNamespaceHasItsOwnWindow() {
        var state = OutboxState(
            configuration: OutboxState.Configuration(namespaces: ["/", "/b"], maxItems: 100, inFlight: 2, retryDelay: .seconds(5)),
            loaded: [], failedCount: 0, nextSequence: 1)
        for n in 1...6 { _ = state.handle(.fire(alert(n, namespace: n % 2 == 0 ? "/b" : "/"), plannedAt: nil)) }
        for s in 1...6 { _ = state.handle(.written(sequence: UInt64(s), file: "f", inFile: 6, error: nil)) }
        #expect(sent(state.handle(.connected("/b"))) == [2, 4])
        #expect(sent(state.handle(.connected("/"))) == [1, 3])
        // A timeout in "/" pauses "/" only.
        _ = fail(&state, 1)
        #expect(sent(ack(&state, 2)) == [6])
    }

    /// In flight, an alert is never the one a budget drops; the window takes at most half of
    /// `spool.max_items`, so that the budget keeps room for alerts that wait.
    @Test func aBudgetNeverDropsAnAlertInFlight() {
        var state = stateWithBatch(4, inFlight: 32, maxItems: 9)
        #expect(sent(state.handle(.connected("/"))) == [1, 2, 3, 4])
        var discarded: [UInt64] = []
        for n in 5...12 {
            for action in state.handle(.fire(alert(n), plannedAt: nil)) {
                if case .discarded(let items, budget: .spool) = action { discarded += items.map(\.sequence) }
            }
        }
        #expect(!discarded.isEmpty)
        #expect(Set(discarded).isDisjoint(with: [1, 2, 3, 4]))
        #expect(state.totals.spooled <= 9)
        #expect(Array(state.queue.prefix(4)).map(\.item.sequence) == [1, 2, 3, 4])
        for s: UInt64 in [3, 1, 4, 2] { _ = ack(&state, s) }
        // What the budget kept (still being written: nothing more goes yet).
        #expect(state.queue.map(\.item.sequence) == Array(8...12))
    }

    @Test func theWindowStaysWithinTheByteBudgets() {
        var state = OutboxState(
            configuration: OutboxState.Configuration(namespaces: ["/"], maxItems: 1000, maxMemory: 600, inFlight: 32, retryDelay: .seconds(5)),
            loaded: [], failedCount: 0, nextSequence: 1)
        var all: [UInt64: SpoolItem] = [:]
        for n in 1...10 {
            for case .store(let item) in state.handle(.fire(alert(n), plannedAt: nil)) { all[item.sequence] = item }
        }
        for s in 1...10 { _ = state.handle(.written(sequence: UInt64(s), file: "f", inFile: 10, error: nil)) }
        // Payloads beyond spool.max_memory stayed on disk: the writer reads them back on demand.
        var actions = state.handle(.connected("/"))
        var sentNow = sent(actions)
        var reads = 0
        while actions.contains(where: { if case .readPayloads = $0 { true } else { false } }), reads < 20 {
            reads += 1
            actions = state.handle(.payloadsRead(file: "f", .success(all)))
            sentNow += sent(actions)
        }
        let inFlight = state.queue.filter { state.inFlight["/"]?.contains($0.item.sequence) == true }
        #expect(sentNow == inFlight.map(\.item.sequence))
        #expect(inFlight.count >= 2 && inFlight.count < 10)
        // Half of spool.max_memory, the other half for alerts that wait.
        #expect(inFlight.reduce(0) { $0 + $1.bytes } <= 300)
        let held = state.queue.reduce(0) { $0 + ($1.hasPayload ? $1.bytes : 0) }
        #expect(held <= 600 + inFlight[0].bytes)
    }

    @Test func inFlightIsClampedToItsRange() {
        #expect(OutboxState.Configuration(namespaces: ["/"], maxItems: 10, inFlight: 0, retryDelay: .seconds(1)).inFlight == 1)
        #expect(OutboxState.Configuration(namespaces: ["/"], maxItems: 10, inFlight: 5000, retryDelay: .seconds(1)).inFlight == 1024)
    }
}
