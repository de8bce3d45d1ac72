import Testing

@testable import SIOCore

/// The checked-text path (`JSONListText`) against the strict parser: the same decisions, the same
/// values, and member lookups that agree with `OrderedDictionary` (last duplicate wins, keys
/// compared as Swift strings).
struct JSONListTextTests {
    /// Lists whose values exercise escapes, big and small numbers, nesting and duplicate keys.
    static let corpus: [String] = [
        #"[]"#, #"[1]"#, #" [ "a" , 2 ] "#,
        #"["batery",{"level":15,"seq":3}]"#,
        #"["e",{"s":"\u00e9\ud83d\ude00\n\"x\"\/\b\f\r\t\\","k":"\u0000"}]"#,
        #"["e",{"big":123456789012345678901234567890,"small":-1.5e-300,"f":0.1,"e":1E+2,"neg":-0,"i":9007199254740993}]"#,
        #"["e",{"a":{"b":{"c":[1,[2,[3,{"d":null}]]]}},"t":true,"f":false}]"#,
        #"["e",{"k":1,"k":2,"x":3,"k":4}]"#,
        #"["e",{"\u006b":1,"k":2}, {"k":3}]"#,
        #"["e",{"é":1,"e\u0301":2}]"#,
        "[\"e\",{\"caf\u{e9}\":\"\u{1F600}\",\"\u{5927}\":[\"\u{10FFFF}\"]}]",
        #"["e",{"\u212A":1,"Ka":2},{"K":1,"\u212A":2,"Kb":3}]"#, "[\"e\",{\"\u{212A}\":1}]",
        #"[5,"x",[],{}]"#, #"[-2.5]"#, "[\"tab\",\t{\r\n\"a\" :\n1 }\n]\n",
    ]

    static func list(_ text: String) throws(JSONParseError) -> JSONListText? {
        try JSONListText.checking(Array(text.utf8), from: 0)
    }

    @Test func valuesAreWhatTheParserGives() throws {
        for text in Self.corpus {
            let expected = try JSONValue(parsing: text)
            let checked = try #require(try Self.list(text), "\(text)")
            #expect(JSONValue.array(checked.values()) == expected, "\(text)")
            // Byte for byte when written back, key order and all.
            #expect(JSONValue.array(checked.values()).jsonString() == expected.jsonString(), "\(text)")
            let elements = try #require(expected.arrayValue)
            #expect(checked.count == elements.count)
            for (i, v) in elements.enumerated() {
                #expect(checked.element(i) == v, "\(text) [\(i)]")
                #expect(checked.element(i)?.jsonString() == v.jsonString(), "\(text) [\(i)]")
                #expect(checked.isObject(i) == (v.objectValue != nil))
                if case .object(let o) = v {
                    for key in o.keys + ["missing", "k", "K", "Ka", "Kb", "Kc", "é", "e\u{301}", ""] {
                        #expect(checked.member(key, ofElement: i) == o[key], "\(text) [\(i)].\(key)")
                    }
                } else {
                    #expect(checked.member("k", ofElement: i) == nil)
                }
            }
            #expect(checked.element(elements.count) == nil)
            #expect(checked.element(-1) == nil)
        }
    }

    @Test func duplicateAndEquivalentKeysResolveAsTheParserDoes() throws {
        let dup = try #require(try Self.list(#"["e",{"k":1,"k":2,"x":3,"k":4}]"#))
        #expect(dup.member("k", ofElement: 1) == 4)
        let escaped = try #require(try Self.list(#"["e",{"\u006b":1,"k":2},{"k":3}]"#))
        #expect(escaped.member("k", ofElement: 1) == 2)
        #expect(escaped.member("k", ofElement: 2) == 3)
        // Canonically equivalent keys are one key for Swift strings: the later one wins.
        let composed = try #require(try Self.list(#"["e",{"é":1,"e\u0301":2}]"#))
        #expect(composed.member("é", ofElement: 1) == 2)
        #expect(composed.member("e\u{301}", ofElement: 1) == 2)
    }

    @Test func notAListIsNilAndInvalidTextThrowsTheParsersError() throws {
        #expect(try Self.list(#"{"a":1}"#) == nil)
        #expect(try Self.list("12") == nil)
        for bad in [#"[1,]"#, #"["\ud800"]"#, "[\"\u{1}\"]", #"[1e999]"#, "[1] x", #"["a"#, "[\"\\x\"]"] {
            var parserError: JSONParseError?
            do { _ = try JSONValue(parsing: bad) } catch { parserError = error }
            var listError: JSONParseError?
            do { _ = try Self.list(bad) } catch { listError = error }
            #expect(parserError != nil && listError == parserError, "\(bad)")
        }
        // Invalid UTF-8 and nesting beyond the limit.
        for bytes in [[0x5B, 0x22, 0xC3, 0x22, 0x5D], [0x5B, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x5D], [0x5B, 0x22, 0xC0, 0xAF, 0x22, 0x5D]] as [[UInt8]] {
            #expect(throws: JSONParseError.self) { try JSONListText.checking(bytes, from: 0) }
            #expect(throws: JSONParseError.self) { try JSONValue(parsing: bytes) }
        }
        let deep = Array(String(repeating: "[", count: JSONParser.maxDepth + 1).utf8) + Array(String(repeating: "]", count: JSONParser.maxDepth + 1).utf8)
        #expect(throws: JSONParseError.self) { try JSONListText.checking(deep, from: 0) }
        let limit = Array(String(repeating: "[", count: JSONParser.maxDepth).utf8) + Array(String(repeating: "]", count: JSONParser.maxDepth).utf8)
        #expect(try JSONListText.checking(limit, from: 0) != nil)
        #expect((try? JSONValue(parsing: limit)) != nil)
    }

    @Test func argumentsFromAnOffset() throws {
        let text = Array(#"42["batery",{"level":15},"x"]"#.utf8)
        let checked = try #require(try JSONListText.checking(text, from: 2))
        let args = JSONArguments(checked, from: 1)
        #expect(args.count == 2)
        #expect(args.values == [["level": 15], "x"])
        #expect(args.member("level", of: 0) == 15)
        #expect(args.member("level", of: -2) == 15)
        #expect(args.element(-1) == "x")
        #expect(args.element(2) == nil)
        #expect(args == JSONArguments([["level": 15], "x"]))
    }
}
