import SIOCore

/// A problem in an expression, at an offset (Unicode scalars) inside the expression text.
struct ExpressionError: Error, Sendable {
    var offset: Int
    var message: String
}

/// What an expression may refer to when it is compiled.
struct ExpressionScope {
    var vars: [String: JSONValue]
    var environment: [String: String]
    /// Names of environment variables read, for the rule's fingerprint.
    var environmentRead: Set<String> = []
    /// Non-fatal problems (an unset `env.NAME`).
    var warnings: [ExpressionError] = []
    /// Whether `key` may be read (the rule has `key:`).
    var allowKey = true
    /// Whether window functions may be used (the rule has `on:`), and why not otherwise.
    var allowWindows = true
    var windowsForbiddenReason = "window functions need a rule with on: (they range over its events)"
    /// `state.NAME` reads, with the offset of NAME (for "no rule sets X" warnings).
    var stateRead: [(name: String, offset: Int)] = []
    /// Inside a window function's argument (windows do not nest).
    var insideWindow = false
}

private enum Token: Equatable {
    case number(Double)
    case string(String)
    case identifier(String)
    case op(String)
    /// A duration literal (`10m`, `1h30m`): only the window of a window function.
    case duration(Double, String)
    case end
}

private struct Lexeme {
    var token: Token
    var start: Int
    var end: Int
}

