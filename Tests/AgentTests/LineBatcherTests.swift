@testable import Agent
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing

/// `log` and `--record` lines collected on the loop and handed to the writer thread together.
struct LineBatcherTests {
    private func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    private func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while !condition() {
            if ContinuousClock.now > deadline { throw TestFailure("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Lines appended within the interval reach the file in one batch of the writer: one
    /// hand-off, one wakeup, one `write`, handed over by the timer alone.
    @Test func linesWithinTheIntervalAreOneBatch() async throws {
        let dir = try TestPaths.temporaryDirectory("batcher-one")
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let writer = DiskWriter()
        let batcher = LineBatcher(writer: writer, loop: loop)
        let target = DiskWriter.LineTarget.file(path: dir + "/out.log", maxBytes: 1 << 20, keep: 1)
        let before = writer.statistics
        let elapsed = try await loop.submit { () -> Duration in
            let start = ContinuousClock.now
            for i in 0..<500 { batcher.append(Array("line \(i)\n".utf8), to: target) }
            return ContinuousClock.now - start
        }.get()
        #expect(elapsed < .milliseconds(100))
        try await waitUntil("500 lines") { lines(dir + "/out.log").count == 500 }
        let after = writer.statistics
        #expect(after.batches - before.batches == 1)
        #expect(after.fileWrites - before.fileWrites == 1)
        #expect(lines(dir + "/out.log") == (0..<500).map { "line \($0)" })
    }

    /// 64 KiB waiting are handed over at once, without waiting for the timer.
    @Test func sixtyFourKiBAreHandedOverAtOnce() async throws {
        let dir = try TestPaths.temporaryDirectory("batcher-bytes")
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let writer = DiskWriter()
        let batcher = LineBatcher(writer: writer, loop: loop, interval: .hours(1))
        let target = DiskWriter.LineTarget.file(path: dir + "/out.log", maxBytes: 1 << 22, keep: 1)
        // 100 bytes a line: the 656th crosses 64 KiB.
        try await loop.submit {
            for i in 0..<1000 {
                batcher.append(Array((String(format: "%05d ", i) + String(repeating: "x", count: 93) + "\n").utf8), to: target)
            }
        }.get()
        try await waitUntil("the first 64 KiB") { lines(dir + "/out.log").count >= 656 }
        await writer.flush()
        #expect(lines(dir + "/out.log").count == 656)
        #expect(await batcher.flush(until: .now + .seconds(10)))
        #expect(lines(dir + "/out.log").count == 1000)
        #expect(lines(dir + "/out.log").last?.hasPrefix("00999 ") == true)
    }

    /// A stuck disk: the writer's queue fills, lines wait on the loop up to the batcher's bound,
    /// and beyond it the oldest waiting ones are dropped and counted; the loop never waits. When
    /// the disk answers, what was kept is written in order.
    @Test func aStuckDiskDropsTheOldestWaitingLines() async throws {
        let dir = try TestPaths.temporaryDirectory("batcher-stuck")
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let writer = DiskWriter(maxQueuedLines: 10)
        let dropped = Mutex(0)
        let batcher = LineBatcher(writer: writer, loop: loop, interval: .milliseconds(1), maxBytes: 900) { n in
            dropped.withLock { $0 += n }
        }
        let gate = Gate()
        writer.flush { gate.wait() }
        gate.waitUntilEntered()
        let target = DiskWriter.LineTarget.file(path: dir + "/out.log", maxBytes: 1 << 20, keep: 1)
        // 9 bytes a line; the first 10 go to the writer's queue on the first tick.
        try await loop.submit { for i in 0..<10 { batcher.append(Array(String(format: "line %03d\n", i).utf8), to: target) } }.get()
        #expect(try await loop.submit { batcher.handOver() }.get() == 0)
        let elapsed = try await loop.submit { () -> Duration in
            let start = ContinuousClock.now
            for i in 10..<300 { batcher.append(Array(String(format: "line %03d\n", i).utf8), to: target) }
            return ContinuousClock.now - start
        }.get()
        #expect(elapsed < .milliseconds(500))
        // 900 bytes wait: the newest 100 lines; the 190 before them were dropped.
        #expect(dropped.withLock { $0 } == 190)
        gate.open()
        #expect(await batcher.flush(until: .now + .seconds(10)))
        let written = lines(dir + "/out.log")
        #expect(written == (0..<10).map { String(format: "line %03d", $0) } + (200..<300).map { String(format: "line %03d", $0) })
    }
}
