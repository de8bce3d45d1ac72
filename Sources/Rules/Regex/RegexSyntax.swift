/// The pattern language of `matches`: its syntax tree, its load-time errors and its bounds.
///
/// Patterns are read and matched as Unicode scalars (not `Character`s): `.` and a class match one
/// scalar. Matching is a search (the pattern may match anywhere in the text) run by
/// ``RegexProgram``, a Thompson automaton simulated breadth-first: time O(text × program), no
/// backtracking. Constructs that need backtracking (backreferences, lookaround, atomic groups,
/// possessive quantifiers, conditionals) are rejected when the rules load.
enum RegexBounds {
    /// Longer patterns (in Unicode scalars) are refused.
    static let maxPatternScalars = 1_000
    /// Compiled programs (counted repetitions copied out) larger than this are refused. Matching
    /// costs up to 2 steps per instruction and scalar: 2,000 instructions on a 4 KiB text is at
    /// most 16 million steps, tens of milliseconds in the worst case (docs/benchmarks.md).
    static let maxInstructions = 2_000
    /// The largest number a counted repetition `{n,m}` may hold.
    static let maxRepetitionCount = 1_000
    /// Groups may nest this deep (the parser and the compiler recurse over the pattern's groups).
    static let maxGroupDepth = 100
}

/// A pattern that cannot be compiled: where (an offset in Unicode scalars into the pattern) and why.
struct RegexSyntaxError: Error, Sendable, Equatable {
    var offset: Int
    var message: String
}

/// A zero-width test between two scalars.
enum RegexAssertion: Sendable, Equatable {
    /// `\A`, and `^` without `(?m)`.
    case textStart
    /// `\z`, and `$` without `(?m)` (as in Swift's `Regex`, `$` does not match before a final newline).
    case textEnd
    /// `\Z`: the end, or before a line break that is the text's last scalar.
    case textEndBeforeFinalNewline
    /// `^` with `(?m)`: the start, or after a line break.
    case lineStart
    /// `$` with `(?m)`: the end, or before a line break.
    case lineEnd
    /// `\b`: between a word scalar (`\w`) and a non-word one, the text's ends counting as non-word.
    case wordBoundary
    /// `\B`.
    case notWordBoundary
}

/// A parsed pattern. Flags are already applied: case-insensitive literals carry their flag, `.`
/// knows whether it matches line breaks, `^`/`$` are line or text anchors.
indirect enum RegexNode: Sendable {
    case empty
    case scalar(Unicode.Scalar, caseInsensitive: Bool)
    /// `.`: any scalar, or any but a line break.
    case any(dotAll: Bool)
    case set(ScalarClass)
    case assertion(RegexAssertion)
    case concatenation([RegexNode])
    case alternation([RegexNode])
    /// `max` nil: unbounded. `offset`: the quantifier's, for the size error.
    case repetition(RegexNode, min: Int, max: Int?, offset: Int)
}

/// What one position of a class (or `\d`, `\p{L}`, …) matches.
struct ScalarClass: Sendable, Equatable {
    enum Item: Sendable, Equatable {
        /// Scalar values `lo...hi`.
        case range(UInt32, UInt32)
        /// `\d` (`true`: `\D`).
        case digit(negated: Bool)
        /// `\w` / `\W`.
        case word(negated: Bool)
        /// `\s` / `\S`.
        case space(negated: Bool)
        /// `\p{…}` / `\P{…}`: a set of general categories (``ScalarProperties/categoryBit(_:)``).
        case categories(UInt32, negated: Bool)
    }

    var items: [Item]
    /// `[^…]`.
    var negated: Bool
    /// `(?i)`: ranges also match a scalar whose lowercase or uppercase form they hold (the class
    /// escapes and properties are not affected, as in Swift's `Regex`).
    var caseInsensitive: Bool

