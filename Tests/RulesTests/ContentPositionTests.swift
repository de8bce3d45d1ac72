@testable import Rules
import SIOYAML
import Testing

/// `FileCompiler.contentPosition`: from an offset in a scalar's text (after YAML unquoted,
/// unescaped and folded it) back to the line and column where that character is written.
struct ContentPositionTests {
    /// The position of the character at `offset` of the value of the first key of `yaml`, as "line:column".
    func position(_ yaml: String, _ offset: Int) throws -> String {
        let root = try #require(try YAMLReader.read(yaml))
        let value = try #require(root.mapping?.first?.value)
        let compiler = FileCompiler(source: SourceText(path: "t.yaml", text: yaml), environment: [:])
        let p = compiler.contentPosition(value, offset: offset)
        return "\(p.line):\(p.column)"
    }

    @Test func plainScalar() throws {
        #expect(try position("k: abc def\n", 0) == "1:4")
        #expect(try position("k: abc def\n", 4) == "1:8")
    }

    @Test func plainScalarFoldedOverLines() throws {
        // "ab cd": the space stands for the line break, then "cd" is on line 2 after its indent.
        #expect(try position("k: ab\n  cd\n", 3) == "2:3")
        #expect(try position("k: ab\n  cd\n", 4) == "2:4")
    }

    @Test func singleQuotedWithADoubledQuote() throws {
        // Text: it's x — the "'" at offset 2 is written as '' at columns 7 and 8.
        #expect(try position("k: 'it''s x'\n", 0) == "1:5")
        #expect(try position("k: 'it''s x'\n", 2) == "1:7")
        #expect(try position("k: 'it''s x'\n", 3) == "1:9")
    }

    @Test func doubleQuotedWithEscapes() throws {
        // Text: a é b — \u00e9 takes six columns, \t two.
        #expect(try position("k: \"a\\u00e9b\\tc\"\n", 1) == "1:6")
        #expect(try position("k: \"a\\u00e9b\\tc\"\n", 2) == "1:12")
        #expect(try position("k: \"a\\u00e9b\\tc\"\n", 4) == "1:15")
    }

    @Test func literalBlock() throws {
        let yaml = "k: |\n  line1\n  line2\n"
        #expect(try position(yaml, 0) == "2:3")
        #expect(try position(yaml, 6) == "3:3")
        #expect(try position(yaml, 8) == "3:5")
    }

    @Test func foldedBlockKeepsMoreIndentedText() throws {
        let yaml = "k: >\n  one\n  two\n"
        #expect(try position(yaml, 4) == "3:3")
    }

    @Test func columnsCountCharacters() throws {
        #expect(try position("k: é x\n", 2) == "1:6")
    }

    @Test func pastTheEndIsJustAfterTheLastCharacter() throws {
        #expect(try position("k: abc\n", 3) == "1:7")
        #expect(try position("k: 'abc'\n", 10) == "1:8")
    }
}
