import SIOCore
import SIOYAML

// MARK: - Compiling one file

let actionKinds = ["emit", "run", "shell", "log", "reply", "set", "unset"]

struct FileCompiler {
    let source: SourceText
    let environment: [String: String]
    var diagnostics: [Diagnostic] = []
    var rules: [CompiledRule] = []
    var tests: [RuleTest] = []
    var vars: [String: JSONValue] = [:]
    var varsText = ""
    /// Every rule id written in the file, valid rule or not, with where (for duplicate checks).
    var idsWritten: [(String, SourcePosition)] = []
    /// Where each expectation's `rule:` value is written, by "line:column" of the expectation.
    var expectationRulePositions: [String: SourcePosition] = [:]
    /// What expressions of the rule being compiled may read (`key`, window functions).
    var ruleScope = RuleScope()
    /// `state.NAME` reads, and the names `set:` actions write (checked across files).
    var stateReads: [(name: String, position: SourcePosition)] = []
    var stateSets: Set<String> = []

    init(source: SourceText, environment: [String: String]) {
        self.source = source
        self.environment = environment
    }

    // MARK: Diagnostics

    func position(_ n: YAMLNode) -> SourcePosition {
        SourcePosition(line: n.mark.line, column: n.mark.column)
    }

    mutating func error(_ p: SourcePosition, _ message: String) {
        diagnostics.append(source.diagnostic(p, message))
    }

    mutating func error(_ n: YAMLNode, _ message: String) {
        error(position(n), message)
    }

    mutating func warning(_ p: SourcePosition, _ message: String) {
        diagnostics.append(source.diagnostic(p, message, severity: .warning))
    }

    // MARK: The file

    mutating func compileFile(text: String, isTestFile: Bool) {
        let root: YAMLNode?
        do {
            root = try YAMLReader.read(text)
        } catch {
            diagnostics.append(Diagnostic(yamlError: error, file: source.path, text: text))
            return
        }
        guard let root else {
            diagnostics.append(Diagnostic(file: source.path, line: 0, column: 0, severity: .warning, message: "the file is empty"))
            return
        }
        let known = isTestFile ? ["tests"] : ["vars", "rules", "tests"]
        guard let top = mapping(root, "the file", known: known, hint: isTestFile ? " (a .test.yaml file holds only tests:)" : "") else {
            return
        }
        if let v = top["vars"] { compileVars(v.value) }
        if let r = top["rules"] {
            if case .sequence(let seq) = r.value {
                for item in seq { if let rule = compileRule(item) { rules.append(rule) } }
            } else if !isNull(r.value) {
                error(r.value, "rules: must be a list of rules (each starting with \"- id:\")")
            }
        } else if !isTestFile && top["tests"] == nil {
            error(root, "no rules: in this file")
        }
        if let t = top["tests"] {
            if case .sequence(let seq) = t.value {
                for item in seq { if let test = compileTest(item) { tests.append(test) } }
            } else if !isNull(t.value) {
                error(t.value, "tests: must be a list of tests (each starting with \"- name:\")")
            }
        }
    }

    // MARK: vars

    mutating func compileVars(_ n: YAMLNode) {
        if isNull(n) { return }
        guard case .mapping(let m) = n else {
            error(n, "vars: must be a mapping of names to values, not \(describe(n))")
            return
        }
        for (k, v) in m {
            guard case .scalar(let ks) = k, isIdentifier(ks.string) else {
                error(k, "a variable name must be a word (letters, digits, _), not \(describe(k))")
                continue
            }
            vars[ks.string] = json(v)
        }
        varsText = JSONValue.object(.init(vars.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })).jsonString()
    }

    func isIdentifier(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first == "_" || first.properties.isAlphabetic && first.isASCII else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
    }
}
