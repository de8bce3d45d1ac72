/// Escapes: `\n`, `\x41`, `\u{1F600}`, `\d`, `\p{L}`, `\b`, `\.`, and the ones `matches` refuses.
extension RegexParser {
    /// The escape at `i` (a backslash). In a class, `\b` is a backspace and anchors are errors.
    mutating func parseEscape(inClass: Bool) throws(RegexSyntaxError) -> Escape {
        let start = i
        i += 1
        guard let c = peek() else {
            throw error(start, "the pattern ends with a lone \\ (write \\\\ for a backslash)")
        }
        i += 1
        switch c {
        case "t": return .scalar("\t")
        case "n": return .scalar("\n")
        case "r": return .scalar("\r")
        case "f": return .scalar("\u{0C}")
        case "v": return .scalar("\u{0B}")
        case "e": return .scalar("\u{1B}")
        case "a": return .scalar("\u{07}")
        case "0":
            if let d = peek(), d.isASCII, d.value &- 0x30 < 8 {
                throw error(start, "octal escapes are not supported by matches; write \\xHH or \\u{H…}")
            }
            return .scalar("\u{0}")
        case "1"..."9", "k", "g":
            throw error(start, "backreferences are not supported by matches (it runs in time linear in the text)")
        case "x":
            return .scalar(try parseHexScalar(start: start, digits: 2))
        case "u":
            return .scalar(try parseHexScalar(start: start, digits: 4))
        case "d", "D": return .item(.digit(negated: c == "D"))
        case "w", "W": return .item(.word(negated: c == "W"))
        case "s", "S": return .item(.space(negated: c == "S"))
        case "p", "P": return .item(try parseProperty(start: start, negated: c == "P"))
        case "b" where inClass: return .scalar("\u{08}")
        case "b", "B", "A", "z", "Z":
            if inClass { throw error(start, "the anchor \\\(Character(c)) cannot be in a class") }
            switch c {
            case "b": return .assertion(.wordBoundary)
            case "B": return .assertion(.notWordBoundary)
            case "A": return .assertion(.textStart)
            case "z": return .assertion(.textEnd)
            default: return .assertion(.textEndBeforeFinalNewline)
            }
        case "Q", "E":
            throw error(start, "\\Q…\\E quoting is not supported by matches; escape each character")
        default:
            if c.isASCII && (c.value | 0x20) &- 0x61 < 26 {
                throw error(start, "\\\(Character(c)) is not an escape matches supports")
            }
            // Any other escaped character stands for itself: \. \* \\ \/ \- …
            return .scalar(c)
        }
    }

    /// `\xHH`, `\uHHHH` (exactly `digits` hex digits) or either with braces, `\x{H…}` `\u{H…}`.
    private mutating func parseHexScalar(start: Int, digits: Int) throws(RegexSyntaxError) -> Unicode.Scalar {
        let braced = peek() == "{"
        if braced { i += 1 }
        var value: UInt32 = 0
        var count = 0
        while let h = peek(), let v = h.hexDigitValue, braced ? count < 8 : count < digits {
            value = value << 4 | v
            count += 1
            i += 1
        }
        let form = digits == 2 ? "\\xHH" : "\\uHHHH"
        let name = digits == 2 ? "x" : "u"
        if braced {
            guard count > 0, peek() == "}" else {
                throw error(start, "\\\(name){…} needs 1 to 8 hex digits and a closing }")
            }
            i += 1
        } else if count < digits {
            throw error(start, "\(form) needs \(digits == 2 ? "two" : "four") hex digits (or braces: \\\(name){…})")
        }
        guard let scalar = Unicode.Scalar(value) else {
            throw error(start, "U+\(String(value, radix: 16, uppercase: true)) is not a Unicode scalar value")
        }
        return scalar
    }

    /// `{Name}` after `\p` / `\P`.
    private mutating func parseProperty(start: Int, negated: Bool) throws(RegexSyntaxError) -> ScalarClass.Item {
        guard peek() == "{" else {
            throw error(start, "\\p needs a property name in braces, such as \\p{L}")
        }
        i += 1
        var name = String.UnicodeScalarView()
        while let c = peek(), c != "}" {
            name.append(c)
            i += 1
        }
        guard peek() == "}" else { throw error(start, "\\p{ is not closed: missing }") }
        i += 1
        var key = String(name)
        if key.hasPrefix("^") {
            key.removeFirst()
            return try property(String(key), start: start, negated: !negated)
        }
        return try property(key, start: start, negated: negated)
    }

    private func property(_ name: String, start: Int, negated: Bool) throws(RegexSyntaxError) -> ScalarClass.Item {
        guard let mask = ScalarProperties.categories(named: name) else {
            throw error(start, "\\p{…} takes a general category (L, Lu, Ll, Lt, Lm, Lo, M, N, Nd, Nl, No, P, S, Z, Zs, C, Cc, …, or its long name such as Letter) or Any")
        }
        return .categories(mask, negated: negated)
    }
}

extension Unicode.Scalar {
    /// 0-15 for an ASCII hex digit.
    fileprivate var hexDigitValue: UInt32? {
        switch value {
        case 0x30...0x39: return value - 0x30
        case 0x41...0x46: return value - 0x41 + 10
        case 0x61...0x66: return value - 0x61 + 10
        default: return nil
        }
    }
}