    func contains(_ c: Unicode.Scalar) -> Bool {
        var hit = false
        var lower: Unicode.Scalar?
        var upper: Unicode.Scalar?
        for item in items {
            switch item {
            case .range(let lo, let hi):
                if lo <= c.value && c.value <= hi {
                    hit = true
                } else if caseInsensitive {
                    let l = lower ?? ScalarProperties.lowercase(c)
                    let u = upper ?? ScalarProperties.uppercase(c)
                    lower = l
                    upper = u
                    hit = (lo <= l.value && l.value <= hi) || (lo <= u.value && u.value <= hi)
                }
            case .digit(let negated): hit = ScalarProperties.isDigit(c) != negated
            case .word(let negated): hit = ScalarProperties.isWord(c) != negated
            case .space(let negated): hit = ScalarProperties.isSpace(c) != negated
            case .categories(let mask, let negated): hit = (mask & ScalarProperties.categoryBit(c) != 0) != negated
            }
            if hit { break }
        }
        return hit != negated
    }
}

/// The Unicode meaning of the pattern language's classes, with an ASCII fast path.
enum ScalarProperties {
    /// `\d`: a decimal digit (general category Nd): `0-9` in ASCII.
    static func isDigit(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c.value &- 0x30 < 10 }
        return c.properties.generalCategory == .decimalNumber
    }

    /// `\w`: alphabetic, a decimal digit, or `_`: `[A-Za-z0-9_]` in ASCII.
    static func isWord(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII {
            let v = c.value
            return (v | 0x20) &- 0x61 < 26 || v &- 0x30 < 10 || v == 0x5F
        }
        return c.properties.isAlphabetic || c.properties.generalCategory == .decimalNumber
    }

    /// `\s`: White_Space: tab, line feed, vertical tab, form feed, carriage return and space in ASCII.
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c.value == 0x20 || c.value &- 0x09 < 5 }
        return c.properties.isWhitespace
    }

    /// What `.`, `^`/`$` with `(?m)` and `\Z` take as a line break (as Swift's `Regex` does):
    /// `\n`, `\v`, `\f`, `\r`, U+0085, U+2028, U+2029.
    static func isNewline(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        return v &- 0x0A < 4 || v == 0x85 || v == 0x2028 || v == 0x2029
    }

    /// The scalar's lowercase form when it is one scalar, else the scalar.
    static func lowercase(_ c: Unicode.Scalar) -> Unicode.Scalar {
        if c.isASCII { return c.value &- 0x41 < 26 ? Unicode.Scalar(UInt8(c.value | 0x20)) : c }
        guard c.properties.changesWhenLowercased else { return c }
        let mapped = c.properties.lowercaseMapping.unicodeScalars
        return mapped.count == 1 ? mapped[mapped.startIndex] : c
    }

    /// The scalar's uppercase form when it is one scalar, else the scalar.
    static func uppercase(_ c: Unicode.Scalar) -> Unicode.Scalar {
        if c.isASCII { return c.value &- 0x61 < 26 ? Unicode.Scalar(UInt8(c.value & ~0x20)) : c }
        guard c.properties.changesWhenUppercased else { return c }
        let mapped = c.properties.uppercaseMapping.unicodeScalars
        return mapped.count == 1 ? mapped[mapped.startIndex] : c
    }

    /// One bit per general category, for `\p{…}` masks.
    static func categoryBit(_ c: Unicode.Scalar) -> UInt32 {
        if c.isASCII {
            let v = c.value
            if (v | 0x20) &- 0x61 < 26 { return v < 0x5B ? bit(.uppercaseLetter) : bit(.lowercaseLetter) }
            if v &- 0x30 < 10 { return bit(.decimalNumber) }
        }
        return bit(c.properties.generalCategory)
    }

    static func bit(_ category: Unicode.GeneralCategory) -> UInt32 {
        let index: UInt32
        switch category {
        case .uppercaseLetter: index = 0
        case .lowercaseLetter: index = 1
        case .titlecaseLetter: index = 2
        case .modifierLetter: index = 3
        case .otherLetter: index = 4
        case .nonspacingMark: index = 5
        case .spacingMark: index = 6
        case .enclosingMark: index = 7
        case .decimalNumber: index = 8
        case .letterNumber: index = 9
        case .otherNumber: index = 10
        case .connectorPunctuation: index = 11
        case .dashPunctuation: index = 12
        case .openPunctuation: index = 13
        case .closePunctuation: index = 14
        case .initialPunctuation: index = 15
        case .finalPunctuation: index = 16
        case .otherPunctuation: index = 17
        case .mathSymbol: index = 18
        case .currencySymbol: index = 19
        case .modifierSymbol: index = 20
        case .otherSymbol: index = 21
        case .spaceSeparator: index = 22
        case .lineSeparator: index = 23
        case .paragraphSeparator: index = 24
        case .control: index = 25
        case .format: index = 26
        case .surrogate: index = 27
        case .privateUse: index = 28
        case .unassigned: index = 29
        @unknown default: index = 29
        }
        return 1 << index
    }

    /// The categories `\p{name}` names: one- and two-letter short names and their long names,
    /// compared without case, spaces, `-` or `_` (Unicode's loose matching); `Any`: all.
    static func categories(named name: String) -> UInt32? {
        let key = String(String.UnicodeScalarView(name.unicodeScalars.filter { $0 != " " && $0 != "_" && $0 != "-" })).lowercased()
        func m(_ c: Unicode.GeneralCategory...) -> UInt32 { c.reduce(0) { $0 | bit($1) } }
        switch key {
        case "any": return UInt32.max
        case "l", "letter": return m(.uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter)
        case "lu", "uppercaseletter": return m(.uppercaseLetter)
        case "ll", "lowercaseletter": return m(.lowercaseLetter)
        case "lt", "titlecaseletter": return m(.titlecaseLetter)
        case "lm", "modifierletter": return m(.modifierLetter)
        case "lo", "otherletter": return m(.otherLetter)
        case "m", "mark": return m(.nonspacingMark, .spacingMark, .enclosingMark)
        case "mn", "nonspacingmark": return m(.nonspacingMark)
        case "mc", "spacingmark": return m(.spacingMark)
        case "me", "enclosingmark": return m(.enclosingMark)
        case "n", "number": return m(.decimalNumber, .letterNumber, .otherNumber)
        case "nd", "decimalnumber": return m(.decimalNumber)
        case "nl", "letternumber": return m(.letterNumber)
        case "no", "othernumber": return m(.otherNumber)
        case "p", "punctuation":
            return m(.connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
                     .initialPunctuation, .finalPunctuation, .otherPunctuation)
        case "pc", "connectorpunctuation": return m(.connectorPunctuation)
        case "pd", "dashpunctuation": return m(.dashPunctuation)
        case "ps", "openpunctuation": return m(.openPunctuation)
        case "pe", "closepunctuation": return m(.closePunctuation)
        case "po", "otherpunctuation": return m(.otherPunctuation)
        case "s", "symbol": return m(.mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol)
        case "sm", "mathsymbol": return m(.mathSymbol)
        case "sc", "currencysymbol": return m(.currencySymbol)
        case "sk", "modifiersymbol": return m(.modifierSymbol)
        case "so", "othersymbol": return m(.otherSymbol)
        case "z", "separator": return m(.spaceSeparator, .lineSeparator, .paragraphSeparator)
        case "zs", "spaceseparator": return m(.spaceSeparator)
        case "zl", "lineseparator": return m(.lineSeparator)
        case "zp", "paragraphseparator": return m(.paragraphSeparator)
        case "c", "other": return m(.control, .format, .surrogate, .privateUse, .unassigned)
        case "cc", "control": return m(.control)
        case "cf", "format": return m(.format)
        case "co", "privateuse": return m(.privateUse)
        case "cn", "unassigned": return m(.unassigned)
        default: return nil
        }
    }

    /// A scalar for an error message: printable ASCII as itself, anything else as U+XXXX (the
    /// pattern may hold controls or bidirectional overrides).
    static func describe(_ c: Unicode.Scalar) -> String {
        if c.value >= 0x21 && c.value < 0x7F { return "\"\(Character(c))\"" }
        let hex = String(c.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}
