/// Reads a `matches` pattern into a ``RegexNode``, or says at which scalar and why it cannot.
///
/// Recursive descent over the pattern's scalars; the recursion follows group nesting, which
/// ``RegexBounds/maxGroupDepth`` bounds. Inline flags (`(?i)`, `(?s)`, `(?m)`, `(?-i)`, …) hold
/// to the end of the group they are in, across its later alternatives; `(?i:…)` holds inside.
struct RegexParser {
    /// The pattern, and the parser's position in it (internal: the escapes are read in RegexParser+Escapes.swift).
    let s: [Unicode.Scalar]
    var i = 0
    private var depth = 0

    struct Flags {
        var caseInsensitive = false
        var dotAll = false
        var multiline = false
    }

    /// What the last item of a sequence was, for the quantifier that may follow it.
    private enum Last { case none, atom, quantified, anchor, flags }

    /// One escape: a scalar, a class item (`\d`, `\p{L}`) or an anchor (`\b`, `\A`).
    enum Escape {
        case scalar(Unicode.Scalar)
        case item(ScalarClass.Item)
        case assertion(RegexAssertion)
    }

    static func parse(_ pattern: String) throws(RegexSyntaxError) -> RegexNode {
        var count = 0
        for _ in pattern.unicodeScalars {
            count += 1
            if count > RegexBounds.maxPatternScalars {
                throw RegexSyntaxError(offset: 0, message: "the pattern is longer than \(RegexBounds.maxPatternScalars) characters")
            }
        }
        var parser = RegexParser(s: Array(pattern.unicodeScalars))
        var flags = Flags()
        let node = try parser.parseAlternation(&flags)
        if parser.i < parser.s.count {
            throw RegexSyntaxError(offset: parser.i, message: "unmatched \")\": no group is open (write \\) for a parenthesis)")
        }
        return node
    }

    private init(s: [Unicode.Scalar]) {
        self.s = s
    }

    func error(_ offset: Int, _ message: String) -> RegexSyntaxError {
        RegexSyntaxError(offset: offset, message: message)
    }

    func peek(_ k: Int = 0) -> Unicode.Scalar? {
        i + k < s.count ? s[i + k] : nil
    }

    // MARK: Sequences

