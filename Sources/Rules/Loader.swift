import Foundation
import SIOCore
import Yams

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

    /// Loads rules from texts already in memory (`path` names them in diagnostics).
    public static func load(sources: [(path: String, text: String)], environment: [String: String]) -> (ruleSet: RuleSet?, diagnostics: [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        var rules: [CompiledRule] = []
        var tests: [RuleTest] = []
        var seen: [String: (file: String, line: Int, column: Int)] = [:]
        var pendingTests: [(RuleTest, SourceText, [String: SourcePosition])] = []
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
                    let companion = companionRulesFile(of: path, mustExist: false) ?? path
                    test.rulesFile = paths.contains(companion) ? companion : (companionRulesFile(of: path) ?? companion)
                    if companionRulesFile(of: path) == nil && !paths.contains(companion) {
                        diagnostics.append(Diagnostic(file: path, line: test.line, column: test.column,
                            message: "no rules file beside this test file (expected \(companion))",
                            sourceLine: compiler.source.lineText(test.line)))
                    }
                }
                pendingTests.append((test, compiler.source, compiler.expectationRulePositions))
            }
            diagnostics += compiler.diagnostics
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

// MARK: - Compiling one file

private let ruleKeys = ["id", "description", "enabled", "on", "every", "when", "clear_when", "for", "cooldown", "key", "then", "on_clear"]
private let actionKinds = ["emit", "run", "shell", "log", "reply"]
private let actionOptions: [String: [String]] = [
    "emit": ["namespace", "args", "data", "ack"],
    "run": ["timeout", "env", "cwd"],
    "shell": ["timeout", "env", "cwd"],
    "log": ["message"],
    "reply": ["args", "data"],
]

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

    // MARK: YAML helpers

    struct Entry {
        var key: String
        var keyNode: Node
        var value: Node
    }

    func isNull(_ n: Node) -> Bool {
        if case .scalar(let s) = n, s.style == .plain, ["", "~", "null", "Null", "NULL"].contains(s.string) { return true }
        return false
    }

    /// The entries of a mapping, reporting unknown keys (with "did you mean") and non-text keys.
    mutating func mapping(_ n: Node, _ what: String, known: [String], hint: String = "") -> [String: Entry]? {
        guard case .mapping(let m) = n else {
            error(n, "\(what) must be a mapping (key: value), not \(describe(n))")
            return nil
        }
        var out: [String: Entry] = [:]
        for (k, v) in m {
            guard case .scalar(let ks) = k else {
                error(k, "keys must be plain words, not \(describe(k))")
                continue
            }
            let key = ks.string
            if !known.contains(key) {
                error(k, "unknown key \"\(key)\" in \(what)" + suggestion(key, known) + hint)
                continue
            }
            out[key] = Entry(key: key, keyNode: k, value: v)
        }
        return out
    }

    func describe(_ n: Node) -> String {
        switch n {
        case .scalar(let s):
            let v = json(n)
            if s.style == .plain, case .string = v { return "the text \"\(s.string)\"" }
            return "\(StaticType(of: v).name == "any value" ? "a value" : "a " + StaticType(of: v).name) \(v.jsonString())"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// A YAML value as JSON. Plain scalars follow YAML 1.2's core schema: `null`/`~`/empty, `true`/`false`,
    /// numbers; `yes`, `no`, `on`, `off` stay text.
    func json(_ n: Node) -> JSONValue {
        switch n {
        case .scalar(let s):
            guard s.style == .plain || s.style == .any else { return .string(s.string) }
            return resolvePlain(s.string)
        case .sequence(let seq):
            return .array(seq.map { json($0) })
        case .mapping(let m):
            var pairs: [(String, JSONValue)] = []
            for (k, v) in m { pairs.append((k.scalar?.string ?? json(k).jsonString(), json(v))) }
            return .object(.init(pairs, uniquingKeysWith: { a, _ in a }))
        case .alias:
            return .null
        }
    }

    /// Scalar text, or an error for lists and mappings.
    mutating func text(_ n: Node, _ what: String) -> String? {
        guard case .scalar(let s) = n else {
            error(n, "\(what) must be text, not \(describe(n))")
            return nil
        }
        return s.string
    }

    mutating func duration(_ n: Node, _ what: String) -> Double? {
        guard case .scalar(let s) = n else {
            error(n, "\(what) must be a duration like 500ms, 10s, 5m, 1h, 1d, not \(describe(n))")
            return nil
        }
        if s.style == .plain, case .number(let v) = resolvePlain(s.string) {
            error(n, "\(what) needs a unit: \(JSONValue.number(v))s, \(JSONValue.number(v))m… (500ms, 10s, 5m, 1h, 1d)")
            return nil
        }
        guard let seconds = parseDurationSeconds(s.string) else {
            error(n, "\(what): \"\(s.string)\" is not a duration (500ms, 10s, 5m, 1h, 1d)")
            return nil
        }
        return seconds
    }

    /// The file position of the scalar character at `offset` in the node's text (for errors inside
    /// expressions and templates), following quotes, escapes and folded lines.
    func contentPosition(_ n: Node, offset: Int) -> SourcePosition {
        guard case .scalar(let s) = n, let mark = s.mark else { return position(n) }
        let content = Array(s.string.unicodeScalars)
        let lines = source.lines
        var l = mark.line - 1, c = mark.column - 1
        var blockIndent = 0
        func leading(_ line: Int) -> Int {
            guard line < lines.count else { return 0 }
            var k = 0
            while k < lines[line].count, lines[line][k] == " " || lines[line][k] == "\t" { k += 1 }
            return k
        }
        switch s.style {
        case .singleQuoted, .doubleQuoted: c += 1
        case .literal, .folded:
            l += 1
            while l < lines.count, lines[l].allSatisfy({ $0 == " " }) { l += 1 }
            blockIndent = leading(l)
            l = mark.line
            c = min(blockIndent, lines.count > l ? lines[l].count : 0)
        default: break
        }
        var positions: [SourcePosition] = []
        positions.reserveCapacity(content.count)
        var last = SourcePosition(line: mark.line, column: mark.column)
        let isBlock = s.style == .literal || s.style == .folded
        contentLoop: for ch in content {
            if positions.count > offset { break }
            while l < lines.count {
                let line = lines[l]
                if c >= line.count {
                    if ch == "\n" || ch == " " {
                        last = SourcePosition(line: l + 1, column: c + 1)
                        positions.append(last)
                        l += 1
                        c = isBlock ? min(blockIndent, leading(l)) : leading(l)
                        continue contentLoop
                    }
                    l += 1
                    c = isBlock ? min(blockIndent, leading(l)) : leading(l)
                    continue
                }
                let sc = line[c]
                if s.style == .doubleQuoted, sc == "\\" {
                    if c + 1 >= line.count { l += 1; c = leading(l); continue }
                    last = SourcePosition(line: l + 1, column: c + 1)
                    positions.append(last)
                    switch line[c + 1] {
                    case "x": c += 4
                    case "u": c += 6
                    case "U": c += 10
                    default: c += 2
                    }
                    continue contentLoop
                }
                if s.style == .singleQuoted, sc == "'", c + 1 < line.count, line[c + 1] == "'" {
                    last = SourcePosition(line: l + 1, column: c + 1)
                    positions.append(last)
                    c += 2
                    continue contentLoop
                }
                if sc == ch {
                    last = SourcePosition(line: l + 1, column: c + 1)
                    positions.append(last)
                    c += 1
                    continue contentLoop
                }
                c += 1
            }
            positions.append(last)
        }
        if offset < positions.count { return positions[offset] }
        if let end = positions.last { return SourcePosition(line: end.line, column: end.column + 1) }
        return last
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

    // MARK: Expressions and templates

    /// Compiles the expression `text` found in node `n` at `offset` of its text.
    mutating func compileExpression(_ text: String, in n: Node, offset: Int, what: String, environmentRead: inout Set<String>) -> CompiledExpression? {
        let scope = ExpressionScope(vars: vars, environment: environment)
        do {
            var parser = try ExpressionParser(text: text, scope: scope)
            let root = try parser.parseAll()
            environmentRead.formUnion(parser.scope.environmentRead)
            for w in parser.scope.warnings { warning(contentPosition(n, offset: offset + w.offset), w.message) }
            for e in parser.errors { error(contentPosition(n, offset: offset + e.offset), e.message) }
            return parser.errors.isEmpty ? CompiledExpression(root: root, source: text) : nil
        } catch {
            self.error(contentPosition(n, offset: offset + error.offset), "in \(what): \(error.message)")
            return nil
        }
    }

    /// A `when`/`clear_when`/`key` expression.
    mutating func condition(_ n: Node, _ what: String, needsBool: Bool, environmentRead: inout Set<String>) -> CompiledExpression? {
        guard case .scalar(let s) = n else {
            let quoteHint = if case .sequence = n { " (YAML read a list: quote the whole expression)" } else if case .mapping = n { " (YAML read a mapping: quote the whole expression, or remove \": \" from it)" } else { "" }
            error(n, "\(what) must be an expression (text), not \(describe(n))" + quoteHint)
            return nil
        }
        if s.string.contains("{{") {
            let offset = s.string.unicodeScalars.firstRange(of: "{{".unicodeScalars).map { s.string.unicodeScalars.distance(from: s.string.unicodeScalars.startIndex, to: $0.lowerBound) } ?? 0
            error(contentPosition(n, offset: offset), "\(what) is an expression already: write it without {{ }}")
            return nil
        }
        if s.string.trimmingSpaces().isEmpty {
            error(n, "\(what) is empty")
            return nil
        }
        guard let e = compileExpression(s.string, in: n, offset: 0, what: what, environmentRead: &environmentRead) else { return nil }
        if needsBool, e.root.type != .bool, e.root.type != .any {
            error(contentPosition(n, offset: e.root.start), "\(what) must give true or false, but this gives a \(e.root.type.name)")
            return nil
        }
        return e
    }

    /// A value that may hold `{{ }}` templates (in strings, at any depth).
    mutating func template(_ n: Node, environmentRead: inout Set<String>) -> ValueTemplate? {
        switch n {
        case .scalar(let s):
            if s.style == .plain || s.style == .any {
                let v = resolvePlain(s.string)
                guard case .string = v else { return .constant(v) }
            }
            return textTemplate(s.string, in: n, environmentRead: &environmentRead)
        case .sequence(let seq):
            var items: [ValueTemplate] = []
            var ok = true
            for item in seq {
                if let t = template(item, environmentRead: &environmentRead) { items.append(t) } else { ok = false }
            }
            guard ok else { return nil }
            if items.allSatisfy(\.isConstant) { return .constant(json(n)) }
            return .array(items)
        case .mapping(let m):
            if m.contains(where: { if case .mapping = $0.key { return true } else { return false } }) {
                error(n, "YAML read \"{{ … }}\" as a mapping: quote a value that starts with {{, e.g. \"{{ payload }}\"")
                return nil
            }
            var pairs: [(String, ValueTemplate)] = []
            var ok = true
            for (k, v) in m {
                guard case .scalar(let ks) = k else { error(k, "keys must be text"); ok = false; continue }
                if let t = template(v, environmentRead: &environmentRead) { pairs.append((ks.string, t)) } else { ok = false }
            }
            guard ok else { return nil }
            if pairs.allSatisfy({ $0.1.isConstant }) { return .constant(json(n)) }
            return .object(pairs)
        case .alias:
            error(n, "aliases are not supported here")
            return nil
        }
    }

    mutating func textTemplate(_ text: String, in n: Node, environmentRead: inout Set<String>) -> ValueTemplate? {
        let split: TemplateSplit
        do {
            split = try TemplateSplit(text)
        } catch {
            self.error(contentPosition(n, offset: error.offset), error.message)
            return nil
        }
        guard split.hasExpressions else { return .constant(.string(text)) }
        var parts: [TemplatePart] = []
        var ok = true
        for piece in split.pieces {
            switch piece {
            case .text(let t): parts.append(.text(t))
            case .expression(let expressionText, let offset):
                if expressionText.trimmingSpaces().isEmpty {
                    error(contentPosition(n, offset: offset - 2), "empty {{ }}")
                    ok = false
                    continue
                }
                if let e = compileExpression(expressionText, in: n, offset: offset, what: "template", environmentRead: &environmentRead) {
                    parts.append(.expression(e))
                } else {
                    ok = false
                }
            }
        }
        guard ok else { return nil }
        if split.isWhole, let e = parts.lazy.compactMap({ if case .expression(let e) = $0 { return e } else { return nil } }).first {
            return .whole(e)
        }
        return .text(parts)
    }

    // MARK: Rules

    mutating func compileRule(_ n: Node) -> CompiledRule? {
        guard let m = mapping(n, "a rule", known: ruleKeys) else { return nil }
        let before = diagnostics.filter { $0.severity == .error }.count
        let rulePosition = position(n)
        var id = ""
        if let e = m["id"] {
            if let t = text(e.value, "id") {
                id = t
                if t.trimmingSpaces().isEmpty { error(e.value, "id must not be empty") }
                rulePositions[t] = position(e.value)
                idsWritten.append((t, position(e.value)))
            }
        } else {
            error(n, "a rule needs an id: (unique across all loaded files)")
        }
        var environmentRead = Set<String>()
        var description: String?
        if let e = m["description"] { description = text(e.value, "description") }
        var enabled = true
        if let e = m["enabled"] {
            if case .bool(let b) = json(e.value), e.value.scalar?.style == .plain { enabled = b } else { error(e.value, "enabled must be true or false, not \(describe(e.value))") }
        }
        var triggers: [Trigger] = []
        if let e = m["on"] { triggers = compileTriggers(e.value) }
        var every: Double?
        if let e = m["every"] {
            every = duration(e.value, "every")
            if let v = every, v <= 0 { error(e.value, "every must be longer than 0s"); every = nil }
        }
        if m["on"] == nil && m["every"] == nil {
            error(n, "a rule needs on: (the events it handles) or every: (a timer)")
        }
        if let on = m["on"], m["every"] != nil {
            error(on.keyNode, "a rule has either on: (events) or every: (a timer), not both")
        }
        if m["every"] != nil {
            for key in ["for", "clear_when", "key", "on_clear", "cooldown"] {
                if let e = m[key] { error(e.keyNode, "\(key): does not apply to an every: timer rule") }
            }
        }
        let when = m["when"].flatMap { condition($0.value, "when", needsBool: true, environmentRead: &environmentRead) }
        let clearWhen = m["clear_when"].flatMap { condition($0.value, "clear_when", needsBool: true, environmentRead: &environmentRead) }
        let key = m["key"].flatMap { condition($0.value, "key", needsBool: false, environmentRead: &environmentRead) }
        var forSeconds = m["for"].flatMap { duration($0.value, "for") }
        if let f = forSeconds, f <= 0 { forSeconds = nil }
        let cooldown = m["cooldown"].flatMap { duration($0.value, "cooldown") }
        var then: [ActionTemplate] = []
        if let e = m["then"] {
            then = compileActions(e.value, "then", isTimer: every != nil, environmentRead: &environmentRead)
            if then.isEmpty, case .sequence(let s) = e.value, s.isEmpty { error(e.value, "then: has no actions") }
        } else {
            error(n, "a rule needs then: (the actions to take)")
        }
        var onClear: [ActionTemplate] = []
        if let e = m["on_clear"] {
            if m["for"] == nil && m["clear_when"] == nil && m["every"] == nil {
                error(e.keyNode, "on_clear: needs clear_when: or for: (without them a rule never clears)")
            }
            onClear = compileActions(e.value, "on_clear", isTimer: false, environmentRead: &environmentRead)
        }
        guard diagnostics.filter({ $0.severity == .error }).count == before, enabled else { return nil }
        let envText = environmentRead.sorted().map { "\($0)=\(environment[$0] ?? "<unset>")" }.joined(separator: ",")
        let fingerprint = json(n).jsonString() + "|vars:" + varsText + "|env:" + envText
        return CompiledRule(id: id, description: description, file: source.path, line: rulePosition.line, column: rulePosition.column,
                            triggers: triggers, every: every, when: when, clearWhen: clearWhen, key: key, forSeconds: forSeconds,
                            cooldown: cooldown, then: then, onClear: onClear, fingerprint: fingerprint)
    }

    mutating func compileTriggers(_ n: Node) -> [Trigger] {
        switch n {
        case .scalar:
            guard let name = eventName(n) else { return [] }
            return [Trigger(namespace: "/", event: name)]
        case .sequence(let seq):
            if seq.isEmpty { error(n, "on: lists no events") }
            return seq.flatMap { item -> [Trigger] in
                if case .sequence = item { error(item, "on: items are event names or {event:, namespace:} mappings, not lists"); return [] }
                return compileTriggers(item)
            }
        case .mapping:
            guard let m = mapping(n, "on:", known: ["event", "namespace"]) else { return [] }
            var namespace = "/"
            if let e = m["namespace"], let ns = text(e.value, "namespace") {
                if ns != "*" && !ns.hasPrefix("/") { error(e.value, "a namespace starts with \"/\" (or is \"*\" for any), not \"\(ns)\"") }
                namespace = ns
            }
            guard let e = m["event"] else {
                error(n, "on: needs event: (a name, a list of names, or \"*\")")
                return []
            }
            var names: [String] = []
            if case .sequence(let seq) = e.value {
                names = seq.compactMap { eventName($0) }
            } else if let name = eventName(e.value) {
                names = [name]
            }
            return names.map { Trigger(namespace: namespace, event: $0) }
        case .alias:
            error(n, "aliases are not supported here")
            return []
        }
    }

    mutating func eventName(_ n: Node) -> String? {
        guard let name = text(n, "an event name") else { return nil }
        if name.isEmpty { error(n, "an event name must not be empty"); return nil }
        return name
    }

    mutating func compileActions(_ n: Node, _ what: String, isTimer: Bool, environmentRead: inout Set<String>) -> [ActionTemplate] {
        guard case .sequence(let seq) = n else {
            error(n, "\(what): must be a list of actions (each starting with \"- emit:\", \"- run:\", \"- shell:\", \"- log:\" or \"- reply:\"), not \(describe(n))")
            return []
        }
        return seq.compactMap { compileAction($0, isTimer: isTimer, environmentRead: &environmentRead) }
    }

    mutating func compileAction(_ n: Node, isTimer: Bool, environmentRead: inout Set<String>) -> ActionTemplate? {
        guard case .mapping(let raw) = n else {
            error(n, "an action must be a mapping such as \"emit: alert\", not \(describe(n))")
            return nil
        }
        let kinds = raw.compactMap { $0.key.scalar?.string }.filter { actionKinds.contains($0) }
        guard let kind = kinds.first else {
            let firstKey = raw.first?.key.scalar?.string ?? ""
            error(raw.first?.key ?? n, "unknown action \"\(firstKey)\"" + suggestion(firstKey, actionKinds) + " (actions: emit, run, shell, log, reply)")
            return nil
        }
        if kinds.count > 1 {
            error(n, "one action per list item: found \(kinds.joined(separator: " and ")); start each with \"- \"")
            return nil
        }
        guard let m = mapping(n, "a \(kind) action", known: [kind] + (actionOptions[kind] ?? [])) else { return nil }
        let value = m[kind]!.value
        func envMap(_ environmentRead: inout Set<String>) -> [(String, ValueTemplate)]? {
            guard let e = m["env"] else { return [] }
            guard case .mapping(let em) = e.value else {
                error(e.value, "env: must be a mapping of variable names to values, not \(describe(e.value))")
                return nil
            }
            var out: [(String, ValueTemplate)] = []
            for (k, v) in em {
                guard case .scalar(let ks) = k, isIdentifier(ks.string) else {
                    error(k, "an environment variable name is letters, digits and _, not \(describe(k))")
                    return nil
                }
                if case .scalar = v {} else {
                    error(v, "env values are text, not \(describe(v))")
                    return nil
                }
                guard let t = template(v, environmentRead: &environmentRead) else { return nil }
                out.append((ks.string, t))
            }
            return out
        }
        let timeout = m["timeout"].flatMap { duration($0.value, "timeout") }
        let cwd = m["cwd"].flatMap { text($0.value, "cwd") }
        switch kind {
        case "emit":
            guard case .scalar = value else { error(value, "emit: takes the event name, not \(describe(value))"); return nil }
            guard let event = template(value, environmentRead: &environmentRead) else { return nil }
            var namespace: ValueTemplate?
            if let e = m["namespace"] {
                if let ns = text(e.value, "namespace"), !ns.hasPrefix("/"), !ns.hasPrefix("{{") {
                    error(e.value, "a namespace starts with \"/\", not \"\(ns)\"")
                }
                namespace = template(e.value, environmentRead: &environmentRead)
            }
            guard let args = arguments(m, kind, environmentRead: &environmentRead) else { return nil }
            let ack = m["ack"].flatMap { duration($0.value, "ack") }.map(durationFromSeconds)
            return .emit(namespace: namespace, event: event, args: args, ack: ack)
        case "run":
            guard case .sequence(let seq) = value, !seq.isEmpty else {
                error(value, "run: takes the command as a list, [program, arg, …] (no shell); for a shell script use shell:")
                return nil
            }
            var argv: [ValueTemplate] = []
            for (i, item) in seq.enumerated() {
                guard case .scalar(let s) = item else { error(item, "each element of run: is text, not \(describe(item))"); return nil }
                guard let t = textTemplate(s.string, in: item, environmentRead: &environmentRead) else { return nil }
                if i == 0, !t.isConstant {
                    error(item, "the program to run (the first element) cannot come from a template")
                    return nil
                }
                argv.append(t)
            }
            guard let env = envMap(&environmentRead) else { return nil }
            return .run(argv: argv, env: env, cwd: cwd, timeout: timeout.map(durationFromSeconds))
        case "shell":
            guard case .scalar(let s) = value else { error(value, "shell: takes the script as text, not \(describe(value))"); return nil }
            let scalars = Array(s.string.unicodeScalars)
            for i in 0..<max(0, scalars.count - 1) where scalars[i] == "{" && scalars[i + 1] == "{" {
                error(contentPosition(value, offset: i), "templates are not allowed in shell: scripts (event data would run as code); read $SIOAGENT_PAYLOAD, $SIOAGENT_ARGS or standard input, or use run: with a list")
                return nil
            }
            guard let env = envMap(&environmentRead) else { return nil }
            return .shell(script: s.string, env: env, cwd: cwd, timeout: timeout.map(durationFromSeconds))
        case "log":
            guard let target = text(value, "log") else { return nil }
            let t: PlannedAction.LogTarget
            switch target {
            case "stdout": t = .stdout
            case "stderr": t = .stderr
            case "": error(value, "log: takes stdout, stderr or a file path"); return nil
            default:
                if target.contains("{{") { error(value, "a log path cannot be a template"); return nil }
                t = .file(target)
            }
            var message: ValueTemplate?
            if let e = m["message"] {
                guard case .scalar = e.value else { error(e.value, "message: is text, not \(describe(e.value))"); return nil }
                guard case .scalar(let s) = e.value, let mt = textTemplate(s.string, in: e.value, environmentRead: &environmentRead) else { return nil }
                message = mt
            }
            return .log(target: t, message: message)
        case "reply":
            if isTimer { error(m[kind]!.keyNode, "reply: answers an event's acknowledgement; an every: timer has none"); return nil }
            if isNull(value) {
                guard let args = arguments(m, kind, environmentRead: &environmentRead) else { return nil }
                return .reply(args: args)
            }
            if m["args"] != nil || m["data"] != nil {
                error(value, "give the reply either as reply: [values] or with args:/data:, not both")
                return nil
            }
            if case .sequence(let seq) = value {
                var args: [ValueTemplate] = []
                for item in seq { guard let t = template(item, environmentRead: &environmentRead) else { return nil }; args.append(t) }
                return .reply(args: args)
            }
            guard let t = template(value, environmentRead: &environmentRead) else { return nil }
            return .reply(args: [t])
        default:
            return nil
        }
    }

    /// `args:` (a list) or `data:` (one value) of emit and reply.
    mutating func arguments(_ m: [String: Entry], _ kind: String, environmentRead: inout Set<String>) -> [ValueTemplate]? {
        if let a = m["args"], let d = m["data"] {
            error(d.keyNode, "\(kind): takes args: (a list) or data: (one value), not both")
            _ = a
            return nil
        }
        if let a = m["args"] {
            guard case .sequence(let seq) = a.value else {
                error(a.value, "args: must be a list, not \(describe(a.value)) (for one value use data:)")
                return nil
            }
            var out: [ValueTemplate] = []
            for item in seq {
                guard let t = template(item, environmentRead: &environmentRead) else { return nil }
                out.append(t)
            }
            return out
        }
        if let d = m["data"] {
            guard let t = template(d.value, environmentRead: &environmentRead) else { return nil }
            return [t]
        }
        return []
    }

    // MARK: Tests

    mutating func compileTest(_ n: Node) -> RuleTest? {
        guard let m = mapping(n, "a test", known: ["name", "events", "expect", "until"]) else { return nil }
        let before = diagnostics.filter { $0.severity == .error }.count
        let p = position(n)
        var name = "test at line \(p.line)"
        if let e = m["name"] { name = text(e.value, "name") ?? name } else { error(n, "a test needs a name:") }
        var events: [RuleTest.Event] = []
        var lastAt = -Double.infinity
        if let e = m["events"] {
            if case .sequence(let seq) = e.value {
                for item in seq {
                    guard let event = compileTestEvent(item) else { continue }
                    if event.at < lastAt { error(item, "events must be in time order: this one is at \(formatSeconds(event.at)), before the previous one") }
                    lastAt = max(lastAt, event.at)
                    events.append(event)
                }
            } else {
                error(e.value, "events: must be a list of events like {at: 1s, event: batery, args: [15]}")
            }
        } else {
            error(n, "a test needs events:")
        }
        var expect: [RuleTest.Expectation] = []
        if let e = m["expect"] {
            if case .sequence(let seq) = e.value {
                for item in seq { if let x = compileExpectation(item) { expect.append(x) } }
            } else if !isNull(e.value) {
                error(e.value, "expect: must be a list of actions like {at: 1s, rule: battery-low, action: emit} (or [] for none)")
            }
        } else {
            error(n, "a test needs expect: (use expect: [] when nothing should happen)")
        }
        let until = m["until"].flatMap { testTime($0.value, "until") }
        guard diagnostics.filter({ $0.severity == .error }).count == before else { return nil }
        return RuleTest(name: name, file: source.path, line: p.line, column: p.column, rulesFile: source.path,
                        events: events, expect: expect, until: until)
    }

    /// A test time: a duration (`1s`, `2m`) or a number of seconds.
    mutating func testTime(_ n: Node, _ what: String) -> Double? {
        if case .scalar(let s) = n, s.style == .plain, case .number(let v) = resolvePlain(s.string) {
            if v < 0 { error(n, "\(what) cannot be negative"); return nil }
            return v
        }
        guard case .scalar(let s) = n, let v = parseDurationSeconds(s.string) else {
            error(n, "\(what) must be a time like 0s, 1.5s, 2m (or a number of seconds), not \(describe(n))")
            return nil
        }
        return v
    }

    mutating func compileTestEvent(_ n: Node) -> RuleTest.Event? {
        guard let m = mapping(n, "a test event", known: ["at", "event", "namespace", "args", "data", "ack"]) else { return nil }
        guard let atEntry = m["at"] else { error(n, "a test event needs at: (its time, like 1s)"); return nil }
        guard let at = testTime(atEntry.value, "at") else { return nil }
        guard let e = m["event"] else { error(n, "a test event needs event: (its name)"); return nil }
        guard let name = eventName(e.value) else { return nil }
        var namespace = "/"
        if let ns = m["namespace"] {
            guard let t = text(ns.value, "namespace") else { return nil }
            if !t.hasPrefix("/") { error(ns.value, "a namespace starts with \"/\""); return nil }
            namespace = t
        }
        var args: [JSONValue] = []
        if let a = m["args"], let d = m["data"] {
            error(d.keyNode, "give args: (a list) or data: (one value), not both")
            _ = a
            return nil
        }
        if let a = m["args"] {
            guard case .array(let list) = json(a.value) else { error(a.value, "args: must be a list (for one value use data:)"); return nil }
            args = list
        }
        if let d = m["data"] { args = [json(d.value)] }
        var ack = false
        if let a = m["ack"] {
            guard case .bool(let b) = json(a.value) else { error(a.value, "ack: is true or false"); return nil }
            ack = b
        }
        return RuleTest.Event(at: at, event: RuleEvent(namespace: namespace, name: name, args: args, canReply: ack), line: position(n).line)
    }

    mutating func compileExpectation(_ n: Node) -> RuleTest.Expectation? {
        guard case .mapping(let raw) = n else {
            error(n, "an expected action is a mapping like {at: 1s, rule: battery-low, action: emit}, not \(describe(n))")
            return nil
        }
        _ = raw
        guard let m = mapping(n, "an expected action", known: expectationKeys) else { return nil }
        let p = position(n)
        var fields: [(String, JSONValue)] = []
        var ok = true
        for key in expectationKeys {
            guard let e = m[key] else { continue }
            switch key {
            case "at", "ack", "timeout":
                guard let v = testTime(e.value, key) else { ok = false; continue }
                fields.append((key, .number(v)))
            case "phase":
                let v = json(e.value)
                guard case .string(let s) = v, ["then", "on_clear"].contains(s) else {
                    error(e.value, "phase is then or on_clear"); ok = false; continue
                }
                fields.append((key, v))
            case "action":
                let v = json(e.value)
                guard case .string(let s) = v, actionKinds.contains(s) else {
                    error(e.value, "action is one of \(actionKinds.joined(separator: ", "))" + suggestion(e.value.scalar?.string ?? "", actionKinds)); ok = false; continue
                }
                fields.append((key, v))
            case "rule":
                guard let t = text(e.value, "rule") else { ok = false; continue }
                expectationRulePositions["\(p.line):\(p.column)"] = position(e.value)
                fields.append((key, .string(t)))
            case "args", "argv":
                guard case .array = json(e.value) else { error(e.value, "\(key): must be a list"); ok = false; continue }
                fields.append((key, json(e.value)))
            case "env":
                guard case .object(let o) = json(e.value) else { error(e.value, "env: must be a mapping"); ok = false; continue }
                fields.append((key, .object(o.mapValues { .string(plainText($0)) })))
            default:
                guard case .scalar(let s) = e.value else { error(e.value, "\(key): must be text"); ok = false; continue }
                fields.append((key, .string(s.string)))
            }
        }
        guard ok else { return nil }
        return RuleTest.Expectation(fields: fields, line: p.line, column: p.column)
    }
}

/// YAML 1.2 core-schema resolution of a plain scalar.
func resolvePlain(_ s: String) -> JSONValue {
    switch s {
    case "", "~", "null", "Null", "NULL": return .null
    case "true", "True", "TRUE": return .bool(true)
    case "false", "False", "FALSE": return .bool(false)
    default: break
    }
    let scalars = Array(s.unicodeScalars)
    guard let first = scalars.first, first == "-" || first == "+" || first == "." || ("0"..."9").contains(first) else {
        return .string(s)
    }
    var body = s
    var sign = 1.0
    if first == "-" || first == "+" { body = String(s.dropFirst()); sign = first == "-" ? -1 : 1 }
    if body.hasPrefix("0x"), let v = Int(body.dropFirst(2), radix: 16) { return .number(sign * Double(v)) }
    if body.hasPrefix("0o"), let v = Int(body.dropFirst(2), radix: 8) { return .number(sign * Double(v)) }
    var digits = 0
    for c in body.unicodeScalars {
        if ("0"..."9").contains(c) { digits += 1; continue }
        if c == "." || c == "e" || c == "E" || c == "-" || c == "+" { continue }
        return .string(s)
    }
    guard digits > 0, let v = Double(body), v.isFinite else { return .string(s) }
    return .number(sign * v)
}

extension RuleSet {
    /// A YAML document as JSON, read the way rule files are (YAML 1.2 core schema: `yes`/`no`/`on`
    /// stay text). Nil when the text is not valid YAML. Used to validate files against
    /// `schema/rules.schema.json`.
    public static func yamlAsJSON(_ text: String) -> JSONValue? {
        guard let root = try? Yams.compose(yaml: text) else { return nil }
        return FileCompiler(source: SourceText(path: "", text: ""), environment: [:]).json(root)
    }
}
