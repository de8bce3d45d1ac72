import SIOCore
import SIOYAML

extension FileCompiler {
    // MARK: Expressions and templates

    /// Compiles the expression `text` found in node `n` at `offset` of its text.
    mutating func compileExpression(_ text: String, in n: YAMLNode, offset: Int, what: String, environmentRead: inout Set<String>) -> CompiledExpression? {
        var scope = ExpressionScope(vars: vars, environment: environment)
        scope.allowKey = ruleScope.allowKey
        scope.allowWindows = ruleScope.allowWindows
        scope.windowsForbiddenReason = ruleScope.windowsForbiddenReason
        do {
            var parser = try ExpressionParser(text: text, scope: scope)
            let root = try parser.parseAll()
            environmentRead.formUnion(parser.scope.environmentRead)
            for r in parser.scope.stateRead { stateReads.append((r.name, contentPosition(n, offset: offset + r.offset))) }
            for w in parser.scope.warnings { warning(contentPosition(n, offset: offset + w.offset), w.message) }
            for e in parser.errors { error(contentPosition(n, offset: offset + e.offset), e.message) }
            return parser.errors.isEmpty ? CompiledExpression(root: root, source: text) : nil
        } catch {
            self.error(contentPosition(n, offset: offset + error.offset), "in \(what): \(error.message)")
            return nil
        }
    }

    /// A `when`/`clear_when`/`key` expression.
    mutating func condition(_ n: YAMLNode, _ what: String, needsBool: Bool, environmentRead: inout Set<String>) -> CompiledExpression? {
        guard case .scalar(let s) = n else {
            let quoteHint = if case .sequence = n { " (YAML read a list: quote the whole expression)" } else if case .mapping = n { " (YAML read a mapping: quote the whole expression, or remove \": \" from it)" } else { "" }
            error(n, "\(what) must be an expression (text), not \(describe(n))" + quoteHint)
            return nil
        }
        if s.string.contains(text: "{{") {
            let offset = s.string.firstRange(ofText: "{{").map { s.string.unicodeScalars.distance(from: s.string.unicodeScalars.startIndex, to: $0.lowerBound) } ?? 0
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
    mutating func template(_ n: YAMLNode, environmentRead: inout Set<String>) -> ValueTemplate? {
        switch n {
        case .scalar(let s):
            let v = s.value
            guard case .string = v else { return .constant(v) }
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
        }
    }

    mutating func textTemplate(_ text: String, in n: YAMLNode, environmentRead: inout Set<String>) -> ValueTemplate? {
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
}
