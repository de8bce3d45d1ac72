import Foundation
@testable import Rules
import Testing

/// Our `matches` engine against Swift's `Regex` (in the tests only: the agent no longer links it),
/// on random patterns from the syntax both accept and random ASCII texts (issue 16).
/// `SIOAGENT_REGEX_SEED` replays one seed; a mismatch prints the seed, the pattern and the text.
struct RegexDifferentialTests {
    /// SplitMix64: small, seeded, the same on every platform.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    }

    /// Random patterns of the common syntax. `boundaries`: whether `\b`/`\B` may appear.
    struct Patterns {
        var random: Generator
        var boundaries: Bool
        var names = 0

        mutating func pattern() -> String {
            var p = ""
            if random.chance(25) { p += random.pick(["(?i)", "(?s)", "(?m)", "(?im)", "(?is)", "(?ms)"]) }
            return p + alternation(depth: 0)
        }

        mutating func alternation(depth: Int) -> String {
            var branches = [sequence(depth: depth)]
            while random.chance(depth < 2 ? 25 : 10) { branches.append(sequence(depth: depth)) }
            return branches.joined(separator: "|")
        }

        mutating func sequence(depth: Int) -> String {
            (0..<(1 + random.below(4))).map { _ in piece(depth: depth) }.joined()
        }

        mutating func piece(depth: Int) -> String {
            if random.chance(8) {
                var anchors = ["^", "$", "\\A", "\\z", "\\Z"]
                if boundaries { anchors += ["\\b", "\\B"] }
                return random.pick(anchors)
            }
            let a = atom(depth: depth)
            guard random.chance(35) else { return a }
            var q = random.pick(["*", "+", "?", "{2}", "{1,}", "{0,2}", "{1,3}", "{,2}", "{0}", "{3,}"])
            if random.chance(25) { q += "?" }
            return a + q
        }

        mutating func atom(depth: Int) -> String {
            switch random.below(depth < 3 ? 12 : 8) {
            case 0, 1, 2: return random.pick(["a", "b", "c", "A", "B", "1", " ", "_", "-", ",", "=", "x"])
            case 3: return random.pick(["\\.", "\\*", "\\+", "\\?", "\\(", "\\)", "\\[", "\\]", "\\{", "\\}", "\\|", "\\^",
                                        "\\$", "\\/", "\\-", "\\\\", "\\t", "\\n", "\\r", "\\x61", "\\u0062", "\\u{41}", "\\f"])
            case 4: return "."
            case 5: return random.pick(["\\d", "\\w", "\\s", "\\D", "\\W", "\\S", "\\p{L}", "\\p{Lu}", "\\p{Ll}", "\\p{N}", "\\P{Nd}"])
            case 6, 7: return characterClass()
            default:
                let open = random.pick(["(", "(?:", "(?<g\(names)>", "(?i:", "(?s:", "(?m:", "(?-i:"])
                names += 1
                return open + alternation(depth: depth + 1) + ")"
            }
        }

        mutating func characterClass() -> String {
            var c = random.chance(30) ? "[^" : "["
            if random.chance(10) { c += "-" }
            let members = ["a", "b", "A", "1", " ", "_", ".", "*", "$", "a-c", "A-Z", "0-9", "x-z", "\\d", "\\w", "\\s", "\\D",
                           "\\W", "\\S", "\\]", "\\[", "\\-", "\\n", "\\\\", "\\x41-\\x43", "\\p{Lu}", "^"]
            for k in 0..<(1 + random.below(3)) {
                var member = random.pick(members)
                // "^" first would make the class negated (and "[^]" is an error in Swift's Regex).
                while k == 0 && member == "^" { member = random.pick(members) }
                c += member
            }
            if random.chance(10) { c += "-" }
            return c + "]"
        }
    }

