@testable import Agent
import Foundation
import Logging
import Rules
import SocketIO
import Synchronization
import TestSupport
import Testing

/// The spool, the writer thread and the log lines: what a damaged or hostile disk can do.
struct DiskTests {
    private func write(_ text: String, _ path: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    private func names(_ dir: String) -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
    }

    private func mode(_ path: String) -> Int {
        var st = stat()
        lstat(path, &st)
        return Int(st.st_mode & 0o7777)
    }

    /// Every kind of unreadable entry goes to corrupt/; none traps, none blocks, the good one loads.
    @Test func unreadableSpoolEntriesGoToCorruptAndNeverTrap() throws {
        let dir = try TestPaths.temporaryDirectory("spool-corrupt")
        let good = #"{"namespace":"/","event":"alert","args":[1],"rule":"r","ack":5}"#
        try write(good, dir + "/0000000000000003.alert")
        // A sequence that overflows the next number.
        try write(good, dir + "/18446744073709551615.alert")
        // Beyond UInt64 altogether, and not digits.
        try write(good, dir + "/99999999999999999999999.alert")
        try write(good, dir + "/12ab.alert")
        // An ack that does not fit a Duration, negative, and of the wrong type.
        try write(#"{"namespace":"/","event":"alert","args":[],"ack":1e19}"#, dir + "/0000000000000004.alert")
        try write(#"{"namespace":"/","event":"alert","args":[],"ack":-1}"#, dir + "/0000000000000005.alert")
        try write(#"{"namespace":"/","event":"alert","args":[],"ack":"5s"}"#, dir + "/0000000000000006.alert")
        // Truncated, garbage, empty.
        try write(String(good.dropLast(10)), dir + "/0000000000000007.alert")
        try write("\u{0}\u{1}garbage", dir + "/0000000000000008.alert")
        try write("", dir + "/0000000000000009.alert")
        // A FIFO: opening it without O_NONBLOCK would wait for a writer forever.
        #expect(mkfifo(dir + "/0000000000000010.alert", 0o600) == 0)
        // Too large.
        try write(#"{"namespace":"/","event":"alert","args":[""# + String(repeating: "x", count: Spool.maxFileBytes) + #""]}"#,
                  dir + "/0000000000000011.alert")
        // Left by a crash between write and rename.
        try write(good, dir + "/0000000000000012.alert.tmp")
        // A directory and a symbolic link in its place.
        try FileManager.default.createDirectory(atPath: dir + "/0000000000000013.alert", withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: dir + "/0000000000000014.alert", withDestinationPath: "/dev/zero")

        let spool = try Spool(directory: dir, maxItems: 100)
        let (items, corrupt) = spool.load()
        #expect(items.map(\.sequence) == [3])
        #expect(items.first?.ackTimeout == .seconds(5))
        let expected: Set<String> = [
            "18446744073709551615.alert", "99999999999999999999999.alert", "12ab.alert", "0000000000000004.alert",
            "0000000000000005.alert", "0000000000000006.alert", "0000000000000007.alert", "0000000000000008.alert",
            "0000000000000009.alert", "0000000000000010.alert", "0000000000000011.alert", "0000000000000012.alert.tmp",
            "0000000000000013.alert", "0000000000000014.alert",
        ]
        #expect(Set(corrupt.map(\.name)) == expected)
        #expect(names(dir) == ["0000000000000003.alert", "corrupt"])
        #expect(names(dir + "/corrupt") == expected)
        // The next number follows the highest well-named file (never reusing a name), far from
        // overflowing.
        let next = try spool.append(SpoolItem(namespace: "/", event: "e", args: [], ackTimeout: nil, rule: "r"))
        #expect(next.stored.sequence == 15)
        // Loading again finds only good files.
        #expect(try Spool(directory: dir, maxItems: 100).load().corrupt.isEmpty)
    }

    @Test func outOfRangeAcksSaturateInsteadOfTrapping() {
        // `ack: 200000000000d` in a rule: 1.7e16 s, beyond what a TimeAmount holds.
        let item = SpoolItem(sequence: 1, namespace: "/", event: "e", args: [], ackTimeout: .seconds(200_000_000_000 * 86_400), rule: "r")
        #expect(item.ackTimeout == SpoolItem.maxAckTimeout)
        #expect(SpoolItem(namespace: "/", event: "e", args: [], ackTimeout: .zero, rule: "r").ackTimeout == .milliseconds(1))
        // What it writes, it reads back.
        let decoded = SpoolItem(sequence: 1, decoding: item.encoded())
        #expect(decoded?.ackTimeout == SpoolItem.maxAckTimeout)
    }

    @Test func filesArePrivateAndTemporaryFilesNeverFollowALink() throws {
        let root = try TestPaths.temporaryDirectory("spool-perm")
        let previous = umask(0o002)
        defer { umask(previous) }
        let dir = root + "/a/spool"
        let spool = try Spool(directory: dir, maxItems: 10)
        _ = spool.load()
        #expect(mode(root + "/a") == 0o700)
        #expect(mode(dir) == 0o700)
        // A link planted where the next temporary file goes: never written through.
        try write("precious", root + "/victim")
        try FileManager.default.createSymbolicLink(atPath: dir + "/0000000000000001.alert.tmp", withDestinationPath: root + "/victim")
        let stored = try spool.append(SpoolItem(namespace: "/", event: "e", args: [], ackTimeout: nil, rule: "r")).stored
        #expect(try String(contentsOfFile: root + "/victim", encoding: .utf8) == "precious")
        #expect(mode(spool.path(stored.sequence)) == 0o600)
        #expect(!FileManager.default.fileExists(atPath: dir + "/0000000000000001.alert.tmp"))

        let logs = LogFileWriter(maxBytes: 1 << 20, keep: 1)
        try logs.append("line", to: root + "/logs/x.log")
        #expect(mode(root + "/logs") == 0o700)
        #expect(mode(root + "/logs/x.log") == 0o600)
    }

    /// A batch is one write per file; the queue of lines is bounded.
    @Test func writerBatchesLinesAndBoundsItsQueue() async throws {
        let dir = try TestPaths.temporaryDirectory("writer")
        let writer = DiskWriter(maxQueuedLines: 500, maxQueuedLineBytes: 1 << 20)
        // Hold the writer thread so that everything below queues up.
        let gate = Gate()
        writer.flush { gate.wait() }
        gate.waitUntilEntered()
        let target = DiskWriter.LineTarget.file(path: dir + "/out.log", maxBytes: 1 << 20, keep: 1)
        var accepted = 0
        for i in 0..<600 where writer.append(Array("line \(i)\n".utf8), to: target) { accepted += 1 }
        #expect(accepted == 500)
        let before = writer.statistics
        gate.open()
        await writer.flush()
        let after = writer.statistics
        #expect(after.fileWrites - before.fileWrites == 1)
        let lines = try String(contentsOfFile: dir + "/out.log", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 500)
        #expect(lines.last == "line 499")
        // Room again once written.
        #expect(writer.append(Array("again\n".utf8), to: target))
        await writer.flush()
    }

    /// Alerts stored together become one spool file: one write, one fsync, one rename, one fsync
    /// of the directory; loading reads them back one by one, in order.
    @Test func alertsStoredTogetherAreOneFileAndOneFsync() async throws {
        let dir = try TestPaths.temporaryDirectory("writer-sync")
        let writer = DiskWriter()
        let gate = Gate()
        writer.flush { gate.wait() }
        gate.waitUntilEntered()
        let done = Counter()
        let files = Mutex<Set<String>>([])
        for i in 1...20 {
            let item = SpoolItem(sequence: UInt64(i), namespace: "/", event: "e", args: [.number(Double(i))], ackTimeout: .seconds(3), rule: "r")
            writer.submit(.store(directory: dir, name: Spool.fileName(UInt64(i)), bytes: item.encoded()) { result in
                if result.error == nil, result.storesInFile == 20 { done.add() }
                files.withLock { _ = $0.insert(result.file) }
            })
        }
        let before = writer.statistics
        gate.open()
        await writer.flush()
        let after = writer.statistics
        #expect(done.value == 20)
        #expect(files.withLock { $0 } == ["0000000000000001.alert"])
        #expect(after.fileSyncs - before.fileSyncs == 1)
        #expect(after.directorySyncs - before.directorySyncs == 1)
        #expect(names(dir) == ["0000000000000001.alert"])
        let spool = try Spool(directory: dir, maxItems: 100)
        let (items, corrupt) = spool.load()
        #expect(corrupt.isEmpty)
        #expect(items.map(\.sequence) == Array(1...20))
        #expect(items.map { $0.args[0] } == (1...20).map { .number(Double($0)) })
        #expect(Set(spool.fileNames.values) == ["0000000000000001.alert"])
        // A damaged line sets the whole file aside.
        let path = dir + "/0000000000000001.alert"
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text = text.replacingOccurrences(of: #""args":[7]"#, with: #""args":[7"#)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        #expect(try Spool(directory: dir, maxItems: 100).load().corrupt.map(\.name) == ["0000000000000001.alert"])
    }

    /// A spool file stays small enough to read back: big alerts stored together split files.
    @Test func bigAlertsStoredTogetherSplitFiles() async throws {
        let dir = try TestPaths.temporaryDirectory("writer-split")
        let writer = DiskWriter()
        let gate = Gate()
        writer.flush { gate.wait() }
        gate.waitUntilEntered()
        let big = String(repeating: "b", count: 600_000)
        for i in 1...3 {
            let item = SpoolItem(sequence: UInt64(i), namespace: "/", event: "e", args: [.string(big)], ackTimeout: nil, rule: "r")
            writer.submit(.store(directory: dir, name: Spool.fileName(UInt64(i)), bytes: item.encoded(), done: { _ in }))
        }
        gate.open()
        await writer.flush()
        #expect(names(dir).count == 3)
        #expect(try Spool(directory: dir, maxItems: 10).load().items.map(\.sequence) == [1, 2, 3])
    }

    /// With the writer thread stuck (a disk that does not answer), emits with `ack` and `log`
    /// lines still return at once on the event loop; the alert reaches the disk when it answers.
    @Test func theEventLoopNeverWaitsForTheDisk() async throws {
        let dir = try TestPaths.temporaryDirectory("loop-disk")
        let config = AgentConfiguration(
            server: .init(url: "http://127.0.0.1:9"), rules: dir, spool: .init(dir: dir + "/spool"))
        let client = SocketIOClient(configuration: config.clientConfiguration, logger: Logger(label: "t"))
        let loop = client.eventLoop
        // Room for 150 of the 200 log lines.
        let writer = DiskWriter(maxQueuedLines: 150)
        let captured = CapturedLog()
        let logger = Logger(label: "t", factory: { _ in captured })
        let executor = try LiveExecutor(configuration: config, client: client, logger: logger, writer: writer, spoolWriter: writer)
        let gate = Gate()
        writer.flush { gate.wait() }
        gate.waitUntilEntered()
        let elapsed = try await loop.submit { () -> Duration in
            let start = ContinuousClock.now
            for i in 0..<200 {
                executor.execute(
                    PlannedAction(at: 0, rule: "r", phase: .then, kind: .emit(namespace: "/", event: "alert", args: [.number(Double(i))], ack: .seconds(5)), trigger: nil),
                    ack: nil)
                executor.execute(
                    PlannedAction(at: 0, rule: "r", phase: .then, kind: .log(target: .file(dir + "/out.log"), message: "line \(i)"), trigger: nil),
                    ack: nil)
            }
            return ContinuousClock.now - start
        }.get()
        #expect(elapsed < .milliseconds(500))
        #expect(names(dir + "/spool").isEmpty)
        #expect(try await executor.pendingAlerts.get() == 200)
        gate.open()
        await writer.flush()
        #expect(try Spool(directory: dir + "/spool", maxItems: 1000).load().items.count == 200)
        // The 50 lines the writer's queue had no room for waited on the loop, and shutdown
        // writes them: every line, in order, none dropped.
        await executor.shutdown(timeout: .seconds(5))
        let lines = try String(contentsOfFile: dir + "/out.log", encoding: .utf8).split(separator: "\n")
        #expect(lines == (0..<200).map { "line \($0)"[...] })
        #expect(!captured.messages.contains { $0.hasPrefix("log lines dropped") })
    }

    /// Reserved names go to failed/, which is bounded like the spool.
    @Test func failedAlertsAreKeptUpToTheSpoolsBound() async throws {
        let dir = try TestPaths.temporaryDirectory("failed-bound")
        let config = AgentConfiguration(
            server: .init(url: "http://127.0.0.1:9"), rules: dir, spool: .init(dir: dir + "/spool", maxItems: 3))
        let client = SocketIOClient(configuration: config.clientConfiguration, logger: Logger(label: "t"))
        let writer = DiskWriter()
        let captured = CapturedLog()
        let executor = try LiveExecutor(
            configuration: config, client: client, logger: Logger(label: "t", factory: { _ in captured }), writer: writer, spoolWriter: writer)
        try await client.eventLoop.submit {
            for (i, name) in ["connect", "disconnect", "connect_error", "connect", "newListener"].enumerated() {
                executor.execute(
                    PlannedAction(at: 0, rule: "r", phase: .then, kind: .emit(namespace: "/", event: name, args: [.number(Double(i))], ack: nil), trigger: nil),
                    ack: nil)
            }
        }.get()
        await writer.flush()
        let failed = try Spool(directory: dir + "/spool/failed", maxItems: 100).load().items
        #expect(failed.map(\.event) == ["connect", "disconnect", "connect_error"])
        #expect(captured.messages.filter { $0 == "alert can never be delivered; moved to the failed directory" }.count == 5)
        #expect(captured.messages.filter { $0 == "the failed directory is full; failed alerts are logged only" }.count == 1)
        #expect(try await executor.pendingAlerts.get() == 0)
        await executor.shutdown(timeout: .seconds(1))
    }

    @Test func controlCharactersAreEscapedSoOneMessageIsOneLine() {
        #expect(escapingControlCharacters("plain text é") == "plain text é")
        // A backslash in the data is escaped too, so it never reads as an escape.
        #expect(escapingControlCharacters("plain \\ text") == #"plain \\ text"#)
        #expect(escapingControlCharacters("a\nb\r\tc\u{1b}[31m\u{7f}\u{85}\u{2028}")
                == #"a\nb\r\tc\u{1b}[31m\u{7f}\u{85}\u{2028}"#)
    }

    @Test func theAgentsTextLogKeepsOneEventOnOneLine() throws {
        let dir = try TestPaths.temporaryDirectory("loghandler")
        let fd = open(dir + "/log.txt", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { close(fd) }
        for format in [AgentLogHandler.Format.text, .json] {
            let handler = AgentLogHandler(label: "t", format: format, level: .info, fileDescriptor: fd)
            let logger = Logger(label: "t", factory: { _ in handler })
            logger.error("rule failed\n2026-01-01T00:00:00.000Z error t: forged", metadata: ["k": "v\nforged=1\u{85}\u{2028}"])
        }
        let lines = try String(contentsOfFile: dir + "/log.txt", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].contains(#"rule failed\n2026"#))
        #expect(lines[0].hasSuffix(#"k="v\nforged=1\u{85}\u{2028}""#))
    }
}

/// Holds a thread until opened.
final class Gate: Sendable {
    private let opened = Mutex(false)
    private let entered = Mutex(false)

    func wait() {
        entered.withLock { $0 = true }
        while !opened.withLock({ $0 }) { usleep(1000) }
    }

    /// Returns once a thread waits at the gate.
    func waitUntilEntered() {
        while !entered.withLock({ $0 }) { usleep(1000) }
    }

    func open() { opened.withLock { $0 = true } }
}

final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

/// Keeps the messages logged, for tests.
struct CapturedLog: LogHandler {
    private final class Store: Sendable {
        let messages = Mutex<[String]>([])
        let entries = Mutex<[(message: String, metadata: [String: String])]>([])
    }

    private let store = Store()
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        store.messages.withLock { $0.append(event.message.description) }
        let metadata = (event.metadata ?? [:]).mapValues { "\($0)" }
        store.entries.withLock { $0.append((event.message.description, metadata)) }
    }

    var messages: [String] { store.messages.withLock { $0 } }

    /// The metadata of each line logged with `message`, in order.
    func logged(_ message: String) -> [[String: String]] {
        store.entries.withLock { $0.filter { $0.message == message }.map(\.metadata) }
    }
}
