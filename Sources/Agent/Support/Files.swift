#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small POSIX file helpers: the agent's file I/O is simple, and these keep it explicit
/// (one `write` per batch, `fsync` where durability matters).
///
/// Everything the agent creates is private to its user whatever the umask: files 0600,
/// directories 0700.

/// A failed system call: what was being done, and `errno`.
public struct DiskError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// `errno`, or 0 when the failure is not a system call's.
    public var code: Int32 = 0
}

func systemError(_ what: String) -> DiskError {
    let code = errno
    return DiskError(description: "\(what): \(String(cString: strerror(code)))", code: code)
}

/// The permissions of the files and directories the agent creates.
let privateFileMode: mode_t = 0o600
let privateDirectoryMode: mode_t = 0o700

/// `mkdir -p`; the directories it creates are 0700 whatever the umask (existing ones are left
/// as they are).
func makeDirectories(_ path: String) throws {
    guard !path.isEmpty else { return }
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        current += "/" + component
        if mkdir(current, privateDirectoryMode) == 0 {
            // mkdir's mode is filtered by the umask; say it again.
            chmod(current, privateDirectoryMode)
        } else if errno != EEXIST {
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

/// The largest file ``readFile(_:)`` reads (rule files, the configuration, recorded events):
/// far beyond any of them, and small enough that a huge or sparse file never takes the memory.
let maxReadFileBytes = 256 << 20

/// Reads a whole file the agent wrote (spool, state) of at most ``maxReadFileBytes``, never
/// through a symbolic link.
func readFile(_ path: String) throws -> [UInt8] {
    try readRegularFile(path, maxBytes: maxReadFileBytes)
}

/// Reads a whole file the operator gave (the configuration, rule files, recorded events) of at
/// most ``maxReadFileBytes``. Symbolic links are followed: /etc setups and Kubernetes ConfigMaps
/// (`agent.yaml -> ..data/agent.yaml`, `..data -> ..2026_01_01…`) are made of them. What the
/// agent writes never follows one (see ``createExclusive(_:)``).
func readLinkedFile(_ path: String) throws -> [UInt8] {
    try readRegularFile(path, maxBytes: maxReadFileBytes, followLinks: true)
}

/// Reads a regular file of at most `maxBytes`. Never blocks on a FIFO or a device (opened with
/// `O_NONBLOCK`), follows a symbolic link only when told to, and refuses anything that is not a
/// regular file (after following the link).
func readRegularFile(_ path: String, maxBytes: Int, followLinks: Bool = false) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followLinks ? 0 : O_NOFOLLOW))
    guard fd >= 0 else { throw systemError("cannot open \(path)") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw systemError("cannot read \(path)") }
    guard (st.st_mode & S_IFMT) == S_IFREG else { throw DiskError(description: "\(path) is not a regular file") }
    guard st.st_size >= 0, Int(st.st_size) <= maxBytes else {
        throw DiskError(description: "\(path) is larger than \(maxBytes) bytes")
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(Int(st.st_size))
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw systemError("cannot read \(path)")
        }
        if n == 0 { return bytes }
        // It grew while being read.
        guard bytes.count + n <= maxBytes else { throw DiskError(description: "\(path) is larger than \(maxBytes) bytes") }
        bytes.append(contentsOf: chunk[0..<n])
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes; false with `errno` set on failure.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            if n == 0 {
                errno = EIO
                return false
            }
            offset += n
        }
        return true
    }
}

/// Creates a new file that must not exist yet (`O_CREAT | O_EXCL | O_NOFOLLOW`, 0600), for
/// temporary files: never writes through a link someone left in its place.
func createExclusive(_ path: String) throws -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, privateFileMode)
    guard fd >= 0 else { throw systemError("cannot create \(path)") }
    fchmod(fd, privateFileMode)
    return fd
}

/// Opens `path` for appending, creating it 0600 if needed (an existing file keeps its mode).
/// - Returns: the descriptor and the file's size.
func openForAppending(_ path: String) throws -> (fd: Int32, size: Int) {
    var fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, privateFileMode)
    if fd >= 0 {
        fchmod(fd, privateFileMode)
        return (fd, 0)
    }
    guard errno == EEXIST else { throw systemError("cannot open \(path)") }
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
    guard fd >= 0 else { throw systemError("cannot open \(path)") }
    var st = stat()
    let size = fstat(fd, &st) == 0 ? max(0, Int(st.st_size)) : 0
    return (fd, size)
}

