import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Appends lines to the files that `log` actions name, rotating them by size.
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
            for file in files.values { close(file.fd) }
        }
    }

    /// Appends `line` (a newline is added) to `path`, creating its directories.
    public func append(_ line: String, to path: String) throws {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        try files.withLock { files in
            var file = try files[path] ?? open(path)
            if file.size > 0, file.size + bytes.count > maxBytes {
                close(file.fd)
                files[path] = nil
                rotate(path)
                file = try open(path)
            }
            guard writeAll(file.fd, bytes) else {
                close(file.fd)
                files[path] = nil
                throw systemError("cannot write \(path)")
            }
            file.size += bytes.count
            files[path] = file
        }
    }

    /// Closes every file (they reopen on the next line).
    public func closeAll() {
        files.withLock { files in
            for file in files.values { close(file.fd) }
            files.removeAll()
        }
    }

    private func open(_ path: String) throws -> OpenFile {
        try makeDirectories(directoryOf(path))
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw systemError("cannot open \(path)") }
        return OpenFile(fd: fd, size: fileStamp(path)?.size ?? 0)
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
