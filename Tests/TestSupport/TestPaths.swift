import Foundation

/// Where the tests find the package, the built `sioagent` and the Python of the interop peer.
/// Shared by every test target.
public enum TestPaths {
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    /// The package root (three levels above this file).
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// `$SIOAGENT_PYTHON`, else `<root>/.venv/bin/python` (made by `scripts/setup-venv`), if present.
    public static var pythonIfPresent: String? {
        if let p = ProcessInfo.processInfo.environment["SIOAGENT_PYTHON"], !p.isEmpty { return p }
        let venv = packageRoot + "/.venv/bin/python"
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }

    /// The Python of the interop peer; an error that says how to get it when there is none.
    public static var python: String {
        get throws {
            guard let p = pythonIfPresent else {
                throw Missing(description: "no Python for the interop peer at \(packageRoot)/.venv/bin/python: run scripts/setup-venv (or set SIOAGENT_PYTHON)")
            }
            return p
        }
    }

    /// The Python of the legacy (Socket.IO v2 / Engine.IO 3) peer: `$SIOAGENT_LEGACY_PYTHON`, else
    /// `<root>/.venv-eio3/bin/python` (made by `scripts/setup-venv`).
    public static var legacyPython: String {
        get throws {
            if let p = ProcessInfo.processInfo.environment["SIOAGENT_LEGACY_PYTHON"], !p.isEmpty { return p }
            let venv = packageRoot + "/.venv-eio3/bin/python"
            guard FileManager.default.isExecutableFile(atPath: venv) else {
                throw Missing(description: "no Python for the legacy peer at \(venv): run scripts/setup-venv (or set SIOAGENT_LEGACY_PYTHON)")
            }
            return venv
        }
    }

    /// The built `sioagent`: `$SIOAGENT_BIN`, else next to the test bundle (SwiftPM puts products in
    /// one directory; on some layouts the runner sits inside the bundle), else `.build/debug`.
    public static var sioagent: String {
        get throws {
            let env = ProcessInfo.processInfo.environment
            let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            let candidates = [env["SIOAGENT_BIN"]].compactMap { $0 } + [
                products.appendingPathComponent("sioagent").path,
                products.deletingLastPathComponent().appendingPathComponent("sioagent").path,
                packageRoot + "/.build/debug/sioagent",
            ]
            for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
            throw Missing(description: "sioagent is not built: run `swift build` before the tests")
        }
    }
}
