@testable import Rules
import Testing

/// Whether `pattern` (which must compile) matches somewhere in `text`.
private func search(_ pattern: String, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool? {
    do {
        return try RegexProgram(pattern).matches(text)
    } catch {
        Issue.record("\(pattern): \(error.message) at \(error.offset)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The engine of `matches`, feature by feature (issue 16).
struct RegexFeatureTests {
    /// (pattern, text, whether it matches somewhere).
    static let cases: [(String, String, Bool)] = [
        // Literals and search anywhere.
        ("abc", "xxabcxx", true), ("abc", "abxc", false), ("", "", true), ("", "x", true),
        // Escapes of the metacharacters, and control escapes.
        ("\\\\", "\\", true), ("\\.", "a", false), ("\\.", ".", true), ("\\*\\+\\?", "*+?", true),
        ("\\(\\)\\[\\]\\{\\}", "()[]{}", true), ("\\|\\^\\$\\/\\-", "|^$/-", true),
        ("\\t\\n\\r\\f\\v\\0", "\t\n\r\u{0C}\u{0B}\u{0}", true), ("\\e\\a", "\u{1B}\u{07}", true),
        ("\\x41\\x{42}", "AB", true), ("\\u00e9", "é", true), ("\\u{1F600}", "😀", true), ("\\u{41}", "a", false),
        ("a\\ b\\#", "a b#", true), ("]}", "]}", true),
        // Dot: one scalar, not a line break unless (?s).
        ("a.c", "abc", true), ("a.c", "a\nc", false), ("a.c", "a\rc", false), ("a.c", "a\u{2028}c", false),
        ("(?s)a.c", "a\nc", true), ("^.$", "😀", true), ("^.$", "e\u{301}", false), ("^..$", "e\u{301}", true),
        // Classes.
        ("[abc]", "xbx", true), ("[a-c]", "d", false), ("[^a-c]", "d", true), ("[^a-c]", "b", false),
        ("[]a]", "]", true), ("[^]a]", "]", false), ("[a-]", "-", true), ("[-a]", "-", true), ("[\\]]", "]", true),
        ("[\\d]", "5", true), ("[\\w-]", "-", true), ("[a-c-e]", "-", true), ("[a-c-e]", "d", false),
        ("[\\x41-\\x43]", "B", true), ("[\\b]", "\u{08}", true), ("[\\^]", "^", true), ("[.]", "a", false),
        ("[^\\D]", "7", true), ("[^\\s\\d]", " ", false), ("[é-ë]", "ê", true),
        // \d \w \s and their negations: Unicode, ASCII as expected.
        ("\\d", "7", true), ("\\d", "x", false), ("\\D", "7", false), ("\\d", "٣", true), ("\\d", "²", false),
        ("\\w", "_", true), ("\\w", "é", true), ("\\w", "-", false), ("\\W", "-", true),
        ("\\s", " ", true), ("\\s", "\u{0B}", true), ("\\s", "\u{A0}", true), ("\\s", "\u{1F}", false), ("\\S", " ", false),
        // Anchors: ^ $ at the text's ends ($ not before a final newline, as in Swift's Regex).
        ("^a", "ba", false), ("^a", "ab", true), ("a$", "ba", true), ("a$", "a\n", false), ("a$", "ab", false),
        ("a\\Z", "a\n", true), ("a\\Z", "a\r", true), ("a\\Z", "a\n\n", false), ("a\\z", "a\n", false),
        ("\\Aa", "ba", false), ("^$", "", true), ("^$", "\n", false),
        ("(?m)^b", "a\nb", true), ("(?m)a$", "a\nb", true), ("(?m)^b", "a\rb", true), ("(?m)^c", "a\nbc", false),
        ("(?m)\\Ab", "a\nb", false),
        ("\\bcat\\b", "a cat!", true), ("\\bcat\\b", "concat", false), ("\\Bcat", "concat", true), ("\\b", "", false),
        ("\\B", "", true), ("x\\b", "x.", true), ("\\bé", "é", true),
        // Groups and alternation.
        ("^(?:ab)+$", "ababab", true), ("^(?:ab)+$", "ababa", false), ("(?<n>a)b", "ab", true), ("(?'n'a)b", "ab", true),
        ("(?P<n>a)b", "ab", true), ("gr(a|e)y", "grey", true), ("^(a|b)$", "c", false), ("a|", "x", true),
        ("^(|a)$", "", true), ("()", "", true),
        // Quantifiers, greedy and lazy (the same boolean).
        ("^a{3}$", "aaa", true), ("^a{3}$", "aa", false), ("^a{2,}$", "aaaa", true), ("^a{2,}$", "a", false),
        ("^a{1,2}$", "aaa", false), ("^a{,2}$", "", true), ("^a{,2}$", "aaa", false), ("^a*?$", "aaa", true),
        ("^a{1,2}?$", "aa", true), ("^(ab)?c$", "c", true), ("^a+?b", "aab", true), ("^a??b", "b", true),
        ("^a{0}$", "", true), ("^(a*)*$", "aaa", true), ("^(a*)+b$", "aaac", false), ("^(?:a|ab)(?:c|bcd)$", "abcd", true),
        // Flags.
        ("(?i)abc", "xABCx", true), ("(?i:a)b", "Ab", true), ("(?i:a)b", "AB", false), ("a(?i)b", "aB", true),
        ("a(?i)b", "AB", false), ("(?i)b|c", "C", true), ("(?i)[a-c]", "B", true), ("(?i)[^a]", "A", false),
        ("(?i)k", "\u{212A}", true), ("(?i)é", "É", true), ("(?i)\\p{Lu}", "a", false), ("(?i)(?-i)a", "A", false),
        ("(?m)(?-m)^b", "a\nb", false), ("(?ims)^a.b$", "x\nA\nB", true), ("(?s:.)", "\n", true), ("(?s:a).", "a\n", false),
        // Unicode general categories.
        ("\\p{L}", "é", true), ("\\p{Lu}", "a", false), ("\\p{Ll}", "a", true), ("\\p{N}", "²", true),
        ("\\p{Nd}", "²", false), ("\\P{L}", "5", true), ("\\p{Letter}", "a", true), ("[\\p{Lu}\\d]", "5", true),
        ("\\p{Uppercase_Letter}", "Q", true), ("\\p{^L}", "a", false), ("\\p{Any}", "\u{0}", true), ("\\p{Zs}", "\u{3000}", true),
        // docs/rules.md's examples.
        ("^sensor-[0-9]+$", "sensor-12", true), ("^sensor-[0-9]+$", "sensor-", false), ("^p[0-9]+$", "p7", true),
        // Outside text: scalars of any kind.
        ("\u{202E}", "a\u{202E}b", true), ("^\\u{0}+$", "\u{0}\u{0}", true),
    ]

    @Test(arguments: cases)
    func matchesLikeDocumented(pattern: String, text: String, expected: Bool) {
        #expect(search(pattern, text) == expected, "\(pattern) on \(text.debugDescription)")
    }

    /// (pattern, offset of the error, a fragment of its message).
    static let errors: [(String, Int, String)] = [
        ("(a", 0, "not closed"), ("a)", 1, "unmatched"), ("[a", 0, "class is not closed"), ("[", 0, "class is not closed"),
        ("(?=a)", 0, "lookahead"), ("x(?!a)", 1, "lookahead"), ("(?<=a)", 0, "lookbehind"), ("(?<!a)", 0, "lookbehind"),
        ("(a)\\1", 3, "backreferences"), ("\\k<n>", 0, "backreferences"), ("\\g{1}", 0, "backreferences"), ("(?P=n)", 0, "backreferences"),
        ("(?>a)", 0, "atomic"), ("a*+", 2, "possessive"), ("a{2}+", 4, "possessive"), ("(?(1)a)", 0, "conditionals"),
        ("(?R)", 0, "recursion"), ("(*ACCEPT)", 0, "verbs"), ("(?|a)", 0, "branch reset"), ("(?#c)", 0, "comments"),
        ("*a", 0, "nothing to repeat"), ("a|+", 2, "nothing to repeat"), ("(?i)*", 4, "nothing to repeat"),
        ("a**", 2, "cannot follow another"), ("a{2}{3}", 4, "cannot follow another"), ("^*", 1, "anchor cannot be repeated"),
        ("\\b+", 2, "anchor cannot be repeated"),
        ("a{2,1}", 1, "minimum above"), ("a{1001}", 2, "above 1000"), ("a{99999999999999999999999}", 2, "above 1000"),
        ("a{", 1, "counted repetition"), ("a{x}", 1, "counted repetition"), ("a{,}", 1, "counted repetition"),
        ("[z-a]", 1, "reversed"), ("[\\d-z]", 1, "cannot start with a class"), ("[a-\\d]", 3, "cannot end with a class"),
        ("[[:alpha:]]", 1, "inside a class"), ("[a&&b]", 2, "class operations"), ("[a--b]", 2, "class operations"),
        ("[\\A]", 1, "cannot be in a class"),
        ("\\q", 0, "not an escape"), ("ab\\", 2, "lone \\"), ("\\x4", 0, "two hex digits"), ("\\x{}", 0, "1 to 8 hex"),
        ("\\u12", 0, "four hex digits"), ("\\u{110000}", 0, "not a Unicode scalar"), ("\\uD800", 0, "not a Unicode scalar"),
        ("\\01", 0, "octal"), ("\\Q.\\E", 0, "quoting"), ("\\p{Foo}", 0, "general category"), ("\\pL", 0, "in braces"),
        ("\\p{L", 0, "not closed"), ("(?x)a", 2, "not a flag"), ("(?^i)a", 2, "not a flag"), ("(?i", 0, "not closed"),
        ("(?<1a>x)", 3, "group name"), ("(?<>x)", 0, "empty name"),
        ("\\G", 0, "not an escape"), ("\\K", 0, "not an escape"), ("\\R", 0, "not an escape"), ("\\N", 0, "not an escape"),
        ("(?:a{1000}){11}", 11, "more than 2000 instructions"), ("a{1000}a{1000}", 8, "more than 2000 instructions"),
        (String(repeating: "a", count: 1001), 0, "longer than 1000"),
        (String(repeating: "(", count: 101) + String(repeating: ")", count: 101), 100, "nested more than 100"),
    ]

    @Test(arguments: errors)
    func rejectsWithPositionAndReason(pattern: String, offset: Int, fragment: String) {
        do {
            _ = try RegexProgram(pattern)
            Issue.record("\(pattern) compiled")
        } catch {
            #expect(error.offset == offset, "\(pattern): \(error.message)")
            #expect(error.message.contains(fragment), "\(pattern): \(error.message)")
        }
    }

    @Test func boundsAreAtTheirEdges() throws {
        _ = try RegexProgram(String(repeating: "a", count: RegexBounds.maxPatternScalars))
        _ = try RegexProgram(String(repeating: "(", count: 100) + String(repeating: ")", count: 100))
        _ = try RegexProgram("a{1000}")
        _ = try RegexProgram("a{1000}a{998}")
        let large = try RegexProgram("[ab]{0,500}x{900,}")
        #expect(large.instructions.count <= RegexBounds.maxInstructions)
    }

    @Test func errorsDescribeUnprintableScalarsByCodePoint() {
        do {
            _ = try RegexProgram("[\u{202E}-\u{202A}]")
            Issue.record("compiled")
        } catch {
            #expect(error.message.contains("U+202E-U+202A"), "\(error.message)")
        }
    }
}

/// Matching is linear in the text: no pattern makes it backtrack (issue 16).
struct RegexLinearTimeTests {
    /// Steps for `pattern` on `text`, and the bound the engine promises.
    private func steps(_ pattern: String, _ text: String) throws -> (steps: Int, bound: Int, matched: Bool) {
        let program = try RegexProgram(pattern)
        var steps = 0
        let matched = program.matches(text, steps: &steps)
        return (steps, 2 * program.instructions.count * (text.unicodeScalars.count + 1), matched)
    }

    @Test(arguments: [
        ("(a+)+$", String(repeating: "a", count: 4095) + "!"),
        ("^(a+)+$", String(repeating: "a", count: 4095) + "!"),
        ("(x*)*y", String(repeating: "x", count: 4096)),
        ("(a|a)*b", String(repeating: "a", count: 4096)),
        ("^(\\w+\\s?)*$", String(repeating: "word ", count: 819) + "!"),
        ("(?:a*){20}b", String(repeating: "a", count: 4096)),
    ])
    func catastrophicPatternsStayWithinTheBound(pattern: String, text: String) throws {
        let run = try steps(pattern, text)
        #expect(!run.matched)
        #expect(run.steps <= run.bound, "\(pattern): \(run.steps) steps, bound \(run.bound)")
    }

    @Test func stepsGrowInProportionToTheText() throws {
        let short = try steps("(a+)+$", String(repeating: "a", count: 1024) + "!")
        let long = try steps("(a+)+$", String(repeating: "a", count: 4096) + "!")
        // 4 times the text: about 4 times the steps (a backtracking engine doubles per scalar).
        #expect(long.steps <= 4 * short.steps + 64, "\(short.steps) then \(long.steps)")
        #expect(long.steps >= 3 * short.steps)
    }
}