/// Flushes a directory's entries (after a rename or a new file in it).
func syncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw systemError("cannot open directory \(path)") }
    defer { close(fd) }
    if fsync(fd) != 0 { throw systemError("cannot sync directory \(path)") }
}

/// What changes when a file is replaced or written: device, inode, size, and modification and
/// change times in nanoseconds (of the link's target), or nil when there is no such file.
func fileIdentity(_ path: String) -> [Int]? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    func nanoseconds(_ t: timespec) -> Int {
        let (s, o1) = Int(t.tv_sec).multipliedReportingOverflow(by: 1_000_000_000)
        let (n, o2) = s.addingReportingOverflow(Int(t.tv_nsec))
        return o1 || o2 ? (t.tv_sec < 0 ? Int.min : Int.max) : n
    }
    return [Int(truncatingIfNeeded: st.st_dev), Int(truncatingIfNeeded: st.st_ino), Int(st.st_size),
            nanoseconds(st.st_mtim), nanoseconds(st.st_ctim)]
}

/// Size and modification time of a file, or nil.
func fileStamp(_ path: String) -> (size: Int, modified: Int, isDirectory: Bool)? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    // Saturating: a time set far ahead (`touch -d 3000-01-01`) does not fit in nanoseconds.
    let (seconds, overflow) = Int(st.st_mtim.tv_sec).multipliedReportingOverflow(by: 1_000_000_000)
    let (modified, overflowAgain) = seconds.addingReportingOverflow(Int(st.st_mtim.tv_nsec))
    let saturated = st.st_mtim.tv_sec < 0 ? Int.min : Int.max
    return (Int(st.st_size), overflow || overflowAgain ? saturated : modified, (st.st_mode & S_IFMT) == S_IFDIR)
}

/// True for the errors of a full disk or an exhausted quota.
func isNoSpace(_ code: Int32) -> Bool {
    code == ENOSPC || code == EDQUOT
}

/// Writes `bytes` as `directory/name` so that a crash leaves the whole file or none of it:
/// a new temporary file (0600, `O_EXCL | O_NOFOLLOW`), one `write`, `fsync`, `rename`. The
/// caller fsyncs the directory afterwards (once for many files).
func storeFileDurably(directory: String, name: String, bytes: [UInt8]) throws {
    let path = directory + "/" + name
    let temporary = path + ".tmp"
    var fd: Int32
    do {
        fd = try createExclusive(temporary)
    } catch let error as DiskError where error.code == EEXIST {
        // Left by a crash, or planted: never written through, replaced.
        unlink(temporary)
        fd = try createExclusive(temporary)
    } catch let error as DiskError where error.code == ENOENT {
        try makeDirectories(directory)
        fd = try createExclusive(temporary)
    }
    do {
        guard writeAll(fd, bytes) else { throw systemError("cannot write \(temporary)") }
        guard fsync(fd) == 0 else { throw systemError("cannot sync \(temporary)") }
        guard rename(temporary, path) == 0 else { throw systemError("cannot rename \(temporary)") }
        close(fd)
    } catch {
        close(fd)
        unlink(temporary)
        throw error
    }
}

/// The text of the systemd credential `name` (`LoadCredential=name:…`): the file
/// `$CREDENTIALS_DIRECTORY/name`, at most 64 KiB, without one trailing newline.
func readCredential(_ name: String, environment: [String: String]) -> Result<String, DiskError> {
    guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else {
        return .failure(DiskError(description: "'\(name)' is not a credential name"))
    }
    guard let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty else {
        return .failure(DiskError(description: "credential \(name): CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit sets it)"))
    }
    do {
        var bytes = try readRegularFile(directory + "/" + name, maxBytes: 64 << 10)
        if bytes.last == 0x0A { bytes.removeLast() }
        return .success(String(decoding: bytes, as: UTF8.self))
    } catch let error as DiskError {
        return .failure(DiskError(description: "credential \(name): \(error.description)"))
    } catch {
        return .failure(DiskError(description: "credential \(name): \(error)"))
    }
}
