#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small POSIX file helpers: the agent's file I/O is simple, and these keep it explicit
/// (one `write` per line, `fsync` where durability matters).

func systemError(_ what: String) -> FileError {
    FileError(description: "\(what): \(String(cString: strerror(errno)))")
}

/// `mkdir -p`.
func makeDirectories(_ path: String) throws {
    guard !path.isEmpty else { return }
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        current += "/" + component
        if mkdir(current, 0o755) != 0, errno != EEXIST {
            throw systemError("cannot create directory \(current)")
        }
    }
}

/// The names in a directory (without `.` and `..`); empty when it cannot be read.
func listDirectory(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw systemError("cannot open \(path)") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw systemError("cannot read \(path)")
        }
        if n == 0 { return bytes }
        bytes.append(contentsOf: chunk[0..<n])
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }
}

/// Creates or replaces a file with `bytes`.
func writeFile(_ path: String, _ bytes: [UInt8], sync: Bool) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw systemError("cannot create \(path)") }
    defer { close(fd) }
    guard writeAll(fd, bytes) else { throw systemError("cannot write \(path)") }
    if sync, fsync(fd) != 0 { throw systemError("cannot sync \(path)") }
}

/// Size and modification time of a file, or nil.
func fileStamp(_ path: String) -> (size: Int, modified: Int, isDirectory: Bool)? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    let modified = Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec)
    return (Int(st.st_size), modified, (st.st_mode & S_IFMT) == S_IFDIR)
}
