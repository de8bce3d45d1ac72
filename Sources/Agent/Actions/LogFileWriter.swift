import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Appends lines to the files that `log` actions and `--record` name, rotating them by size.
///
/// In the agent it is used from the ``DiskWriter`` thread only, never from the event loop.
/// New files are 0600 and new directories 0700, whatever the umask.
///
/// Each line goes out in one `write` on a descriptor opened with `O_APPEND`, under a lock shared
/// by every writer in the process, so two rules writing to the same file never tear or lose a
/// line, and rotation never happens in the middle of one. When a file would grow past
/// `maxBytes`, `file.N-1` becomes `file.N` … `file` becomes `file.1`, and a new `file` starts;
/// `keep` rotated files are kept.
public final class LogFileWriter: Sendable {
    private struct OpenFile {
        var fd: Int32
        var size: Int
    }

    public let maxBytes: Int
    public let keep: Int
    private let files = Mutex<[String: OpenFile]>([:])

    public init(maxBytes: Int, keep: Int) {
        self.maxBytes = max(1, maxBytes)
        self.keep = max(1, keep)
    }

    deinit {
        files.withLock { files in
            for file in files.values { Glibc.close(file.fd) }
        }
    }

    /// Appends `line` (a newline is added) to `path`, creating its directories.
    public func append(_ line: String, to path: String) throws {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        try append(lines: [bytes], to: path)
    }

    /// Appends `lines` (each ending with its newline) to `path`: one `write` for all of them,
    /// or one on each side of a rotation.
    /// - Returns: the number of `write` calls.
    @discardableResult
    public func append(lines: [[UInt8]], to path: String) throws -> Int {
        try files.withLock { files in
            var writes = 0
            var file = try files[path] ?? open(path)
            var chunk: [UInt8] = []
            func flush() throws {
                guard !chunk.isEmpty else { return }
                guard writeAll(file.fd, chunk) else {
                    let error = systemError("cannot write \(path)")
                    Glibc.close(file.fd)
                    files[path] = nil
                    throw error
                }
                file.size += chunk.count
                writes += 1
                chunk.removeAll(keepingCapacity: true)
            }
            for line in lines {
                if file.size + chunk.count > 0, file.size + chunk.count + line.count > maxBytes {
                    try flush()
                    Glibc.close(file.fd)
                    files[path] = nil
                    rotate(path)
                    file = try open(path)
                }
                chunk.append(contentsOf: line)
            }
            try flush()
            files[path] = file
            return writes
        }
    }

    /// Closes `path` if it is open (it reopens on the next line).
    public func close(_ path: String) {
        files.withLock { files in
            if let file = files.removeValue(forKey: path) { Glibc.close(file.fd) }
        }
    }

    /// Closes every file (they reopen on the next line).
    public func closeAll() {
        files.withLock { files in
            for file in files.values { Glibc.close(file.fd) }
            files.removeAll()
        }
    }

    private func open(_ path: String) throws -> OpenFile {
        try makeDirectories(directoryOf(path))
        let (fd, size) = try openForAppending(path)
        return OpenFile(fd: fd, size: size)
    }

    private func rotate(_ path: String) {
        unlink("\(path).\(keep)")
        if keep > 1 {
            for n in stride(from: keep - 1, through: 1, by: -1) {
                rename("\(path).\(n)", "\(path).\(n + 1)")
            }
        }
        rename(path, "\(path).1")
    }
}