private func lex(_ scalars: [Unicode.Scalar]) throws(ExpressionError) -> [Lexeme] {
    var out: [Lexeme] = []
    var i = 0
    func isDigit(_ c: Unicode.Scalar) -> Bool { c >= "0" && c <= "9" }
    func isIdentStart(_ c: Unicode.Scalar) -> Bool { (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_" }
    while i < scalars.count {
        let c = scalars[i]
        if c == " " || c == "\t" || c == "\n" || c == "\r" { i += 1; continue }
        let start = i
        if isDigit(c) || (c == "." && i + 1 < scalars.count && isDigit(scalars[i + 1])) {
            var text = ""
            while i < scalars.count, isDigit(scalars[i]) || scalars[i] == "." || scalars[i] == "_" {
                if scalars[i] != "_" { text.unicodeScalars.append(scalars[i]) }
                i += 1
            }
            if i < scalars.count, scalars[i] == "e" || scalars[i] == "E" {
                var j = i + 1
                var exp = "e"
                if j < scalars.count, scalars[j] == "+" || scalars[j] == "-" { exp.unicodeScalars.append(scalars[j]); j += 1 }
                if j < scalars.count, isDigit(scalars[j]) {
                    while j < scalars.count, isDigit(scalars[j]) { exp.unicodeScalars.append(scalars[j]); j += 1 }
                    text += exp
                    i = j
                }
            }
            if i < scalars.count, isIdentStart(scalars[i]) {
                var word = text
                var j = i
                while j < scalars.count, isIdentStart(scalars[j]) || isDigit(scalars[j]) || scalars[j] == "." {
                    word.unicodeScalars.append(scalars[j])
                    j += 1
                }
                guard let seconds = parseDurationSeconds(word) else {
                    throw ExpressionError(offset: start, message: "\"\(word)\" is not a number or a duration (500ms, 10s, 5m, 1h, 1d)")
                }
                out.append(Lexeme(token: .duration(seconds, word), start: start, end: j))
                i = j
                continue
            }
            guard let value = Double(text) else {
                throw ExpressionError(offset: start, message: "\"\(text)\" is not a number")
            }
            out.append(Lexeme(token: .number(value), start: start, end: i))
            continue
        }
        if isIdentStart(c) {
            var text = ""
            while i < scalars.count, isIdentStart(scalars[i]) || isDigit(scalars[i]) {
                text.unicodeScalars.append(scalars[i])
                i += 1
            }
            out.append(Lexeme(token: .identifier(text), start: start, end: i))
            continue
        }
        if c == "\"" || c == "'" {
            i += 1
            var text = ""
            var closed = false
            while i < scalars.count {
                let d = scalars[i]
                if d == c { closed = true; i += 1; break }
                if d == "\\" {
                    guard i + 1 < scalars.count else { break }
                    let e = scalars[i + 1]
                    switch e {
                    case "n": text += "\n"
                    case "t": text += "\t"
                    case "r": text += "\r"
                    case "\\": text += "\\"
                    case "\"": text += "\""
                    case "'": text += "'"
                    default:
                        // Kept as written, so regex escapes like \d survive in `matches "\d+"`.
                        text.unicodeScalars.append("\\")
                        text.unicodeScalars.append(e)
                    }
                    i += 2
                    continue
                }
                text.unicodeScalars.append(d)
                i += 1
            }
            guard closed else { throw ExpressionError(offset: start, message: "unterminated string: missing closing \(c)") }
            out.append(Lexeme(token: .string(text), start: start, end: i))
            continue
        }
        let two = i + 1 < scalars.count ? String(c) + String(scalars[i + 1]) : ""
        if ["==", "!=", "<=", ">="].contains(two) {
            out.append(Lexeme(token: .op(two), start: start, end: i + 2))
            i += 2
            continue
        }
        if "()[],.<>+-*/%".unicodeScalars.contains(c) {
            out.append(Lexeme(token: .op(String(c)), start: start, end: i + 1))
            i += 1
            continue
        }
        if c == "=" {
            throw ExpressionError(offset: start, message: "\"=\" is not an operator; use \"==\" to compare")
        }
        if c == "&" || c == "|" || c == "!" {
            let word = c == "&" ? "and" : c == "|" ? "or" : "not"
            throw ExpressionError(offset: start, message: "unexpected \"\(c)\"; write \"\(word)\"")
        }
        throw ExpressionError(offset: start, message: "unexpected character \"\(c)\"")
    }
    out.append(Lexeme(token: .end, start: scalars.count, end: scalars.count))
    return out
}

private let keywords: Set<String> = ["and", "or", "not", "in", "contains", "matches", "true", "false", "null"]
private let roots = ["event", "namespace", "args", "payload", "vars", "env", "now", "key", "state"]

/// Recursive-descent parser producing `Expr` trees, with load-time type checks.
struct ExpressionParser {
    private let tokens: [Lexeme]
    /// The expression's text, to place an error inside a string literal (`matches` patterns).
    private let source: [Unicode.Scalar]
    private var position = 0
    var scope: ExpressionScope
    /// Type and reference errors; parsing goes on after them so all are reported.
    var errors: [ExpressionError] = []

    /// Parses `text` completely. Throws the first syntax error; other problems land in `errors`.
    init(text: String, scope: ExpressionScope) throws(ExpressionError) {
        self.source = Array(text.unicodeScalars)
        self.tokens = try lex(source)
        self.scope = scope
    }

    mutating func parseAll() throws(ExpressionError) -> Expr {
        if case .end = tokens[position].token {
            throw ExpressionError(offset: 0, message: "empty expression")
        }
        let e = try parseOr()
        let t = tokens[position]
        if t.token != .end {
            throw ExpressionError(offset: t.start, message: "unexpected \(describe(t.token)) after the end of the expression")
        }
        return e
    }

    private func describe(_ t: Token) -> String {
        switch t {
        case .number(let n): return "number \(JSONValue.number(n))"
        case .string(let s): return "string \(JSONValue.string(s))"
        case .identifier(let s): return "\"\(s)\""
        case .op(let s): return "\"\(s)\""
        case .duration(_, let s): return "duration \(s)"
        case .end: return "end of expression"
        }
    }

    private var current: Lexeme { tokens[position] }

    /// Where the `k`th scalar of the string literal that starts at `start` (its quote) is in the
    /// expression: `lex` turns `\n`, `\t`, `\r`, `\\`, `\"` and `\'` into one scalar each and keeps
    /// other escapes as written.
    private func sourceOffset(ofPatternScalar k: Int, inStringAt start: Int) -> Int {
        var j = start + 1
        var produced = 0
        while j < source.count {
            let oneForTwo = source[j] == "\\" && j + 1 < source.count && "ntr\\\"'".unicodeScalars.contains(source[j + 1])
            if produced == k { return j }
            j += oneForTwo ? 2 : 1
            produced += 1
        }
        return min(j, source.count)
    }

    private mutating func advance() -> Lexeme {
        let t = tokens[position]
        if position < tokens.count - 1 { position += 1 }
        return t
    }

    private func isKeyword(_ word: String) -> Bool {
        if case .identifier(word) = current.token { return true }
        return false
    }

    private func isOp(_ op: String) -> Bool {
        if case .op(op) = current.token { return true }
        return false
    }

    private mutating func expectOp(_ op: String, _ context: String) throws(ExpressionError) {
        guard isOp(op) else {
            throw ExpressionError(offset: current.start, message: "expected \"\(op)\" \(context), found \(describe(current.token))")
        }
        _ = advance()
    }

    private mutating func requireBool(_ e: Expr, _ what: String) {
        if e.type != .bool && e.type != .any {
            errors.append(ExpressionError(offset: e.start, message: "\(what) needs true or false, but this is a \(e.type.name)"))
        }
    }

    private mutating func parseOr() throws(ExpressionError) -> Expr {
        var left = try parseAnd()
        while isKeyword("or") {
            _ = advance()
            let right = try parseAnd()
            requireBool(left, "\"or\"")
            requireBool(right, "\"or\"")
            left = Expr(.binary(.or, left, right), left.start, right.end, type: .bool)
        }
        return left
    }

    private mutating func parseAnd() throws(ExpressionError) -> Expr {
        var left = try parseNot()
        while isKeyword("and") {
            _ = advance()
            let right = try parseNot()
            requireBool(left, "\"and\"")
            requireBool(right, "\"and\"")
            left = Expr(.binary(.and, left, right), left.start, right.end, type: .bool)
        }
        return left
    }

    private mutating func parseNot() throws(ExpressionError) -> Expr {
        if isKeyword("not") {
            let t = advance()
            let operand = try parseNot()
            requireBool(operand, "\"not\"")
            return Expr(.not(operand), t.start, operand.end, type: .bool)
        }
        return try parseComparison()
    }

    private mutating func comparisonOperator() -> BinaryOp? {
        switch current.token {
        case .op(let s): return BinaryOp(rawValue: s).flatMap { $0.isComparison ? $0 : nil }
        case .identifier("in"): return .in
        case .identifier("contains"): return .contains
        case .identifier("not"):
            if case .identifier("in") = tokens[min(position + 1, tokens.count - 1)].token { return .notIn }
            return nil
        default: return nil
        }
    }

    private mutating func parseComparison() throws(ExpressionError) -> Expr {
        let left = try parseAdditive()
        if isKeyword("matches") {
            _ = advance()
            let patternToken = current
            guard case .string(let pattern) = patternToken.token else {
                throw ExpressionError(offset: patternToken.start, message: "\"matches\" needs a quoted regular expression after it (compiled when the rules load)")
            }
            _ = advance()
            let program: RegexProgram
            do {
                program = try RegexProgram(pattern)
            } catch {
                errors.append(ExpressionError(
                    offset: sourceOffset(ofPatternScalar: error.offset, inStringAt: patternToken.start),
                    message: "invalid regular expression \(JSONValue.string(pattern).jsonString()): \(error.message)"))
                return Expr(.literal(.bool(false)), left.start, patternToken.end, type: .bool)
            }
            if left.type != .string && left.type != .any {
                errors.append(ExpressionError(offset: left.start, message: "\"matches\" needs a string on its left, but this is a \(left.type.name)"))
            }
            let e = Expr(.matches(left, CompiledPattern(program: program, pattern: pattern)), left.start, patternToken.end, type: .bool)
            try rejectChain()
            return e
        }
        guard let op = comparisonOperator() else { return left }
        let opToken = advance()
        if op == .notIn { _ = advance() }
        let right = try parseAdditive()
        checkComparison(op, left, right, opToken.start)
        var kind = Expr.Kind.binary(op, left, right)
        if op.isComparison, case .literal(.number(let n)) = right.kind {
            kind = .compareNumber(op, left, n)
        } else if op == .eq || op == .ne, case .literal(.string(let t)) = right.kind {
            kind = .equalsString(op == .eq, left, t)
        }
        let e = Expr(kind, left.start, right.end, type: .bool)
        try rejectChain()
        return e
    }

    private mutating func rejectChain() throws(ExpressionError) {
        if comparisonOperator() != nil || isKeyword("matches") {
            throw ExpressionError(offset: current.start, message: "comparisons do not chain; join them with \"and\"")
        }
    }

    private mutating func checkComparison(_ op: BinaryOp, _ l: Expr, _ r: Expr, _ at: Int) {
        let a = l.type, b = r.type
        if op.isOrdering {
            for side in [l, r] where ![.number, .string, .any].contains(side.type) {
                errors.append(ExpressionError(offset: side.start, message: "\"\(op.rawValue)\" compares numbers or strings, but this is a \(side.type.name)"))
            }
            if a != .any, b != .any, a != b, [.number, .string].contains(a), [.number, .string].contains(b) {
                errors.append(ExpressionError(offset: at, message: "\"\(op.rawValue)\" between a \(a.name) and a \(b.name) never holds: values are not converted (use number() or string())"))
            }
        } else if op == .eq || op == .ne {
            if a != .any, b != .any, a != .null, b != .null, a != b {
                errors.append(ExpressionError(offset: at, message: "\"\(op.rawValue)\" between a \(a.name) and a \(b.name) never holds: values are not converted (use number() or string())"))
            }
        } else if op == .in || op == .notIn {
            if ![.list, .string, .object, .any].contains(b) {
                errors.append(ExpressionError(offset: r.start, message: "\"\(op.rawValue)\" needs a list, string or object on its right, but this is a \(b.name)"))
            }
        } else if op == .contains {
            if ![.list, .string, .object, .any].contains(a) {
                errors.append(ExpressionError(offset: l.start, message: "\"contains\" needs a list, string or object on its left, but this is a \(a.name)"))
            }
        }
    }

    private mutating func parseAdditive() throws(ExpressionError) -> Expr {
        var left = try parseMultiplicative()
        while isOp("+") || isOp("-") {
            let t = advance()
            let op: BinaryOp = t.token == .op("+") ? .add : .sub
            let right = try parseMultiplicative()
            left = arithmetic(op, left, right, t.start)
        }
        return left
    }

    private mutating func parseMultiplicative() throws(ExpressionError) -> Expr {
        var left = try parseUnary()
        while isOp("*") || isOp("/") || isOp("%") {
            let t = advance()
            let op: BinaryOp = t.token == .op("*") ? .mul : t.token == .op("/") ? .div : .mod
            let right = try parseUnary()
            left = arithmetic(op, left, right, t.start)
        }
        return left
    }

    private mutating func arithmetic(_ op: BinaryOp, _ l: Expr, _ r: Expr, _ at: Int) -> Expr {
        var type = StaticType.number
        if op == .add, l.type == .string || r.type == .string {
            type = .string
            if l.type != .string && l.type != .any || r.type != .string && r.type != .any {
                errors.append(ExpressionError(offset: at, message: "\"+\" joins two strings or adds two numbers, not a \(l.type.name) and a \(r.type.name) (use string())"))
            }
        } else if op == .add, l.type == .list || r.type == .list {
            type = .list
            if l.type != .list && l.type != .any || r.type != .list && r.type != .any {
                errors.append(ExpressionError(offset: at, message: "\"+\" joins two lists, not a \(l.type.name) and a \(r.type.name)"))
            }
        } else if l.type == .any && r.type == .any && op == .add {
            type = .any
        } else {
            for side in [l, r] where side.type != .number && side.type != .any {
                errors.append(ExpressionError(offset: side.start, message: "\"\(op.rawValue)\" needs numbers, but this is a \(side.type.name)"))
            }
        }
        return Expr(.binary(op, l, r), l.start, r.end, type: type)
    }

    private mutating func parseUnary() throws(ExpressionError) -> Expr {
        if isOp("-") {
            let t = advance()
            let operand = try parseUnary()
            if case .literal(.number(let n)) = operand.kind {
                return Expr(.literal(.number(-n)), t.start, operand.end, type: .number)
            }
            if operand.type != .number && operand.type != .any {
                errors.append(ExpressionError(offset: operand.start, message: "\"-\" needs a number, but this is a \(operand.type.name)"))
            }
            return Expr(.negate(operand), t.start, operand.end, type: .number)
        }
        return try parsePostfix()
    }

    private mutating func parsePostfix() throws(ExpressionError) -> Expr {
        var e = try parsePrimary()
        while true {
            if isOp(".") {
                _ = advance()
                let t = advance()
                guard case .identifier(let name) = t.token else {
                    throw ExpressionError(offset: t.start, message: "expected a field name after \".\", found \(describe(t.token)) (use [\"odd key\"] for other names)")
                }
                e = member(e, name, t.start, t.end)
            } else if isOp("[") {
                let open = advance()
                let index = try parseOr()
                let close = current
                try expectOp("]", "to close the \"[\" at offset \(open.start)")
                switch index.kind {
                case .literal(.string(let name)): e = member(e, name, index.start, close.end)
                case .literal(.number(let n)):
                    guard n == n.rounded(), abs(n) < 1e15 else {
                        throw ExpressionError(offset: index.start, message: "a list index must be a whole number")
                    }
                    if e.type != .list && e.type != .any {
                        errors.append(ExpressionError(offset: open.start, message: "[\(Int(n))] reads a list, but this is a \(e.type.name)"))
                    }
                    e = Expr(.index(e, Int(n)), e.start, close.end, type: .any)
                default:
                    if ![.number, .string, .any].contains(index.type) {
                        errors.append(ExpressionError(offset: index.start, message: "an index must be a number or a string, but this is a \(index.type.name)"))
                    }
                    e = Expr(.dynamicIndex(e, index), e.start, close.end, type: .any)
                }
            } else {
                return e
            }
        }
    }

    /// `base.name`: resolves `vars.NAME` and `env.NAME` now; other members are read at run time.
    private mutating func member(_ base: Expr, _ name: String, _ nameStart: Int, _ end: Int) -> Expr {
        if case .literal(.object(let varsMarker)) = base.kind, varsMarker["\u{0}vars"] != nil {
            if let value = scope.vars[name] {
                return Expr(.literal(value), base.start, end, type: StaticType(of: value))
            }
            let names = scope.vars.keys.sorted()
            errors.append(ExpressionError(offset: nameStart, message: "unknown variable \"\(name)\"" + (names.isEmpty ? " (this file has no vars:)" : suggestion(name, names))))
            return Expr(.undefined, base.start, end, type: .any)
        }
        if case .literal(.object(let envMarker)) = base.kind, envMarker["\u{0}env"] != nil {
            scope.environmentRead.insert(name)
            if let value = scope.environment[name] {
                return Expr(.literal(.string(value)), base.start, end, type: .string)
            }
            scope.warnings.append(ExpressionError(offset: nameStart, message: "environment variable \(name) is not set; env.\(name) has no value"))
            return Expr(.undefined, base.start, end, type: .any)
        }
        if ![.object, .any].contains(base.type) {
            errors.append(ExpressionError(offset: nameStart, message: "field \"\(name)\" of a \(base.type.name), which has no fields"))
        }
        if case .literal(let v) = base.kind {
            return Expr(v[name].map { .literal($0) } ?? .undefined, base.start, end, type: v[name].map { StaticType(of: $0) } ?? .any)
        }
        return Expr(.member(base, name), base.start, end, type: .any)
    }

    private mutating func parsePrimary() throws(ExpressionError) -> Expr {
        let t = advance()
        switch t.token {
        case .number(let n):
            return Expr(.literal(.number(n)), t.start, t.end, type: .number)
        case .string(let s):
            return Expr(.literal(.string(s)), t.start, t.end, type: .string)
        case .op("("):
            let inner = try parseOr()
            let close = current
            try expectOp(")", "to close the \"(\"")
            return Expr(inner.kind, t.start, close.end, type: inner.type)
        case .op("["):
            var items: [Expr] = []
            if !isOp("]") {
                while true {
                    items.append(try parseOr())
                    if isOp(",") { _ = advance(); if isOp("]") { break }; continue }
                    break
                }
            }
            let close = current
            try expectOp("]", "to close the list")
            if items.allSatisfy({ if case .literal = $0.kind { return true } else { return false } }) {
                let values = items.map { e -> JSONValue in if case .literal(let v) = e.kind { return v } else { return .null } }
                return Expr(.literal(.array(values)), t.start, close.end, type: .list)
            }
            return Expr(.list(items), t.start, close.end, type: .list)
        case .identifier(let name):
            switch name {
            case "true": return Expr(.literal(.bool(true)), t.start, t.end, type: .bool)
            case "false": return Expr(.literal(.bool(false)), t.start, t.end, type: .bool)
            case "null": return Expr(.literal(.null), t.start, t.end, type: .null)
            case "event": return Expr(.event, t.start, t.end, type: .string)
            case "namespace": return Expr(.namespace, t.start, t.end, type: .string)
            case "args": return Expr(.args, t.start, t.end, type: .list)
            case "payload": return Expr(.payload, t.start, t.end, type: .any)
            case "now": return Expr(.now, t.start, t.end, type: .number)
            case "key":
                if !scope.allowKey {
                    errors.append(ExpressionError(offset: t.start, message: "key has no value in a rule without key: (add key: EXPRESSION)"))
                }
                return Expr(.key, t.start, t.end, type: .any)
            case "state":
                guard isOp(".") else {
                    throw ExpressionError(offset: t.end, message: "state needs a name: state.NAME")
                }
                _ = advance()
                let nameToken = advance()
                guard case .identifier(let stateName) = nameToken.token else {
                    throw ExpressionError(offset: nameToken.start, message: "expected a state name after \"state.\", found \(describe(nameToken.token))")
                }
                scope.stateRead.append((stateName, nameToken.start))
                return Expr(.state(stateName), t.start, nameToken.end, type: .any)
            case "vars", "env":
                guard isOp(".") || isOp("[") else {
                    throw ExpressionError(offset: t.end, message: "\(name) needs a name: \(name).NAME")
                }
                // Marker objects resolved by `member`; they never reach evaluation.
                return Expr(.literal(.object(["\u{0}\(name)": .null])), t.start, t.end, type: .object)
            default:
                break
            }
            if isOp("("), let window = WindowFunction(rawValue: name) {
                return try parseWindow(window, t)
            }
            if isOp("(") {
                guard let function = Function(rawValue: name) else {
                    throw ExpressionError(offset: t.start, message: "unknown function \"\(name)\"" + suggestion(name, Function.allCases.map(\.rawValue) + WindowFunction.allCases.map(\.rawValue)))
                }
                _ = advance()
                var arguments: [Expr] = []
                if !isOp(")") {
                    while true {
                        arguments.append(try parseOr())
                        if isOp(",") { _ = advance(); continue }
                        break
                    }
                }
                let close = current
                try expectOp(")", "to close the arguments of \(name)()")
                if !function.arity.contains(arguments.count) {
                    let want = function.arity.lowerBound == function.arity.upperBound ? "\(function.arity.lowerBound)" : "\(function.arity.lowerBound) or \(function.arity.upperBound)"
                    errors.append(ExpressionError(offset: t.start, message: "\(name)() takes \(want) argument\(function.arity.upperBound == 1 ? "" : "s"), got \(arguments.count)"))
                }
                return Expr(.call(function, arguments), t.start, close.end, type: functionType(function, arguments))
            }
            if keywords.contains(name) {
                throw ExpressionError(offset: t.start, message: "expected a value, found \"\(name)\"")
            }
            throw ExpressionError(offset: t.start, message: "unknown name \"\(name)\"" + suggestion(name, roots + Function.allCases.map(\.rawValue)) + " (names: \(roots.joined(separator: ", ")))")
        case .duration(_, let text):
            throw ExpressionError(offset: t.start, message: "a duration (\(text)) is only allowed as the window of count_over, avg_over…; elsewhere write seconds (a number)")
        case .end:
            throw ExpressionError(offset: t.start, message: "expression ends too early: expected a value")
        default:
            throw ExpressionError(offset: t.start, message: "expected a value, found \(describe(t.token))")
        }
    }

    /// `count_over(D)` or `F(EXPR, D)`, after the name; D is a duration literal fixed at load.
    private mutating func parseWindow(_ f: WindowFunction, _ t: Lexeme) throws(ExpressionError) -> Expr {
        _ = advance()  // (
        if !scope.allowWindows {
            errors.append(ExpressionError(offset: t.start, message: "\(f.rawValue)(): " + scope.windowsForbiddenReason))
        }
        if scope.insideWindow {
            errors.append(ExpressionError(offset: t.start, message: "window functions do not nest"))
        }
        var argument: Expr?
        var argumentText = ""
        if f != .count {
            let argStart = current.start
            let wasInside = scope.insideWindow
            scope.insideWindow = true
            let a = try parseOr()
            scope.insideWindow = wasInside
            argument = a
            argumentText = String(describing: tokens.filter { $0.start >= argStart && $0.end <= a.end }.map(\.token))
            if a.type != .number && a.type != .any {
                errors.append(ExpressionError(offset: a.start, message: "\(f.rawValue)() samples numbers, but this is a \(a.type.name)"))
            }
            try expectOp(",", "between the value and the window of \(f.rawValue)(EXPRESSION, DURATION)")
        }
        let d = current
        var seconds = 0.0
        switch d.token {
        case .duration(let v, let text):
            _ = advance()
            if v <= 0 { errors.append(ExpressionError(offset: d.start, message: "the window \(text) must be longer than 0s")) }
            seconds = v
        case .number(let n):
            _ = advance()
            errors.append(ExpressionError(offset: d.start, message: "the window needs a unit: \(JSONValue.number(n))s, \(JSONValue.number(n))m… (500ms, 10s, 5m, 1h, 1d)"))
        default:
            throw ExpressionError(offset: d.start, message: "\(f.rawValue)() needs a duration literal like 10m as its window (fixed at load), found \(describe(d.token))")
        }
        let close = current
        try expectOp(")", "to close \(f.rawValue)(" + (f == .count ? "DURATION)" : "EXPRESSION, DURATION)"))
        let call = WindowCall(function: f, argument: argument, argumentText: argumentText, seconds: seconds, text: f.rawValue)
        return Expr(.window(call), t.start, close.end, type: .number)
    }

    private mutating func functionType(_ f: Function, _ a: [Expr]) -> StaticType {
        func check(_ i: Int, _ allowed: [StaticType], _ what: String) {
            guard i < a.count else { return }
            if a[i].type != .any && !allowed.contains(a[i].type) {
                errors.append(ExpressionError(offset: a[i].start, message: "\(f.rawValue)() needs \(what), but this is a \(a[i].type.name)"))
            }
        }
        switch f {
        case .len: check(0, [.string, .list, .object], "a string, list or object"); return .number
        case .lower, .upper: check(0, [.string], "a string"); return .string
        case .number: return .number
        case .string, .json: return .string
        case .exists: return .bool
        case .default: return a.count == 2 && a[0].type == a[1].type ? a[0].type : .any
        case .round: check(0, [.number], "a number"); check(1, [.number], "a number of digits"); return .number
        }
    }
}
