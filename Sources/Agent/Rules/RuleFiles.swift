import Rules
import SIOYAML

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
        load(RuleFilesSnapshot.read(paths: paths), environment: environment)
    }

    /// Compiles rule files read before (see ``RuleFilesSnapshot/read(paths:)``).
    public static func load(_ snapshot: RuleFilesSnapshot, environment: [String: String]) -> (ruleSet: RuleSet?, diagnostics: [Diagnostic]) {
        var diagnostics = snapshot.problems
        let (set, more) = load(sources: snapshot.sources.map { (path: $0.path, text: $0.text) }, environment: environment)
        diagnostics += more
        let failed = diagnostics.contains { $0.severity == .error }
        return (failed ? nil : set, diagnostics)
    }

    /// The files `load(paths:)` reads, in the order it reads them, and what it cannot find.
    static func ruleFiles(paths: [String]) -> (files: [String], missing: [Diagnostic]) {
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
        return (files, diagnostics)
    }

    /// Why a file's text could not be had.
    public enum FileProblem: Error, CustomStringConvertible {
        case unreadable, notUTF8, tooLarge(Int)

        public var description: String {
            switch self {
            case .unreadable: "cannot read the file"
            case .notUTF8: "the file is not UTF-8 text"
            case .tooLarge(let limit): "the file is larger than \(limit) bytes"
            }
        }
    }

    /// The whole text of a file (rule files, recorded events), which must be UTF-8 and at most
    /// `limit` bytes (by default the largest YAML document, 4 MiB), so a huge file is refused
    /// before it is read.
    public static func readUTF8File(_ path: String, limit: Int = YAMLLimits().maxDocumentBytes) -> Result<String, FileProblem> {
        if let stamp = fileStamp(path), stamp.size > limit { return .failure(.tooLarge(limit)) }
        // Rule files may be symbolic links (a Kubernetes ConfigMap is a tree of them).
        guard let bytes = try? readLinkedFile(path) else { return .failure(.unreadable) }
        guard bytes.count <= limit else { return .failure(.tooLarge(limit)) }
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

/// One rule file's text, as read.
public struct RuleSource: Equatable, Sendable {
    public var path: String
    public var text: String
}

/// The rule files as read at one moment: what ``RuleSet/load(_:environment:)`` compiles. Two
/// snapshots are equal when the same files held the same text and the same problems, so the
/// agent's watcher can tell a file still being written from one that settled, and loads exactly
/// the text it compared.
public struct RuleFilesSnapshot: Equatable, Sendable {
    public var sources: [RuleSource] = []
    /// Files that could not be found or read.
    public var problems: [Diagnostic] = []

    public init() {}

    /// Reads the rule files and directories at `paths` as ``RuleSet/load(paths:environment:)``
    /// would. Does file I/O: never on an event loop.
    public static func read(paths: [String]) -> RuleFilesSnapshot {
        var snapshot = RuleFilesSnapshot()
        let (files, missing) = RuleSet.ruleFiles(paths: paths)
        snapshot.problems = missing
        for file in files {
            switch RuleSet.readUTF8File(file) {
            case .success(let text): snapshot.sources.append(RuleSource(path: file, text: text))
            case .failure(let problem): snapshot.problems.append(Diagnostic(file: file, line: 0, column: 0, message: problem.description))
            }
        }
        return snapshot
    }
}
