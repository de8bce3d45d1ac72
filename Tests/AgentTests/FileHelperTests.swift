@testable import Agent
import Glibc
import Logging
import NIOCore
import NIOPosix
import SocketIO
import TestSupport
import Testing

/// The small file helpers, with what a file on the device can hold: a time far ahead, a size
/// far beyond memory.
struct FileHelperTests {
    @Test func aModificationTimeFarAheadSaturatesInsteadOfTrapping() throws {
        let dir = try TestPaths.temporaryDirectory("stamp")
        let path = dir + "/rules.yaml"
        #expect(writeAll(try openForAppending(path).fd, Array("rules: []\n".utf8)))
        // Year 3000, and the latest time the kernel keeps: neither fits in Int nanoseconds.
        for seconds in [32_503_680_000, Int.max / 2] {
            var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
            guard utimensat(AT_FDCWD, path, &times, 0) == 0 else { continue }
            let stamp = try #require(fileStamp(path))
            #expect(stamp.modified == Int.max)
            #expect(stamp.size == 10)
        }
        // A time that fits is exact.
        var times = [timespec(tv_sec: 1_700_000_000, tv_nsec: 5), timespec(tv_sec: 1_700_000_000, tv_nsec: 5)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        #expect(fileStamp(path)?.modified == 1_700_000_000_000_000_005)
    }

    @Test func readFileRefusesAFileBeyondItsLimitWithoutReadingIt() throws {
        let dir = try TestPaths.temporaryDirectory("readfile")
        let path = dir + "/huge.yaml"
        let fd = try openForAppending(path).fd
        defer { close(fd) }
        // Sparse: no disk used, but reading it would take the memory.
        #expect(ftruncate(fd, off_t(maxReadFileBytes) + 1) == 0)
        // (Not `#expect(throws:)`: on failure it would print every byte read.)
        let refused = (try? readFile(path)) == nil
        #expect(refused)
        #expect(ftruncate(fd, 4) == 0)
        #expect(try readFile(path) == [0, 0, 0, 0])
    }
}

struct RecorderFailureTests {
    /// A record file the disk refuses (here: a directory took its place) is one error every
    /// 10 s, not one per written batch: a full disk must not flood the journal.
    @Test func aRefusedRecordFileIsReportedOncePerPeriod() async throws {
        let dir = try TestPaths.temporaryDirectory("record-refused")
        let path = dir + "/events.jsonl"
        let log = CapturedLog()
        let writer = DiskWriter()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let recorder = try await loop.submit {
            NIOLoopBound(try EventRecorder(path: path, writer: writer, loop: loop, logger: Logger(label: "t", factory: { _ in log })), eventLoop: loop)
        }.get()
        let lines = try await loop.submit { recorder.value.lines }.get()
        #expect(unlink(path) == 0)
        #expect(mkdir(path, 0o700) == 0)
        for i in 0..<20 {
            try await loop.submit { recorder.value.record(SocketIOEvent(namespace: "/", name: "e", args: [.number(Double(i))]), at: 1) }.get()
            #expect(await lines.flush(until: .now + .seconds(10)))
        }
        #expect(writer.statistics.batches >= 20)
        #expect(log.messages.filter { $0 == "cannot write the record file" }.count == 1)
    }
}
