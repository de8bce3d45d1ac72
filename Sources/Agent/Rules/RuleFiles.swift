import Rules

#if canImport(Glibc)
import Glibc
#endif

// Reading rule files: the one place the rule language meets the file system. `Rules` compiles
// texts; this finds and reads them.

extension RuleSet {
    /// Loads rule files and directories (`*.yaml`/`*.yml`; directories are searched recursively,
    /// in name order, skipping names that start with a dot). `NAME.test.yaml` files hold only
    /// `tests:` and run against `NAME.yaml` beside them, which is loaded too when not named.
    ///
    /// - Parameters:
    ///   - paths: files or directories.
    ///   - environment: what `env.NAME` reads (resolved at load).
    /// - Returns: the rule set, nil when any error was found, and every diagnostic (errors and warnings).
    public static func load(paths: [String], environment: [String: String]) -> (ruleSet: RuleSet?, diagnostics: [Diagnostic]) {
        var files: [String] = []
        var diagnostics: [Diagnostic] = []
        for path in paths {
            guard let stamp = fileStamp(path) else {
                diagnostics.append(Diagnostic(file: path, line: 0, column: 0, message: "no such file or directory"))
                continue
            }
            if stamp.isDirectory {
                files += yamlFiles(in: path)
            } else {
                files.append(path)
            }
        }
        // A test file runs against the rules file beside it; load that too.
        for file in files where isTestFile(file) {
            if let companion = companionCandidates(of: file).first(where: { fileStamp($0) != nil }), !files.contains(companion) {
                files.append(companion)
            }
        }
        var sources: [(path: String, text: String)] = []
        for file in files {
            switch readUTF8File(file) {
            case .success(let text): sources.append((file, text))
            case .failure(let problem): diagnostics.append(Diagnostic(file: file, line: 0, column: 0, message: problem.description))
            }
        }
        let (set, more) = load(sources: sources, environment: environment)
        diagnostics += more
        let failed = diagnostics.contains { $0.severity == .error }
        return (failed ? nil : set, diagnostics)
    }

    /// Why a file's text could not be had.
    public enum FileProblem: Error, CustomStringConvertible {
        case unreadable, notUTF8

        public var description: String {
            switch self {
            case .unreadable: "cannot read the file"
            case .notUTF8: "the file is not UTF-8 text"
            }
        }
    }

    /// The whole text of a file (rule files, recorded events), which must be UTF-8.
    public static func readUTF8File(_ path: String) -> Result<String, FileProblem> {
        guard let bytes = try? readFile(path) else { return .failure(.unreadable) }
        guard let text = String(validating: bytes, as: UTF8.self) else { return .failure(.notUTF8) }
        return .success(text)
    }

    /// The rule files under `directory`, as `load(paths:)` finds them: `*.yaml`/`*.yml`,
    /// recursively, in name order, skipping names that start with a dot. A directory reached
    /// twice (through a symbolic link) is searched once.
    public static func yamlFiles(in directory: String) -> [String] {
        var visited: Set<[UInt64]> = []
        return yamlFiles(in: directory, visited: &visited)
    }

    private static func yamlFiles(in directory: String, visited: inout Set<[UInt64]>) -> [String] {
        var st = stat()
        guard stat(directory, &st) == 0, visited.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted else { return [] }
        var out: [String] = []
        for name in listDirectory(directory).sorted() where !name.hasPrefix(".") {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            guard let stamp = fileStamp(path) else { continue }
            if stamp.isDirectory {
                out += yamlFiles(in: path, visited: &visited)
            } else if name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
                out.append(path)
            }
        }
        return out
    }
}
