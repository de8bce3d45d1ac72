import SIOCore
import SIOYAML
import Testing

/// The YAML layer over libyaml: nodes with their marks, scalar styles, tags, anchors and aliases,
/// the one scalar rule, and every limit as a positioned error.
struct YAMLReaderTests {
    func read(_ text: String, limits: YAMLLimits = YAMLLimits()) throws -> YAMLNode {
        try #require(try YAMLReader.read(text, limits: limits))
    }

    func error(_ text: String, limits: YAMLLimits = YAMLLimits()) -> YAMLError? {
        do {
            _ = try YAMLReader.read(text, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    @Test func nodesCarryTheirLineColumnStyleTagAndAnchor() throws {
        let root = try read("a: plain\nb: 'single'\n\"c\": \"double\"\nd: |\n  literal\ne: >\n  folded\nf: !!str 12\ng: &x [1, 2]\nh: *x\n")
        let m = try #require(root.mapping)
        #expect(m.count == 8)
        func value(_ i: Int) -> YAMLNode { m[i].value }
        #expect(m[0].key.mark == YAMLMark(line: 1, column: 1))
        #expect(value(0).scalar?.style == .plain)
        #expect(value(0).mark == YAMLMark(line: 1, column: 4))
        #expect(value(1).scalar?.style == .singleQuoted)
        #expect(m[2].key.scalar?.style == .doubleQuoted)
        #expect(value(3).scalar?.style == .literal)
        #expect(value(3).scalar?.string == "literal\n")
        #expect(value(4).scalar?.style == .folded)
        #expect(value(5).scalar?.tag == "tag:yaml.org,2002:str")
        #expect(value(5).json == .string("12"))
        #expect(value(6).sequence?.anchor == "x")
        // An alias reads as the node its anchor names, with that node's position.
        #expect(value(7).sequence?.mark == YAMLMark(line: 9, column: 4))
        #expect(value(7).json == .array([.number(1), .number(2)]))
    }

    @Test func columnsCountCharactersNotBytes() throws {
        let root = try read("é: ü\n")
        #expect(root.mapping?[0].value.mark == YAMLMark(line: 1, column: 4))
    }

    /// One rule for rule files and the configuration: YAML 1.2's core schema.
    @Test(arguments: [
        ("true", JSONValue.bool(true)), ("False", .bool(false)), ("TRUE", .bool(true)),
        ("yes", .string("yes")), ("no", .string("no")), ("on", .string("on")), ("off", .string("off")),
        ("~", .null), ("null", .null), ("", .null), ("12", .number(12)), ("-1.5", .number(-1.5)),
        ("0x1f", .number(31)), ("'true'", .string("true")), ("\"12\"", .string("12")),
        ("0xffffffffffffffffffff", .string("0xffffffffffffffffffff")), ("1e999", .string("1e999")),
    ])
    func scalarsReadByTheCoreSchema(text: String, expected: JSONValue) throws {
        let root = try read("k: \(text)\n")
        #expect(root.mapping?[0].value.json == expected)
    }

    @Test func emptyOrCommentOnlyTextHasNoDocument() throws {
        #expect(try YAMLReader.read("") == nil)
        #expect(try YAMLReader.read("# nothing\n") == nil)
    }

    @Test func syntaxErrorIsAtItsPositionWithItsContext() {
        let e = error("a:\n  b: [1\n")
        #expect(e == YAMLError(line: 3, column: 1, message: "did not find expected ',' or ']' (while parsing a flow sequence that starts at line 2, column 6)"))
    }

    @Test func duplicateKeysAreRejectedAtTheFirst() {
        #expect(error("x: 1\na: 1\nb: 2\na: 3\n") == YAMLError(line: 2, column: 1, message: "duplicate key \"a\" in this mapping"))
        #expect(error("b: 1\na: 1\nb: 2\na: 3\n")?.message == "duplicate keys \"a\", \"b\" in this mapping")
    }

    @Test func undefinedAliasAndSecondDocumentAreErrors() {
        #expect(error("a: *nope\n") == YAMLError(line: 1, column: 4, message: "found undefined alias"))
        #expect(error("a: 1\n---\nb: 2\n")?.line == 2)
    }

    @Test func controlCharacterIsAReaderErrorAtItsPosition() {
        let e = error("a: 1\nb: x\u{1}y\n")
        #expect(e?.line == 2)
        #expect(e?.column == 5)
        #expect(e?.message == "control characters are not allowed")
    }

    /// "Billion laughs": nine levels of ten aliases would expand to a billion nodes.
    @Test func aliasExpansionIsBoundedAtTheAliasThatCrossesTheLimit() {
        var text = "a0: &a0 [lol]\n"
        for i in 1...9 {
            let refs = Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ")
            text += "a\(i): &a\(i) [\(refs)]\n"
        }
        let e = error(text)
        #expect(e?.message == "aliases expand to more than 10000 nodes in this document")
        // Levels 1 to 3 add 2,340 nodes; the fourth alias of level 3 (2,111 nodes each) on line 5 crosses 10,000.
        #expect(e?.line == 5, "\(String(describing: e))")
        // Within the limit, aliases are fine.
        #expect(error("a: &x [1, 2]\nb: *x\nc: *x\n") == nil)
    }

    @Test func nestingDepthIsBounded() {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(error(deep) == YAMLError(line: 1, column: 65, message: "lists and mappings nest deeper than 64 levels"))
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(error(ok) == nil)
        // Block mappings count too.
        var block = ""
        for i in 0..<6 { block += String(repeating: "  ", count: i) + "k\(i):\n" }
        #expect(error(block + String(repeating: "  ", count: 6) + "v\n", limits: YAMLLimits(maxDepth: 5))?.line == 6)
    }

    @Test func documentSizeIsBoundedAtTheByteWhereItOverflows() {
        let text = "a: 1\nb: " + String(repeating: "x", count: 100) + "\n"
        let e = error(text, limits: YAMLLimits(maxDocumentBytes: 20))
        #expect(e == YAMLError(line: 2, column: 16, message: "the document is longer than 20 bytes"))
        #expect(error(text, limits: YAMLLimits(maxDocumentBytes: text.utf8.count)) == nil)
    }
}
