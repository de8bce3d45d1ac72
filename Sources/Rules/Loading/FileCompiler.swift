import SIOCore
import Yams

// MARK: - Compiling one file

let actionKinds = ["emit", "run", "shell", "log", "reply"]

struct FileCompiler {
    let source: SourceText
    let environment: [String: String]
    var diagnostics: [Diagnostic] = []
    var rules: [CompiledRule] = []
    var tests: [RuleTest] = []
    var vars: [String: JSONValue] = [:]
    var varsText = ""
    /// Where each rule's `id` value is written (duplicate-id messages point there).
    var rulePositions: [String: SourcePosition] = [:]
    /// Every rule id written in the file, valid rule or not, with where (for duplicate checks).
    var idsWritten: [(String, SourcePosition)] = []
    /// Where each expectation's `rule:` value is written, by "line:column" of the expectation.
    var expectationRulePositions: [String: SourcePosition] = [:]

    init(source: SourceText, environment: [String: String]) {
        self.source = source
        self.environment = environment
    }

    // MARK: Diagnostics

    func position(_ n: Node) -> SourcePosition {
        guard let mark = n.mark else { return SourcePosition(line: 1, column: 1) }
        return SourcePosition(line: mark.line, column: mark.column)
    }

    mutating func error(_ p: SourcePosition, _ message: String) {
        diagnostics.append(source.diagnostic(p, message))
    }

    mutating func error(_ n: Node, _ message: String) {
        error(position(n), message)
    }

    mutating func warning(_ p: SourcePosition, _ message: String) {
        diagnostics.append(source.diagnostic(p, message, severity: .warning))
    }

    // MARK: The file

    mutating func compileFile(text: String, isTestFile: Bool) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            diagnostics.append(Diagnostic(yamlError: e, file: source.path, text: text))
            return
        } catch {
            diagnostics.append(Diagnostic(file: source.path, line: 0, column: 0, message: "cannot parse YAML: \(error)"))
            return
        }
        guard let root else {
            diagnostics.append(Diagnostic(file: source.path, line: 0, column: 0, severity: .warning, message: "the file is empty"))
            return
        }
        let known = isTestFile ? ["tests"] : ["vars", "rules", "tests"]
        guard let top = mapping(root, "the file", known: known, hint: isTestFile ? " (a .test.yaml file holds only tests:)" : "") else {
            if case .mapping = root {} else {
                // mapping() reported it.
            }
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

    mutating func compileVars(_ n: Node) {
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
