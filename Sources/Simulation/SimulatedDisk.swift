import Agent

#if canImport(Glibc)
import Glibc
#endif

/// An in-memory file system with the crash semantics of ext4 (data=ordered), behind the agent's
/// ``Storage`` interface.
///
/// - A file's bytes are durable once fsynced. At a crash, a file written and not fsynced keeps
///   its last synced bytes, loses them all, or is torn (a prefix of the new bytes survives).
/// - A directory's changes (new names, renames, removals) are durable once the directory is
///   fsynced. At a crash, only a prefix of the changes made since its last fsync survives (the
///   journal commits them in order), so a rename not followed by a directory fsync may be undone.
/// - Faults: a full disk (every write fails with ENOSPC) and I/O errors at a rate (EIO).
///
/// `@unchecked Sendable`: one simulation thread creates, uses and drops it; it is never shared.
public final class SimulatedDisk: Storage, @unchecked Sendable {
    private final class Inode {
        var data: [UInt8]
        var synced: [UInt8]?
        init(data: [UInt8]) { self.data = data }
    }

    private enum Node {
        case file(Inode)
        case directory
    }

    private struct Directory {
        var entries: [String: Node] = [:]
        var durable: [String: Node] = [:]
        /// Changes since the last fsync, in order: a name set to a node, or removed (nil).
        var log: [(String, Node?)] = []
    }

    private var directories: [String: Directory] = ["/": Directory()]
    private var random: SplitMix64
    /// Every write fails with ENOSPC while true.
    public var full = false
    /// The probability that a write fails with EIO.
    public var ioErrorRate = 0.0
    /// How many operations failed on purpose.
    public private(set) var injectedFailures = 0

    public init(seed: UInt64) { random = SplitMix64(seed: seed) }

    // MARK: Storage

    public func makeDirectories(_ path: String) throws {
        var current = ""
        for component in path.split(separator: "/") {
            let parent = current.isEmpty ? "/" : current
            current += "/" + component
            if directories[current] == nil {
                directories[current] = Directory()
                // Directories are taken as durable at once: the agent creates them at start.
                directories[parent, default: Directory()].entries[String(component)] = .directory
                directories[parent, default: Directory()].durable[String(component)] = .directory
            }
        }
    }

    public func list(_ directory: String) -> [String] {
        directories[normal(directory)].map { $0.entries.keys.sorted() } ?? []
    }

    public func read(_ path: String, maxBytes: Int) throws -> [UInt8] {
        let (dir, name) = split(path)
        guard let node = directories[dir]?.entries[name] else { throw error(ENOENT, "cannot open \(path)") }
        guard case .file(let inode) = node else { throw error(0, "\(path) is not a regular file") }
        guard inode.data.count <= maxBytes else { throw error(0, "\(path) is larger than \(maxBytes) bytes") }
        return inode.data
    }

    public func exists(_ path: String) -> Bool {
        let (dir, name) = split(path)
        return directories[dir]?.entries[name] != nil || directories[normal(path)] != nil
    }

    public func storeDurably(directory: String, name: String, bytes: [UInt8]) throws {
        let dir = normal(directory)
        if directories[dir] == nil { try makeDirectories(dir) }
        if full {
            injectedFailures += 1
            throw error(ENOSPC, "cannot write \(dir)/\(name).tmp")
        }
        if random.chance(ioErrorRate) {
            injectedFailures += 1
            throw error(EIO, "cannot write \(dir)/\(name).tmp")
        }
        let inode = Inode(data: bytes)
        set(dir, name + ".tmp", .file(inode))
        inode.synced = bytes
        set(dir, name + ".tmp", nil)
        set(dir, name, .file(inode))
    }

    public func syncDirectory(_ path: String) throws {
        let dir = normal(path)
        guard var d = directories[dir] else { throw error(ENOENT, "cannot open directory \(path)") }
        d.durable = d.entries
        d.log.removeAll()
        directories[dir] = d
    }

    public func rename(_ from: String, _ to: String) -> Bool {
        let (fromDir, fromName) = split(from)
        let (toDir, toName) = split(to)
        guard let node = directories[fromDir]?.entries[fromName], directories[toDir] != nil else { return false }
        set(fromDir, fromName, nil)
        set(toDir, toName, node)
        return true
    }

    public func remove(_ path: String) {
        let (dir, name) = split(path)
        guard directories[dir]?.entries[name] != nil else { return }
        set(dir, name, nil)
    }

    // MARK: Simulation

    /// Writes a file without fsync (as a `log` action or a careless writer would).
    public func writeUnsynced(_ path: String, _ bytes: [UInt8]) {
        let (dir, name) = split(path)
        set(dir, name, .file(Inode(data: bytes)))
    }

    /// The power went out: what was not durable is kept, lost or torn, at random.
    public func crash() {
        for (path, var d) in directories {
            let kept = d.log.isEmpty ? 0 : random.int(0...d.log.count)
            var entries = d.durable
            for (name, node) in d.log.prefix(kept) { entries[name] = node }
            d.entries = entries
            d.durable = entries
            d.log.removeAll()
            directories[path] = d
        }
        for d in directories.values {
            for case .file(let inode) in d.entries.values where inode.synced != inode.data {
                switch random.int(0...2) {
                case 0: inode.data = inode.synced ?? []
                case 1: inode.data = Array(inode.data.prefix(random.int(0...inode.data.count)))
                default: break
                }
                inode.synced = inode.data
            }
        }
    }

    /// Bytes of the regular files directly in `directory`.
    public func bytes(in directory: String) -> Int {
        guard let d = directories[normal(directory)] else { return 0 }
        var total = 0
        for case .file(let inode) in d.entries.values { total += inode.data.count }
        return total
    }

    // MARK: Private

    private func set(_ dir: String, _ name: String, _ node: Node?) {
        directories[dir, default: Directory()].entries[name] = node
        directories[dir, default: Directory()].log.append((name, node))
    }

    private func normal(_ path: String) -> String {
        var p = path
        while p.count > 1, p.hasSuffix("/") { p.removeLast() }
        return p.isEmpty ? "/" : p
    }

    private func split(_ path: String) -> (String, String) {
        let p = normal(path)
        guard let slash = p.lastIndex(of: "/") else { return ("/", p) }
        let dir = String(p[..<slash])
        return (dir.isEmpty ? "/" : dir, String(p[p.index(after: slash)...]))
    }

    private func error(_ code: Int32, _ what: String) -> DiskError {
        DiskError(storage: code == 0 ? what : "\(what): \(String(cString: strerror(code)))", code: code)
    }
}
