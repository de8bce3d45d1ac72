import SIOCore
import Testing

/// The byte-wise search that replaces `_StringProcessing`'s `contains(_:)` / `firstRange(of:)`.
struct StringSearchTests {
    @Test func findsTheFirstOccurrence() throws {
        let text = "http://a/b://c"
        let r = try #require(text.firstRange(ofText: "://"))
        #expect(text[..<r.lowerBound] == "http")
        #expect(text[r.upperBound...] == "a/b://c")
        #expect(text.dropFirst(5).firstRange(ofText: "://").map { text[$0.upperBound...] } == "c")
        #expect(text.firstRange(ofText: "")?.isEmpty == true)
        #expect(text.firstRange(ofText: ":/x") == nil)
        #expect("ab".firstRange(ofText: "abc") == nil)
        #expect("aab".firstRange(ofText: "ab").map { "aab"[$0] } == "ab")
        // A partial match (aa-a) does not skip the occurrence that overlaps it.
        #expect("aaab".firstRange(ofText: "aab").map { "aaab"[$0] } == "aab")
    }

    @Test func comparesScalarsNotCharacters() {
        #expect("unsupported protocol version 5".contains(text: "unsupported protocol version"))
        #expect(!"unsupported".contains(text: "unsupported version"))
        #expect("caf\u{65}\u{301}".contains(text: "e"))
        #expect(!"café".contains(text: "e"))
        #expect("x 😀 y".contains(text: "😀 y"))
        #expect("".contains(text: ""))
    }
}
