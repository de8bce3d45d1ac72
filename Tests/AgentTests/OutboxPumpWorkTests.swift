@testable import Agent
import SIOCore
import Testing

/// The pump's work per call is what it sends, not the length of the queue: 10,000 alerts of a
/// namespace that is down do not make each ack of another namespace cost 10,000 steps.
struct OutboxPumpWorkTests {
    private func sent(_ actions: [OutboxAction]) -> [UInt64] {
        actions.compactMap { if case .send(.spooled(let s), _) = $0 { s } else { nil } }
    }

    /// A state that loaded `plan` from the spool, in that order (sequences from 1), one file per
    /// alert, nothing connected.
    private func loaded(_ plan: [(namespace: String, count: Int)], inFlight: Int) -> OutboxState {
        var entries: [OutboxState.Loaded] = []
        for (ns, count) in plan {
            for _ in 0..<count {
                let s = UInt64(entries.count + 1)
                let item = SpoolItem(sequence: s, namespace: ns, event: "alert", args: [.number(Double(s))], ackTimeout: .seconds(5), rule: "r")
                entries.append(OutboxState.Loaded(item: item, file: "f\(s)", bytes: 100))
            }
        }
        var state = OutboxState(
            configuration: OutboxState.Configuration(namespaces: ["/down", "/up"], maxItems: 50_000, inFlight: inFlight, retryDelay: .seconds(5)),
            loaded: entries, failedCount: 0, nextSequence: UInt64(entries.count + 1))
        _ = state.start()
        return state
    }

    private func ack(_ state: inout OutboxState, _ s: UInt64) -> [OutboxAction] {
        state.handle(.sendCompleted(.spooled(s), .delivered))
    }

    @Test func acksOfOneNamespaceDoNotWalkTheQueueOfAnotherThatIsDown() {
        // "/down" holds 10,000 alerts ahead of the 100 of "/up".
        var state = loaded([("/down", 10_000), ("/up", 100)], inFlight: 4)
        #expect(sent(state.handle(.connected("/up"))) == [10_001, 10_002, 10_003, 10_004])
        let before = state.pumpVisits
        var order: [UInt64] = []
        for s: UInt64 in 10_001...10_100 { order += sent(ack(&state, s)) }
        #expect(order == Array(10_005...10_100))
        // At most two entries looked at per ack: the one sent, and the next one, which waits for
        // room in the window (the old pump walked the 10,000 on every ack).
        #expect(state.pumpVisits - before <= 200, "\(state.pumpVisits - before) entries looked at for 100 acks")
        #expect(state.queue.count == 10_000 && state.isIdle)
        // Nothing of "/up" is queued now: a plain alert goes at once.
        let plain = SpoolItem(namespace: "/up", event: "note", args: [], ackTimeout: nil, rule: "r")
        #expect(state.handle(.fire(plain, plannedAt: nil)).contains { if case .send(.direct, _) = $0 { true } else { false } })
        // "/down" comes back: its oldest go first, in order.
        #expect(sent(state.handle(.connected("/down"))) == [1, 2, 3, 4])
    }

    @Test func acksDoNotWalkAQueueBehindTheWindow() {
        // "/up" has all it holds in flight; the 10,000 of "/down" stand behind them.
        var state = loaded([("/up", 10), ("/down", 10_000)], inFlight: 32)
        #expect(sent(state.handle(.connected("/up"))) == Array(1...10))
        let before = state.pumpVisits
        for s: UInt64 in 1...10 { #expect(sent(ack(&state, s)).isEmpty) }
        #expect(state.pumpVisits - before == 0, "\(state.pumpVisits - before) entries looked at for 10 acks")
        #expect(sent(state.handle(.connected("/down"))) == Array(11...42))
    }
}
