import Logging
import NIOCore
import SocketIO

#if canImport(Glibc)
import Glibc
#endif

/// Appends incoming events to a file, one JSON object a line, in the format that
/// `sioagent replay` reads: `{"at":1764064800.125,"namespace":"/","event":"batery","args":[20]}`
/// (`at` in seconds since the Unix epoch; bytes as `{"$binary":"…"}`).
///
/// Used on the event loop, which only encodes the line and collects it (``LineBatcher``: handed
/// over every 100 ms or at 64 KiB); the ``DiskWriter`` thread writes it, in arrival order, and
/// rotates the file like `log` files (`log_files.max_size` and `keep`). While the disk is stuck,
/// lines wait up to the batcher's bound; beyond it the oldest are dropped, with a warning (at most
/// one every 10 s) and `sioagent_dropped_total{budget="record_lines"}`.
final class EventRecorder {
    private let target: DiskWriter.LineTarget
    private let path: String
    private let writer: DiskWriter
    /// The lines waiting on the loop.
    let lines: LineBatcher
    private let logger: Logger?
    /// Batches the disk refused: one error every 10 s at most, not one per batch.
    private let failures: DropCounter
    private var open = true

    /// Checks that the file can be written (at start; this touches the disk).
    init(
        path: String, maxBytes: Int = 10 << 20, keep: Int = 5, writer: DiskWriter = .shared, loop: any EventLoop,
        logger: Logger? = nil, metrics: AgentMetrics? = nil
    ) throws {
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
        let dropped = DropCounter { total, _ in
            logger?.warning(
                "recorded events dropped: the disk is not keeping up; the oldest waiting lines were dropped",
                metadata: ["record.dropped": "\(total)"])
        }
        self.lines = LineBatcher(writer: writer, loop: loop) { count in
            metrics?.dropped(.recordLines, count: count)
            dropped.dropped(count)
        }
        self.failures = DropCounter { count, metadata in
            var metadata = metadata
            metadata["record.path"] = "\(path)"
            metadata["record.failed_batches"] = "\(count)"
            logger?.error("cannot write the record file", metadata: metadata)
        }
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
        let failures = self.failures
        lines.append(line, to: target) { error in
            failures.dropped(metadata: ["error": "\(error)"])
        }
    }

    /// Stops recording (on the loop): the lines recorded so far are handed to the writer, which
    /// writes them and then closes the file.
    func close() {
        guard open else { return }
        open = false
        lines.handOver()
        writer.closeFile(path)
    }

    /// Waits until the lines recorded so far are written, or `deadline`; not on the loop.
    func flush(until deadline: ContinuousClock.Instant) async -> Bool {
        await lines.flush(until: deadline)
    }
}
