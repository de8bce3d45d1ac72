import Foundation

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
        let fm = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                diagnostics.append(Diagnostic(file: path, line: 0, column: 0, message: "no such file or directory"))
                continue
            }
            if isDirectory.boolValue {
                files += yamlFiles(in: path)
            } else {
                files.append(path)
            }
        }
        // A test file runs against the rules file beside it; load that too.
        for file in files where isTestFile(file) {
            if let companion = companionRulesFile(of: file), !files.contains(companion) {
                files.append(companion)
            }
        }
        var sources: [(path: String, text: String)] = []
        for file in files {
            guard let data = fm.contents(atPath: file) else {
                diagnostics.append(Diagnostic(file: file, line: 0, column: 0, message: "cannot read the file"))
                continue
            }
            guard let text = String(data: data, encoding: .utf8) else {
                diagnostics.append(Diagnostic(file: file, line: 0, column: 0, message: "the file is not UTF-8 text"))
                continue
            }
            sources.append((file, text))
        }
        let (set, more) = load(sources: sources, environment: environment)
        diagnostics += more
        let failed = diagnostics.contains { $0.severity == .error }
        return (failed ? nil : set, diagnostics)
    }

    static func isTestFile(_ path: String) -> Bool {
        path.hasSuffix(".test.yaml") || path.hasSuffix(".test.yml")
    }

    /// `dir/NAME.yaml` (or `.yml`) for `dir/NAME.test.yaml`, if it exists (or, with `mustExist` false, the `.yaml` name).
    static func companionRulesFile(of testFile: String, mustExist: Bool = true) -> String? {
        let base: String
        if testFile.hasSuffix(".test.yaml") { base = String(testFile.dropLast(".test.yaml".count)) }
        else if testFile.hasSuffix(".test.yml") { base = String(testFile.dropLast(".test.yml".count)) }
        else { return nil }
        if !mustExist { return base + ".yaml" }
        for candidate in [base + ".yaml", base + ".yml"] where FileManager.default.fileExists(atPath: candidate) {
            return candidate
        }
        return nil
    }

    /// The rule files under `directory`, as `load(paths:)` finds them: `*.yaml`/`*.yml`,
    /// recursively, in name order, skipping names that start with a dot.
    public static func yamlFiles(in directory: String) -> [String] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else { return [] }
        var out: [String] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                out += yamlFiles(in: path)
            } else if name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
                out.append(path)
            }
        }
        return out
    }
}
