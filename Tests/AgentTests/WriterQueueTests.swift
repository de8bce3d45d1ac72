@testable import Agent
import Foundation
import Logging
import Rules
import SocketIO
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What waits for the disk writer is bounded in bytes: a disk that hangs makes the writer refuse
/// further alerts, and the outbox keeps them in memory and writes them once the disk answers.
@Suite(.timeLimit(.minutes(1)))
struct WriterQueueTests {
    @Test func storesBeyondTheQueuesBytesAreRefusedAndKeptInMemoryUntilTheDiskAnswers() async throws {
        let dir = try TestPaths.temporaryDirectory("writer-queue")
        // A log file that is a FIFO nobody reads: opening it blocks the writer thread, as a disk
        // that hangs would.
        let fifo = dir + "/stuck.log"
        #expect(mkfifo(fifo, 0o600) == 0)
        var config = AgentConfiguration(server: .init(url: "http://127.0.0.1:9"), rules: dir, spool: .init(dir: dir + "/spool"))
        config.reconnection.maxDelay = .milliseconds(200)  // the retry delay of refused writes
        let client = SocketIOClient(configuration: config.clientConfiguration, logger: Logger(label: "t"))
        let loop = client.eventLoop
        // Room for 4 alerts of about 16 kB.
        let writer = DiskWriter(maxQueuedLines: 100, maxQueuedLineBytes: 1 << 20, maxQueuedStoreBytes: 64 << 10, storage: POSIXStorage.shared)
        let captured = CapturedLog()
        let metrics = AgentMetrics()
        let executor = try LiveExecutor(
            configuration: config, client: client, logger: Logger(label: "t", factory: { _ in captured }), writer: writer, metrics: metrics)
        #expect(writer.append(Array("first\n".utf8), to: .file(path: fifo, maxBytes: 1 << 20, keep: 1)))
        try await loop.submit {
            for i in 0..<20 {
                executor.execute(
                    PlannedAction(at: 0, rule: "r", phase: .then,
                                  kind: .emit(namespace: "/", event: "alert", args: [.number(Double(i)), .string(String(repeating: "x", count: 16_000))], ack: .seconds(5)),
                                  trigger: nil),
                    ack: nil)
            }
        }.get()
        // The writer took what fits its bound and refused the rest, which the outbox keeps.
        let refused = writer.statistics.storesRefused
        #expect(refused >= 16, "refused \(refused)")
        try await waitFor("the refusals to be logged") {
            captured.messages.filter { $0.hasPrefix("cannot write the alert to the spool; kept in memory") }.count >= refused
        }
        #expect(metrics.spoolWritesRefused.value == UInt64(refused))
        #expect(try await executor.pendingAlerts.get() == 20)
        #expect(!captured.messages.contains { $0.contains("dropped") })
        // The disk answers: every alert reaches the spool, none lost.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        #expect(reader >= 0)
        defer { close(reader) }
        try await waitFor("all 20 alerts in the spool") {
            (try? Spool(directory: dir + "/spool", maxItems: 1000).load().items.count) == 20
        }
        let spooled = try Spool(directory: dir + "/spool", maxItems: 1000).load().items
        #expect(Set(spooled.compactMap { if case .number(let n) = $0.args.first { Int(n) } else { nil } }) == Set(0..<20))
        await executor.shutdown(timeout: .seconds(2))
    }

    private func waitFor(_ what: String, _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while try !condition() {
            if ContinuousClock.now > deadline { Issue.record("timed out waiting for \(what)"); return }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
