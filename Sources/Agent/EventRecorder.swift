import Logging
import SocketIO

#if canImport(Glibc)
import Glibc
#endif

/// Appends incoming events to a file, one JSON object a line, in the format that
/// `sioagent replay` reads: `{"at":1764064800.125,"namespace":"/","event":"batery","args":[20]}`
/// (`at` in seconds since the Unix epoch; bytes as `{"$binary":"…"}`).
///
/// Used on the event loop, which only encodes the line: the ``DiskWriter`` thread writes it, in
/// arrival order, and rotates the file like `log` files (`log_files.max_size` and `keep`). When
/// the writer's queue is full, the line is dropped with a warning (at most one every 10 s).
final class EventRecorder {
    private let target: DiskWriter.LineTarget
    private let path: String
    private let writer: DiskWriter
    private let logger: Logger?
    private let dropped = DropCounter()
    /// Batches the disk refused: one error every 10 s at most, not one per batch.
    private let failures = DropCounter()
    private var open = true

    /// Checks that the file can be written (at start; this touches the disk).
    init(path: String, maxBytes: Int = 10 << 20, keep: Int = 5, writer: DiskWriter = .shared, logger: Logger? = nil) throws {
        let files = LogFileWriter(maxBytes: maxBytes, keep: keep)
        do {
            try files.append(lines: [], to: path)
        } catch {
            throw DiskError(description: "cannot open the record file \(path): \(error)")
        }
        files.closeAll()
        self.path = path
        self.target = .file(path: path, maxBytes: maxBytes, keep: keep)
        self.writer = writer
        self.logger = logger
    }

    func record(_ event: SocketIOEvent, at time: Double) {
        guard open else { return }
        var line: [UInt8] = []
        line.reserveCapacity(128)
        line.append(contentsOf: #"{"at":"#.utf8)
        // Milliseconds are plenty, and keep the line short.
        JSONValue.writeNumber((time * 1000).rounded() / 1000, into: &line)
        line.append(contentsOf: #","namespace":"#.utf8)
        JSONValue.writeString(event.namespace, into: &line)
        line.append(contentsOf: #","event":"#.utf8)
        JSONValue.writeString(event.name, into: &line)
        line.append(contentsOf: #","args":"#.utf8)
        JSONValue.array(event.args).write(into: &line)
        line.append(contentsOf: "}\n".utf8)
        let logger = self.logger
        let path = self.path
        let failures = self.failures
        let queued = writer.append(line, to: target) { error in
            guard let count = failures.dropped() else { return }
            logger?.error(
                "cannot write the record file", metadata: ["record.path": "\(path)", "error": "\(error)", "record.failed_batches": "\(count)"])
        }
        if !queued, let count = dropped.dropped() {
            logger?.warning(
                "recorded event dropped: the disk writer's queue is full",
                metadata: ["record.dropped": "\(count)", "writer.max_lines": "\(writer.maxQueuedLines)"])
        }
    }

    /// Stops recording; the lines already handed over are still written.
    func close() {
        guard open else { return }
        open = false
        writer.closeFile(path)
    }
}
