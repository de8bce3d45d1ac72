import SocketIO

#if canImport(Glibc)
import Glibc
#endif

/// Appends incoming events to a file, one JSON object a line, in the format that
/// `sioagent replay` reads: `{"at":1764064800.125,"namespace":"/","event":"batery","args":[20]}`
/// (`at` in seconds since the Unix epoch; bytes as `{"$binary":"…"}`).
///
/// Used on the event loop: one `write` of a few hundred bytes per event, in arrival order.
final class EventRecorder {
    private var fd: Int32

    init(path: String) throws {
        try makeDirectories(directoryOf(path))
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw systemError("cannot open the record file \(path)") }
    }

    func record(_ event: SocketIOEvent, at time: Double) {
        guard fd >= 0 else { return }
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
        _ = writeAll(fd, line)
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}
