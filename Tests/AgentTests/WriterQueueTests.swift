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
            configuration: config, client: client, logger: Logger(label: "t", factory: { _ in captured }), writer: writer, spoolWriter: writer,
            metrics: metrics)
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
        // One warning for the burst (one every 10 s at most), counted in full by the metric.
        try await waitFor("the refusal to be logged") {
            !captured.logged("cannot write the alert to the spool; kept in memory until the disk takes it").isEmpty
        }
        #expect(captured.logged("cannot write the alert to the spool; kept in memory until the disk takes it").map { $0["spool.refused"] } == ["1"])
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

    /// The spool's writer holds at most half of `spool.max_memory` of alerts being written (at
    /// least 1 MiB): the alerts it refuses are kept in memory within `spool.max_memory`, where
    /// those being written do not count, not dropped at once; beyond it the oldest go. Each kind
    /// of warning comes once for the burst, and the metrics count them all. Shutdown hands the
    /// kept alerts to the writer, which may not refuse them then: all on disk.
    @Test func refusedAlertsAreKeptWithinMaxMemoryBesideTheSpoolWritersBound() async throws {
        #expect(DiskWriter.spoolStoreBound(maxMemory: 4 << 20) == 2 << 20)
        #expect(DiskWriter.spoolStoreBound(maxMemory: 64 << 20) == 32 << 20)
        #expect(DiskWriter.spoolStoreBound(maxMemory: 64 << 10) == 1 << 20)
        #expect(DiskWriter.spoolStoreBound(maxMemory: 0) == DiskWriter.minimumSpoolStoreBytes)
        let dir = try TestPaths.temporaryDirectory("spool-writer-bound")
        var spool = AgentConfiguration.Spool(dir: dir + "/spool")
        spool.maxMemory = 4 << 20
        var config = AgentConfiguration(server: .init(url: "http://127.0.0.1:9"), rules: dir, spool: spool)
        config.reconnection.maxDelay = .seconds(300)  // no rewrite of refused alerts during the test
        let client = SocketIOClient(configuration: config.clientConfiguration, logger: Logger(label: "t"))
        let spoolWriter = DiskWriter.forSpool(maxMemory: spool.maxMemory)
        #expect(spoolWriter.maxQueuedStoreBytes == 2 << 20)
        let captured = CapturedLog()
        let metrics = AgentMetrics()
        let executor = try LiveExecutor(
            configuration: config, client: client, logger: Logger(label: "t", factory: { _ in captured }), spoolWriter: spoolWriter,
            metrics: metrics)
        // The disk does not answer.
        let gate = Gate()
        spoolWriter.flush { gate.wait() }
        gate.waitUntilEntered()
        func fire(_ range: Range<Int>) async throws {
            try await client.eventLoop.submit {
                for i in range {
                    executor.execute(
                        PlannedAction(at: 0, rule: "r", phase: .then,
                                      kind: .emit(namespace: "/", event: "alert", args: [.number(Double(i)), .string(String(repeating: "x", count: 64_850))], ack: .seconds(5)),
                                      trigger: nil),
                        ack: nil)
                }
            }.get()
        }
        // 96 alerts of about 65 kB: 32 fill the writer's 2 MiB, 64 more are refused and kept in
        // the 4 MiB of spool.max_memory.
        try await fire(0..<96)
        try await waitFor("the refusals") { metrics.spoolWritesRefused.value == 64 }
        #expect(spoolWriter.statistics.storesRefused == 64)
        #expect(spoolWriter.unwritten.stores == 32)
        #expect(metrics.droppedCount(.memory) == 0)
        #expect(try await executor.pendingAlerts.get() == 96)
        // 8 more: memory is full, the oldest refused ones go.
        try await fire(96..<104)
        try await waitFor("the drops") { metrics.droppedCount(.memory) == 8 }
        #expect(metrics.spoolWritesRefused.value == 72)
        #expect(try await executor.pendingAlerts.get() == 96)
        // One warning of each kind for the whole burst (72 refusals, 8 drops: the metrics count them).
        #expect(captured.logged("cannot write the alert to the spool; kept in memory until the disk takes it").map { $0["spool.refused"] } == ["1"])
        #expect(captured.logged("alerts kept in memory are too many; dropped the oldest").map { $0["spool.dropped"] } == ["1"])
        // The disk answers; shutdown writes the kept ones too.
        gate.open()
        await executor.shutdown(timeout: .seconds(5))
        let spooled = try Spool(directory: dir + "/spool", maxItems: 1000).load().items
        let numbers = Set(spooled.compactMap { if case .number(let n) = $0.args.first { Int(n) } else { nil } })
        #expect(numbers == Set(0..<32).union(40..<104), "\(numbers.sorted())")
        #expect(captured.logged("shutdown: not everything reached the disk by the deadline; the rest is lost with the process").isEmpty)
    }

    /// Shutdown with both writers stuck ends at its deadline and says, in one line, how many
    /// alerts and lines were not written.
    @Test func shutdownCountsWhatTheStuckWritersStillHold() async throws {
        let dir = try TestPaths.temporaryDirectory("stuck-shutdown")
        let config = AgentConfiguration(server: .init(url: "http://127.0.0.1:9"), rules: dir, spool: .init(dir: dir + "/spool"))
        let client = SocketIOClient(configuration: config.clientConfiguration, logger: Logger(label: "t"))
        let lineWriter = DiskWriter(maxQueuedLines: 100, maxQueuedLineBytes: 1 << 20)
        let spoolWriter = DiskWriter.forSpool(maxMemory: config.spool.maxMemory)
        let captured = CapturedLog()
        let executor = try LiveExecutor(
            configuration: config, client: client, logger: Logger(label: "t", factory: { _ in captured }), writer: lineWriter,
            spoolWriter: spoolWriter)
        let spoolGate = Gate(), lineGate = Gate()
        spoolWriter.flush { spoolGate.wait() }
        lineWriter.flush { lineGate.wait() }
        spoolGate.waitUntilEntered()
        lineGate.waitUntilEntered()
        try await client.eventLoop.submit {
            for i in 0..<10 {
                executor.execute(
                    PlannedAction(at: 0, rule: "r", phase: .then, kind: .emit(namespace: "/", event: "alert", args: [.number(Double(i))], ack: .seconds(5)), trigger: nil),
                    ack: nil)
                executor.execute(
                    PlannedAction(at: 0, rule: "r", phase: .then, kind: .log(target: .file(dir + "/out.log"), message: "line \(i)"), trigger: nil),
                    ack: nil)
            }
        }.get()
        let start = ContinuousClock.now
        await executor.shutdown(timeout: .seconds(1))
        let took = ContinuousClock.now - start
        #expect(took < .milliseconds(1500), "shutdown took \(took)")
        let report = captured.logged("shutdown: not everything reached the disk by the deadline; the rest is lost with the process")
        #expect(report.count == 1)
        #expect(report.first?["shutdown.alerts_unwritten"] == "10")
        #expect(report.first?["shutdown.lines_unwritten"] == "10")
        spoolGate.open()
        lineGate.open()
        await spoolWriter.flush()
        await lineWriter.flush()
    }

    private func waitFor(_ what: String, _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while try !condition() {
            if ContinuousClock.now > deadline { Issue.record("timed out waiting for \(what)"); return }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
