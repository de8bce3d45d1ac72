import OrderedCollections
import SIOCore

/// One piece of a text template: literal text or an expression between `{{ }}`.
enum TemplatePart: Sendable {
    case text(String)
    case expression(CompiledExpression)
}

/// A value in an action, with its templates compiled. Rendering never fails: an expression with
/// no value renders as `null`, so the gap is visible in what the action sends or writes.
indirect enum ValueTemplate: Sendable {
    case constant(JSONValue)
    /// A string that is exactly one `{{ expr }}`: keeps the value's type (a number stays a number).
    case whole(CompiledExpression)
    /// Text with `{{ }}` inside: always a string.
    case text([TemplatePart])
    case array([ValueTemplate])
    case object([(String, ValueTemplate)])

    func render(_ c: EvalContext) -> JSONValue {
        switch self {
        case .constant(let v): return v
        case .whole(let e): return evaluate(e.root, c) ?? .null
        case .text: return .string(renderText(c))
        case .array(let items): return .array(items.map { $0.render(c) })
        case .object(let pairs):
            var o = OrderedDictionary<String, JSONValue>()
            for (k, v) in pairs { o[k] = v.render(c) }
            return .object(o)
        }
    }

    /// The value as text: strings as they are, other values as JSON.
    func renderText(_ c: EvalContext) -> String {
        switch self {
        case .text(let parts):
            var out = ""
            for part in parts {
                switch part {
                case .text(let s): out += s
                case .expression(let e): out += plainText(evaluate(e.root, c) ?? .null)
                }
            }
            return out
        default:
            return plainText(render(c))
        }
    }

    var isConstant: Bool {
        if case .constant = self { return true }
        return false
    }
}

/// Where each `{{ … }}` sits in a string, before compiling.
struct TemplateSplit {
    enum Piece {
        case text(String)
        /// The expression text and its offset (Unicode scalars) in the whole string.
        case expression(String, Int)
    }

    var pieces: [Piece] = []
    /// True when the string is one `{{ }}` and nothing else (spaces around it aside).
    var isWhole = false

    /// Splits `text`; throws at the offset of an unclosed `{{` or a stray `}}`.
    init(_ text: String) throws(ExpressionError) {
        let s = Array(text.unicodeScalars)
        var i = 0
        var literal = ""
        var expressions = 0
        var onlySpaceOutside = true
        while i < s.count {
            if s[i] == "{", i + 1 < s.count, s[i + 1] == "{" {
                let open = i
                var j = i + 2
                var quote: Unicode.Scalar?
                var close: Int?
                while j < s.count {
                    let c = s[j]
                    if let q = quote {
                        if c == "\\" { j += 2; continue }
                        if c == q { quote = nil }
                    } else if c == "\"" || c == "'" {
                        quote = c
                    } else if c == "}", j + 1 < s.count, s[j + 1] == "}" {
                        close = j
                        break
                    }
                    j += 1
                }
                guard let close else {
                    throw ExpressionError(offset: open, message: "\"{{\" is not closed with \"}}\"")
                }
                if !literal.isEmpty {
                    pieces.append(.text(literal))
                    if !literal.unicodeScalars.allSatisfy({ $0 == " " }) { onlySpaceOutside = false }
                    literal = ""
                }
                var inner = ""
                inner.unicodeScalars.append(contentsOf: s[(open + 2)..<close])
                pieces.append(.expression(inner, open + 2))
                expressions += 1
                i = close + 2
                continue
            }
            if s[i] == "}", i + 1 < s.count, s[i + 1] == "}" {
                throw ExpressionError(offset: i, message: "\"}}\" without an opening \"{{\"")
            }
            literal.unicodeScalars.append(s[i])
            i += 1
        }
        if !literal.isEmpty {
            pieces.append(.text(literal))
            if !literal.unicodeScalars.allSatisfy({ $0 == " " }) { onlySpaceOutside = false }
        }
        isWhole = expressions == 1 && onlySpaceOutside
    }

    var hasExpressions: Bool {
        pieces.contains { if case .expression = $0 { return true } else { return false } }
    }
}