    private mutating func parseAlternation(_ flags: inout Flags) throws(RegexSyntaxError) -> RegexNode {
        var branches = [try parseConcatenation(&flags)]
        while peek() == "|" {
            i += 1
            branches.append(try parseConcatenation(&flags))
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    private mutating func parseConcatenation(_ flags: inout Flags) throws(RegexSyntaxError) -> RegexNode {
        var items: [RegexNode] = []
        var last = Last.none
        while let c = peek(), c != "|", c != ")" {
            let start = i
            if c == "*" || c == "+" || c == "?" || (c == "{" && isCountedQuantifier()) {
                switch last {
                case .atom: break
                case .quantified:
                    throw error(start, "a quantifier cannot follow another; to repeat a repetition, group it: (?:a+)*")
                case .anchor:
                    throw error(start, "an anchor cannot be repeated")
                case .none, .flags:
                    throw error(start, "nothing to repeat before this quantifier (write \\\(Character(c)) for the character)")
                }
                let (min, max) = try parseQuantifier()
                if peek() == "?" {
                    i += 1  // lazy: the same boolean result
                } else if peek() == "+" {
                    throw error(i, "possessive quantifiers (a*+, a++) are not supported by matches")
                }
                items.append(.repetition(items.removeLast(), min: min, max: max, offset: start))
                last = .quantified
                continue
            }
            if c == "{" {
                throw error(start, "\"{\" starts a counted repetition ({n}, {n,}, {n,m} or {,m}); write \\{ for a brace")
            }
            if let (node, kind) = try parseAtom(&flags) {
                items.append(node)
                last = kind
            } else {
                last = .flags
            }
        }
        switch items.count {
        case 0: return .empty
        case 1: return items[0]
        default: return .concatenation(items)
        }
    }

    /// Whether the `{` at `i` starts `{n}`, `{n,}`, `{n,m}` or `{,m}`.
    private func isCountedQuantifier() -> Bool {
        var k = i + 1
        func digits() -> Int {
            let start = k
            while k < s.count, s[k].isASCII, s[k].value &- 0x30 < 10 { k += 1 }
            return k - start
        }
        let low = digits()
        guard k < s.count else { return false }
        if s[k] == "}" { return low > 0 }
        guard s[k] == "," else { return false }
        k += 1
        let high = digits()
        return k < s.count && s[k] == "}" && (low > 0 || high > 0)
    }

    private mutating func parseQuantifier() throws(RegexSyntaxError) -> (Int, Int?) {
        let c = s[i]
        i += 1
        switch c {
        case "*": return (0, nil)
        case "+": return (1, nil)
        case "?": return (0, 1)
        default: break
        }
        let open = i - 1
        let low = try parseCount()
        var high = low
        if peek() == "," {
            i += 1
            high = try parseCount()
        }
        i += 1  // "}"
        let min = low ?? 0
        if let max = high, max < min {
            throw error(open, "the repetition {\(min),\(max)} has a minimum above its maximum")
        }
        return (min, high)
    }

    /// Digits at `i` (none: nil), saturated, then checked against the bound.
    private mutating func parseCount() throws(RegexSyntaxError) -> Int? {
        let start = i
        var value = 0
        while let d = peek(), d.isASCII, d.value &- 0x30 < 10 {
            value = Swift.min(value &* 10 &+ Int(d.value - 0x30), Int(Int32.max))
            i += 1
        }
        guard i > start else { return nil }
        if value > RegexBounds.maxRepetitionCount {
            throw error(start, "the count \(value) is above \(RegexBounds.maxRepetitionCount), the largest a repetition may have")
        }
        return value
    }

    // MARK: Atoms

    private mutating func parseAtom(_ flags: inout Flags) throws(RegexSyntaxError) -> (RegexNode, Last)? {
        let c = s[i]
        switch c {
        case "(":
            return try parseGroup(&flags).map { ($0, .atom) }
        case "[":
            i += 1
            return (.set(try parseClass(open: i - 1, flags)), .atom)
        case ".":
            i += 1
            return (.any(dotAll: flags.dotAll), .atom)
        case "^":
            i += 1
            return (.assertion(flags.multiline ? .lineStart : .textStart), .anchor)
        case "$":
            i += 1
            return (.assertion(flags.multiline ? .lineEnd : .textEnd), .anchor)
        case "\\":
            switch try parseEscape(inClass: false) {
            case .scalar(let x): return (.scalar(x, caseInsensitive: flags.caseInsensitive), .atom)
            case .item(let item): return (.set(ScalarClass(items: [item], negated: false, caseInsensitive: false)), .atom)
            case .assertion(let a): return (.assertion(a), .anchor)
            }
        default:
            i += 1
            return (.scalar(c, caseInsensitive: flags.caseInsensitive), .atom)
        }
    }

    /// A group at `i` (`(`), or nil for flags alone (`(?i)`), which change `flags` instead.
    private mutating func parseGroup(_ flags: inout Flags) throws(RegexSyntaxError) -> RegexNode? {
        let open = i
        if depth >= RegexBounds.maxGroupDepth {
            throw error(open, "groups are nested more than \(RegexBounds.maxGroupDepth) deep")
        }
        i += 1
        var inner = flags
        if peek() == "*" {
            throw error(open, "(*…) verbs and assertions are not supported by matches")
        }
        if peek() == "?" {
            i += 1
            guard let k = peek() else { throw error(open, "this group is not closed: missing )") }
            switch k {
            case ":":
                i += 1
            case "<" where peek(1) == "=" || peek(1) == "!":
                throw error(open, "lookbehind (?<=…) (?<!…) is not supported by matches")
            case "=", "!":
                throw error(open, "lookahead (?=…) (?!…) is not supported by matches")
            case ">":
                throw error(open, "atomic groups (?>…) are not supported by matches")
            case "(":
                throw error(open, "conditionals (?(…)…) are not supported by matches")
            case "#":
                throw error(open, "comments (?#…) are not supported by matches")
            case "|":
                throw error(open, "branch reset groups (?|…) are not supported by matches")
            case "<", "'":
                i += 1
                try parseGroupName(close: k == "<" ? ">" : "'", open: open)
            case "P" where peek(1) == "<":
                i += 2
                try parseGroupName(close: ">", open: open)
            case "P" where peek(1) == "=":
                throw error(open, "backreferences are not supported by matches")
            case "P", "R", "&", "+", "0"..."9":
                throw error(open, "recursion and subroutine calls are not supported by matches")
            default:
                let isolated = try parseFlags(&inner, open: open)
                if isolated {
                    flags = inner
                    return nil
                }
            }
        }
        depth += 1
        let body = try parseAlternation(&inner)
        depth -= 1
        guard peek() == ")" else { throw error(open, "this group is not closed: missing )") }
        i += 1
        return body
    }

    /// A capture's name (captures are groups like others here), up to `close`.
    private mutating func parseGroupName(close: Unicode.Scalar, open: Int) throws(RegexSyntaxError) {
        let start = i
        while let c = peek(), c != close {
            let letter = c.isASCII && ((c.value | 0x20) &- 0x61 < 26 || c == "_")
            let digit = c.isASCII && c.value &- 0x30 < 10
            guard letter || (digit && i > start) else {
                throw error(i, "a group name holds letters, digits and _, and does not start with a digit")
            }
            i += 1
        }
        guard peek() == close, i > start else {
            throw error(open, i == start ? "the group has an empty name" : "the group name is not closed: missing \(Character(close))")
        }
        i += 1
    }

    /// `i`, `s`, `m`, then optionally `-` and more, then `)` (returns true) or `:` (false).
    private mutating func parseFlags(_ flags: inout Flags, open: Int) throws(RegexSyntaxError) -> Bool {
        var on = true
        while let c = peek() {
            i += 1
            switch c {
            case "i": flags.caseInsensitive = on
            case "s": flags.dotAll = on
            case "m": flags.multiline = on
            case "-" where on: on = false
            case ")": return true
            case ":": return false
            default:
                throw error(i - 1, "\(ScalarProperties.describe(c)) is not a flag matches supports (i, s and m are, as (?i) or (?i:…))")
            }
        }
        throw error(open, "this group is not closed: missing )")
    }

    // MARK: Classes

    private mutating func parseClass(open: Int, _ flags: Flags) throws(RegexSyntaxError) -> ScalarClass {
        var set = ScalarClass(items: [], negated: false, caseInsensitive: flags.caseInsensitive)
        if peek() == "^" {
            set.negated = true
            i += 1
        }
        var first = true
        while true {
            guard let c = peek() else { throw error(open, "this class is not closed: missing ]") }
            let start = i
            if c == "]" && !first {
                i += 1
                return set
            }
            first = false
            if c == "[" {
                throw error(start, "\"[\" inside a class is not supported (nested classes, POSIX classes like [:alpha:]); write \\[")
            }
            if let d = peek(1), d == c, c == "&" || c == "~" || c == "-" {
                throw error(start, "class operations (&&, --, ~~) are not supported by matches; escape the character")
            }
            let member = try parseClassMember()
            guard peek() == "-", let after = peek(1), after != "]", after != "-" else {
                switch member {
                case .scalar(let x): set.items.append(.range(x.value, x.value))
                case .item(let item): set.items.append(item)
                case .assertion: break
                }
                continue
            }
            guard case .scalar(let low) = member else {
                throw error(start, "a range cannot start with a class such as \\d; escape the - (\\-)")
            }
            i += 1
            let highStart = i
            guard case .scalar(let high) = try parseClassMember() else {
                throw error(highStart, "a range cannot end with a class such as \\d; escape the - (\\-)")
            }
            guard low.value <= high.value else {
                throw error(start, "the range \(ScalarProperties.describe(low))-\(ScalarProperties.describe(high)) is reversed")
            }
            set.items.append(.range(low.value, high.value))
        }
    }

    private mutating func parseClassMember() throws(RegexSyntaxError) -> Escape {
        if s[i] == "\\" { return try parseEscape(inClass: true) }
        i += 1
        return .scalar(s[i - 1])
    }
}