    static func text(_ random: inout Generator) -> String {
        let alphabet: [Unicode.Scalar] = ["a", "b", "c", "A", "B", "C", "x", "1", "2", " ", "_", "-", ".", ",", "\n", "\r",
                                          "\t", "*", "(", "]", "\\", "$", "\u{0B}", "\u{0C}", "\u{1F}", "z", "é"]
        var s = String.UnicodeScalarView()
        for _ in 0..<random.below(12) {
            // é only now and then: the texts stay mostly ASCII.
            var c = random.pick(alphabet)
            while c == "é" && !random.chance(20) { c = random.pick(alphabet) }
            s.append(c)
        }
        return String(s)
    }

    /// Runs `patterns` patterns against `texts` texts each; returns the mismatches found.
    static func compare(
        seed: UInt64, patterns count: Int, texts: Int, boundaries: Bool,
        reference: (String) throws -> Regex<AnyRegexOutput>, textFilter: (String, String) -> Bool
    ) -> (compared: Int, mismatches: [String]) {
        var random = Generator(state: seed)
        var patterns = Patterns(random: Generator(state: seed ^ 0x5EED), boundaries: boundaries)
        var compared = 0
        var mismatches: [String] = []
        for _ in 0..<count {
            let pattern = patterns.pattern()
            let ours: RegexProgram
            let theirs: Regex<AnyRegexOutput>
            do {
                theirs = try reference(pattern)
            } catch {
                mismatches.append("seed \(seed): Swift's Regex rejects \(pattern.debugDescription): \(error)")
                continue
            }
            do {
                ours = try RegexProgram(pattern)
            } catch {
                mismatches.append("seed \(seed): we reject \(pattern.debugDescription) at \(error.offset): \(error.message)")
                continue
            }
            for _ in 0..<texts {
                let text = Self.text(&random)
                guard textFilter(pattern, text) else { continue }
                let expected = (try? theirs.firstMatch(in: text)) != nil
                compared += 1
                if ours.matches(text) != expected {
                    mismatches.append("seed \(seed) pattern \(pattern.debugDescription) text \(text.debugDescription): ours \(!expected), Swift's \(expected)")
                }
            }
            if mismatches.count > 20 { break }
        }
        return (compared, mismatches)
    }

    static var seeds: [UInt64] {
        if let s = ProcessInfo.processInfo.environment["SIOAGENT_REGEX_SEED"], let seed = UInt64(s) { return [seed] }
        return [1, 2, 3, 4]
    }

    /// Unicode-scalar semantics and simple word boundaries: what our engine documents.
    @Test func agreesWithSwiftRegexOnScalars() {
        for seed in Self.seeds {
            // Swift's simple word boundaries take digits as non-word scalars although its `\w`
            // matches them; ours follow `\w`. So \b and \B are compared on texts without digits.
            let run = Self.compare(
                seed: seed, patterns: 1_000, texts: 20, boundaries: true,
                reference: { try Regex($0).matchingSemantics(.unicodeScalar).wordBoundaryKind(.simple) },
                textFilter: { pattern, text in
                    !(pattern.contains("\\b") || pattern.contains("\\B")) || !text.unicodeScalars.contains { $0.properties.numericType != nil }
                })
            #expect(run.mismatches.isEmpty, "\(run.mismatches.prefix(20).joined(separator: "\n"))")
            #expect(run.compared >= 15_000)
        }
    }

    /// Swift's defaults (characters, Unicode word boundaries): the same wherever they cannot
    /// differ in ASCII, that is without `\r\n` (one character) and without `\b`/`\B`.
    @Test func agreesWithSwiftRegexDefaultsOnASCII() {
        for seed in Self.seeds {
            let run = Self.compare(seed: seed &+ 100, patterns: 500, texts: 20, boundaries: false,
                                   reference: { try Regex($0) }, textFilter: { _, text in !text.unicodeScalars.contains("é") && !text.contains("\r\n") })
            #expect(run.mismatches.isEmpty, "\(run.mismatches.prefix(20).joined(separator: "\n"))")
            #expect(run.compared >= 5_000)
        }
    }
}
