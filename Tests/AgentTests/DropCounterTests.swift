@testable import Agent
import Logging
import Synchronization
import Testing

/// The rate limit of drop and refusal warnings: the first at once, then one report a period with
/// the count, and what a quiet period counted is reported when it ends or at `flush()`, so every
/// count reaches the log once (the breaker saw the tail of a burst reported only in the metrics).
struct DropCounterTests {
    final class Reports: Sendable {
        let all = Mutex<[(Int, Logger.Metadata)]>([])
        var counts: [Int] { all.withLock { $0.map(\.0) } }
        var total: Int { counts.reduce(0, +) }
    }

    @Test func aQuietPeriodsCountIsReportedWhenItEnds() async throws {
        let reports = Reports()
        let counter = DropCounter(interval: .milliseconds(200)) { n, m in reports.all.withLock { $0.append((n, m)) } }
        counter.dropped(1, metadata: ["n": "1"])
        #expect(reports.counts == [1])
        for i in 2...5 { counter.dropped(2, metadata: ["n": "\(i)"]) }
        #expect(reports.counts == [1])
        // No further drop comes: the period's 8 are reported when it ends, with the last metadata.
        let deadline = ContinuousClock.now + .seconds(10)
        while reports.total < 9, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(reports.counts == [1, 8])
        #expect(reports.all.withLock { $0.last?.1["n"] } == "5")
    }

    @Test func flushReportsTheRestAtOnceAndNothingTwice() async throws {
        let reports = Reports()
        let counter = DropCounter(interval: .seconds(3600)) { n, _ in reports.all.withLock { $0.append((n, [:])) } }
        counter.dropped()
        counter.dropped(3)
        counter.dropped(4)
        #expect(reports.counts == [1])
        counter.flush()
        #expect(reports.counts == [1, 7])
        counter.flush()
        #expect(reports.counts == [1, 7])
    }
}
