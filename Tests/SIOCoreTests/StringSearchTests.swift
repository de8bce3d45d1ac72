import SIOCore
import Testing

/// `containsText` and `rangeOfText`: substring search by Unicode scalars, without the standard
/// library's `_StringProcessing` (which would link the regex engine into the binary).
struct StringSearchTests {
    @Test func findsWhatIsThere() {
        #expect("${HOME}/x".containsText("${"))
        #expect("abc".containsText("abc"))
        #expect("abc".containsText(""))
        #expect("".containsText(""))
        #expect(!"".containsText("a"))
        #expect(!"ab".containsText("abc"))
        #expect(!"abd".containsText("abc"))
        #expect("a€b€c".containsText("€c"))
    }

    @Test func partialMatchesOverlap() {
        // A search that skips past a partial match misses these (short and long needles: the
        // two code paths).
        #expect("aaab".containsText("aab"))
        let a17 = String(repeating: "a", count: 17)
        #expect((String(repeating: "a", count: 30) + "b").containsText(a17 + "b"))
        #expect((a17 + "c" + a17 + "b").containsText(a17 + "b"))
        let text = a17 + "c" + a17 + "b"
        #expect(text.rangeOfText(a17 + "b").map { text.utf8.distance(from: text.startIndex, to: $0.lowerBound) } == 18)
        #expect(!(a17 + "c" + a17).containsText(a17 + "b"))
        #expect(("abababac" + String(repeating: "ab", count: 10) + "abac").containsText(String(repeating: "ab", count: 9) + "abac"))
    }

    @Test func rangesAreInTheTextsOwnIndices() throws {
        let text = "proxy http://user@host:8080"
        let r = try #require(text.rangeOfText("://"))
        #expect(text[..<r.lowerBound] == "proxy http")
        #expect(text[r.upperBound...] == "user@host:8080")
        // A substring's indices are its base string's.
        let tail = text.dropFirst(6)
        let s = try #require(tail.rangeOfText("@"))
        #expect(tail[s.upperBound...] == "host:8080")
        #expect(text[s.upperBound...] == "host:8080")
        #expect("ab€cd€".rangeOfText("€").map { "ab€cd€"[..<$0.lowerBound] } == "ab")
        #expect("abc".rangeOfText("x") == nil)
    }

    @Test func comparesScalarsAsWritten() {
        // e + combining acute: one Character, two scalars.
        #expect("caf\u{65}\u{301}".containsText("e"))
        #expect(!"caf\u{E9}".containsText("e\u{301}"))
        #expect("a\r\nb".containsText("\n"))
    }

    @Test func staysLinearOnHostileInput() {
        // A needle that almost matches everywhere: quadratic for a naive search (10^10 steps).
        let hay = String(repeating: "a", count: 100_000)
        let needle = String(repeating: "a", count: 50_000) + "b"
        #expect(!hay.containsText(needle))
        #expect(hay.containsText(String(repeating: "a", count: 50_000)))
    }
}
