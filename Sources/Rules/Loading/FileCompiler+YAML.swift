import SIOCore
import SIOYAML

extension FileCompiler {
    // MARK: YAML helpers

    struct Entry {
        var key: String
        var keyNode: YAMLNode
        var value: YAMLNode
    }

    func isNull(_ n: YAMLNode) -> Bool {
        n.isNull
    }

    /// The entries of a mapping, reporting unknown keys (with "did you mean") and non-text keys.
    mutating func mapping(_ n: YAMLNode, _ what: String, known: [String], hint: String = "") -> [String: Entry]? {
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

    func describe(_ n: YAMLNode) -> String {
        switch n {
        case .scalar(let s):
            let v = json(n)
            if s.style == .plain, case .string = v { return "the text \"\(s.string)\"" }
            return "\(StaticType(of: v).name == "any value" ? "a value" : "a " + StaticType(of: v).name) \(v.jsonString())"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    /// A YAML value as JSON (`YAMLScalar.value` says how scalars read: YAML 1.2's core schema).
    func json(_ n: YAMLNode) -> JSONValue {
        n.json
    }

    /// Scalar text, or an error for lists and mappings.
    mutating func text(_ n: YAMLNode, _ what: String) -> String? {
        guard case .scalar(let s) = n else {
            error(n, "\(what) must be text, not \(describe(n))")
            return nil
        }
        return s.string
    }

    mutating func duration(_ n: YAMLNode, _ what: String) -> Double? {
        guard case .scalar(let s) = n else {
            error(n, "\(what) must be a duration like 500ms, 10s, 5m, 1h, 1d, not \(describe(n))")
            return nil
        }
        if case .number(let v) = s.value {
            error(n, "\(what) needs a unit: \(JSONValue.number(v))s, \(JSONValue.number(v))m… (500ms, 10s, 5m, 1h, 1d)")
            return nil
        }
        guard let seconds = parseDurationSeconds(s.string) else {
            error(n, "\(what): \"\(s.string)\" is not a duration (500ms, 10s, 5m, 1h, 1d)")
            return nil
        }
        guard seconds <= longestDuration else {
            error(n, tooLong(what, s.string))
            return nil
        }
        return seconds
    }

    func tooLong(_ what: String, _ text: String) -> String {
        "\(what): \"\(text)\" is longer than the longest duration, \(formatSeconds(longestDuration)) (100 years)"
    }

    /// The file position of the scalar character at `offset` in the node's text (for errors inside
    /// expressions and templates), following quotes, escapes and folded lines.
    func contentPosition(_ n: YAMLNode, offset: Int) -> SourcePosition {
        guard case .scalar(let s) = n else { return position(n) }
        let mark = s.mark
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
}
