import SIOCore
import TestSupport
import Testing

@Suite struct OutsideTextTests {
    @Test(arguments: HostileStrings.table)
    func eachHostileStringBecomesOneVisibleLine(text: String, expected: String) {
        let safe = OutsideText.escaped(text)
        #expect(safe == expected)
        #expect(!safe.unicodeScalars.contains(where: OutsideText.isHostile))
        #expect(!safe.utf8.contains(0x0A) && !safe.utf8.contains(0x0D))
        // The bytes entry point agrees on valid UTF-8.
        #expect(OutsideText.escaped(utf8: Array(text.utf8)) == expected)
    }

    @Test func invalidUTF8IsShownByteByByte() {
        #expect(OutsideText.escaped(utf8: [0x61, 0xFF, 0x62]) == #"a\x{ff}b"#)
        // A truncated sequence, an overlong form, a surrogate, a value past U+10FFFF.
        #expect(OutsideText.escaped(utf8: [0xE2, 0x80]) == #"\x{e2}\x{80}"#)
        #expect(OutsideText.escaped(utf8: [0xC0, 0x8A]) == #"\x{c0}\x{8a}"#)
        #expect(OutsideText.escaped(utf8: [0xED, 0xA0, 0x80]) == #"\x{ed}\x{a0}\x{80}"#)
        #expect(OutsideText.escaped(utf8: [0xF4, 0x90, 0x80, 0x80]) == #"\x{f4}\x{90}\x{80}\x{80}"#)
        // An encoded NEL or line separator is valid UTF-8 and escaped as a scalar.
        #expect(OutsideText.escaped(utf8: [0xC2, 0x85, 0xE2, 0x80, 0xA8, 0x0A]) == #"\u{85}\u{2028}\n"#)
        #expect(OutsideText.escaped(utf8: Array("é✓".utf8)) == "é✓")
    }

    @Test func truncationCutsOnAScalar() {
        #expect(OutsideText.truncated("abc", maxBytes: 3) == "abc")
        #expect(OutsideText.truncated("abcdef", maxBytes: 5) == "ab...")
        let cut = OutsideText.truncated(String(repeating: "é", count: 10), maxBytes: 8)
        #expect(cut == "éé...")
        #expect(cut.utf8.count <= 8)
    }

    @Test(arguments: HostileStrings.table)
    func jsonStringsCarryNoHostileScalarAndKeepTheValue(text: String, expected: String) throws {
        var out: [UInt8] = []
        JSONValue.writeString(text, into: &out)
        let written = String(decoding: out, as: UTF8.self)
        #expect(!written.unicodeScalars.contains(where: OutsideText.isHostile))
        #expect(try JSONValue(parsing: out) == .string(text))
    }
}
