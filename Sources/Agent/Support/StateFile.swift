import Rules
import SIOCore

/// Reading and writing the rules' shared state file through a ``Storage``: the logic the
/// agent's ``StatePersister`` thread and the simulation share.
package enum StateFile {
    /// Reads the state file at `path`. Expired values are dropped; a file that cannot be read is
    /// moved to `PATH.corrupt`, and the warning says why.
    /// - Parameter quarantine: whether an unreadable file is moved aside.
    package static func load(storage: any Storage, path: String, now: Double, quarantine: Bool = true) -> (state: [String: StateEntry], warning: String?) {
        guard storage.exists(path) else { return ([:], nil) }
        do {
            let bytes = try storage.read(path, maxBytes: StatePersister.maxFileBytes)
            let value = try JSONValue(parsing: String(decoding: bytes, as: UTF8.self))
            guard case .object(let top) = value, case .object(let entries)? = top["state"] else {
                throw DiskError(storage: "not a {\"state\": {…}} object", code: 0)
            }
            var out: [String: StateEntry] = [:]
            for (name, item) in entries {
                guard case .object(let o) = item, let v = o["value"] else { continue }
                var expires = Double.infinity
                if case .number(let e)? = o["expires"], e.isFinite { expires = e }
                if expires > now { out[name] = StateEntry(value: v, expires: expires) }
            }
            return (out, nil)
        } catch {
            if quarantine { _ = storage.rename(path, path + ".corrupt") }
            return ([:], "\(error)")
        }
    }

    /// Writes the state durably: a new temporary file, fsynced, renamed over the old one, and the
    /// directory fsynced.
    package static func store(_ state: [String: StateEntry], storage: any Storage, directory: String, name: String) throws {
        try storage.makeDirectories(directory)
        try storage.storeDurably(directory: directory, name: name, bytes: Array(StatePersister.encode(state).utf8) + [10])
        // The rename is durable once this succeeds; a failure leaves the new file in place.
        try? storage.syncDirectory(directory)
    }
}
