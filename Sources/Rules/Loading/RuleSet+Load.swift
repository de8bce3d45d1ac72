import SIOCore
import SIOYAML

// Linking the compiled files: rule ids across files, tests bound to their rules, diagnostics in order.

extension RuleSet {
    /// Loads rules from texts already in memory (`path` names them in diagnostics).
    public static func load(sources: [(path: String, text: String)], environment: [String: String]) -> (ruleSet: RuleSet?, diagnostics: [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        var rules: [CompiledRule] = []
        var tests: [RuleTest] = []
        var seen: [String: (file: String, line: Int, column: Int)] = [:]
        var pendingTests: [(RuleTest, SourceText, [String: SourcePosition])] = []
        var stateReads: [(name: String, position: SourcePosition, source: SourceText)] = []
        var stateSets: Set<String> = []
        let paths = Set(sources.map(\.path))
        for (path, text) in sources {
            var compiler = FileCompiler(source: SourceText(path: path, text: text), environment: environment)
            compiler.compileFile(text: text, isTestFile: isTestFile(path))
            for (id, position) in compiler.idsWritten {
                if let first = seen[id] {
                    diagnostics.append(compiler.source.diagnostic(position, "duplicate rule id \"\(id)\": already defined at \(first.file):\(first.line):\(first.column)"))
                } else {
                    seen[id] = (path, position.line, position.column)
                }
            }
            rules += compiler.rules
            for var test in compiler.tests {
                if isTestFile(path) {
                    let candidates = companionCandidates(of: path)
                    if let companion = candidates.first(where: { paths.contains($0) }) {
                        test.rulesFile = companion
                    } else {
                        test.rulesFile = candidates.first ?? path
                        diagnostics.append(Diagnostic(file: path, line: test.line, column: test.column,
                            message: "no rules file beside this test file (expected \(test.rulesFile))",
                            sourceLine: compiler.source.lineText(test.line)))
                    }
                }
                pendingTests.append((test, compiler.source, compiler.expectationRulePositions))
            }
            diagnostics += compiler.diagnostics
            stateReads += compiler.stateReads.map { ($0.name, $0.position, compiler.source) }
            stateSets.formUnion(compiler.stateSets)
        }
        // `state.X` read where no rule sets X.
        for read in stateReads where !stateSets.contains(read.name) {
            diagnostics.append(read.source.diagnostic(read.position, "state.\(read.name) is read but no rule sets it" + suggestion(read.name, stateSets.sorted()),
                                                      severity: .warning))
        }
        // Expectations naming a rule must name one the test can see.
        for (test, source, rulePositions) in pendingTests {
            let visible = rules.filter { $0.file == test.rulesFile }.map(\.id)
            for expectation in test.expect {
                for (key, value) in expectation.fields where key == "rule" {
                    guard case .string(let id) = value, !visible.contains(id) else { continue }
                    let position = rulePositions["\(expectation.line):\(expectation.column)"] ?? SourcePosition(line: expectation.line, column: expectation.column)
                    diagnostics.append(source.diagnostic(position, "unknown rule \"\(id)\" in this test's rules (\(test.rulesFile))" + suggestion(id, visible)))
                }
            }
            tests.append(test)
        }
        // Files in load order, then positions in each file.
        let order = Dictionary(sources.enumerated().map { ($1.path, $0) }, uniquingKeysWith: { a, _ in a })
        diagnostics = diagnostics.enumerated().sorted { a, b in
            let x = (order[a.element.file] ?? 0, a.element.line, a.element.column, a.offset)
            let y = (order[b.element.file] ?? 0, b.element.line, b.element.column, b.offset)
            return x < y
        }.map(\.element)
        let failed = diagnostics.contains { $0.severity == .error }
        let set = RuleSet(rules: rules, tests: tests, files: sources.map(\.path))
        return (failed ? nil : set, diagnostics)
    }
}

extension RuleSet {
    /// True for `NAME.test.yaml` (or `.yml`): a file of tests for the rules in `NAME.yaml` beside it.
    public static func isTestFile(_ path: String) -> Bool {
        path.hasSuffix(".test.yaml") || path.hasSuffix(".test.yml")
    }

    /// The names the rules file of test file `dir/NAME.test.yaml` may have, in the order they are
    /// looked for: `dir/NAME.yaml`, `dir/NAME.yml`. Empty for other names.
    public static func companionCandidates(of testFile: String) -> [String] {
        for suffix in [".test.yaml", ".test.yml"] where testFile.hasSuffix(suffix) {
            let base = String(testFile.dropLast(suffix.count))
            return [base + ".yaml", base + ".yml"]
        }
        return []
    }

    /// A YAML document as JSON, read the way rule files are (YAML 1.2 core schema: `yes`/`no`/`on`
    /// stay text). Nil when the text is not valid YAML. Used to validate files against
    /// `schema/rules.schema.json`.
    public static func yamlAsJSON(_ text: String) -> JSONValue? {
        guard let root = try? YAMLReader.read(text) else { return nil }
        return root.json
    }
}
