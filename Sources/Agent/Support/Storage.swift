#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The file operations the spool and the state file need: the one storage interface under both.
///
/// ``POSIXStorage`` is the real one (the agent's disk). The deterministic simulation supplies
/// an in-memory one with crash semantics: data not fsynced may vanish or be torn at a crash,
/// and a rename or a new name not followed by a directory fsync may be undone.
///
/// Every call blocks on the disk: never call it on the event loop (the ``DiskWriter`` thread, the
/// state writer's thread, or the start before the loop runs).
package protocol Storage: AnyObject, Sendable {
    /// `mkdir -p` (directories private to the user).
    func makeDirectories(_ path: String) throws
    /// The names in a directory; empty when it cannot be read.
    func list(_ directory: String) -> [String]
    /// A regular file's bytes; throws for anything else, or beyond `maxBytes`.
    func read(_ path: String, maxBytes: Int) throws -> [UInt8]
    /// Whether anything has this name.
    func exists(_ path: String) -> Bool
    /// Writes `directory/name` through a new temporary file: write, fsync, rename. The caller
    /// syncs the directory afterwards (once for many files).
    func storeDurably(directory: String, name: String, bytes: [UInt8]) throws
    /// Makes the directory's entries durable (renames, new and removed names).
    func syncDirectory(_ path: String) throws
    /// `rename(2)`; false when it failed.
    func rename(_ from: String, _ to: String) -> Bool
    /// `unlink(2)`, errors ignored (the name may be gone already).
    func remove(_ path: String)
}

/// The machine's file system, through POSIX calls.
package final class POSIXStorage: Storage {
    /// The one instance (it has no state).
    package static let shared = POSIXStorage()

    package init() {}

    package func makeDirectories(_ path: String) throws { try makeDirectoriesPOSIX(path) }
    package func list(_ directory: String) -> [String] { listDirectory(directory) }
    package func read(_ path: String, maxBytes: Int) throws -> [UInt8] { try readRegularFile(path, maxBytes: maxBytes) }
    package func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    package func storeDurably(directory: String, name: String, bytes: [UInt8]) throws {
        try storeFileDurably(directory: directory, name: name, bytes: bytes)
    }

    package func syncDirectory(_ path: String) throws { try syncDirectoryPOSIX(path) }
    package func rename(_ from: String, _ to: String) -> Bool {
        #if canImport(Glibc)
        return Glibc.rename(from, to) == 0
        #else
        return Darwin.rename(from, to) == 0
        #endif
    }
    package func remove(_ path: String) { unlink(path) }
}

// The free functions, under names the methods do not shadow.
private func makeDirectoriesPOSIX(_ path: String) throws { try makeDirectories(path) }
private func syncDirectoryPOSIX(_ path: String) throws { try syncDirectory(path) }

extension DiskError {
    /// A failure another ``Storage`` reports (the simulation's disk).
    package init(storage description: String, code: Int32) {
        self.init(description: description, code: code)
    }
}
