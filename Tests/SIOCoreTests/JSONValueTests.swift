import SIOCore
import Testing

struct JSONValueTests {
    @Test(arguments: [
        ("null", JSONValue.null),
        ("true", .bool(true)),
        ("false", .bool(false)),
        ("20", .number(20)),
        ("-3.5", .number(-3.5)),
        ("1e3", .number(1000)),
        (#""Ola mundo!""#, .string("Ola mundo!")),
        (#"{"retorno":true}"#, ["retorno": true]),
        (#"[1,"a",[],{}]"#, [1, "a", .array([]), .object([:])]),
        (#""\u00e9\ud83d\ude00\n""#, .string("é😀\n")),
    ] as [(String, JSONValue)])
    func parsesValidJSON(text: String, expected: JSONValue) throws {
        #expect(try JSONValue(parsing: text) == expected)
    }

    @Test(arguments: [
        "", "{", "[1,", "tru", "01", "1.", "-", #""abc"#, #"{"a" 1}"#, "[1 2]", #""\x""#, #""\ud800""#,
        "1 2", "\"a\u{1}\"", "{1:2}", String(repeating: "[", count: 10_000),
    ])
    func rejectsInvalidJSONWithAnError(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test(arguments: ["1e999", "-1e999", "[1,1E400]", #"{"a":-2e308}"#, String(repeating: "9", count: 400)])
    func rejectsNumbersBeyondDoubleRange(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test func readsTheLargestAndSmallestDoubles() throws {
        #expect(try JSONValue(parsing: "1.7976931348623157e308") == .number(.greatestFiniteMagnitude))
        #expect(try JSONValue(parsing: "-1.7976931348623157e308") == .number(-.greatestFiniteMagnitude))
        // Underflow is not an error: it reads as zero (or a subnormal).
        #expect(try JSONValue(parsing: "1e-999") == .number(0))
    }

    @Test func writesCompactJSONThatReadsBack() throws {
        let value: JSONValue = ["a": [1, 2.5, "x\"y\\z\n\u{1}"], "b": .null, "c": false, "d": -7, "é": "ü"]
        let text = value.jsonString()
        #expect(text == #"{"a":[1,2.5,"x\"y\\z\n\u0001"],"b":null,"c":false,"d":-7,"é":"ü"}"#)
        #expect(try JSONValue(parsing: text) == value)
    }

    @Test func keepsKeyOrderButComparesObjectsWithoutIt() throws {
        let a = try JSONValue(parsing: #"{"z":1,"a":2}"#)
        let b = try JSONValue(parsing: #"{"a":2,"z":1}"#)
        #expect(a.jsonString() == #"{"z":1,"a":2}"#)
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
    }

    @Test func writesBytesAsBinaryMarkersAndReadsThemBack() throws {
        let value: JSONValue = ["blob": .binary([0, 1, 2, 250, 255])]
        let text = value.jsonString()
        #expect(text == #"{"blob":{"$binary":"AAEC+v8="}}"#)
        #expect(try JSONValue(parsing: text).decodingBinaryMarkers() == value)
        #expect(try JSONValue(parsing: #"{"$binary":"@@"}"#).decodingBinaryMarkers() == nil)
    }

    @Test func subscriptsReachMembersAndElements() {
        let value: JSONValue = ["list": [1, 2, 3]]
        #expect(value["list"]?[0] == 1)
        #expect(value["list"]?[-1] == 3)
        #expect(value["list"]?[3] == Optional<JSONValue>.none)  // `nil` alone would mean JSONValue.null
        #expect(value["missing"] == Optional<JSONValue>.none)
    }

    @Test(arguments: [[], [0], [0, 1], [0, 1, 2], Array(0...255)] as [[UInt8]])
    func base64RoundTrips(bytes: [UInt8]) {
        #expect(Base64.decode(Base64.encode(bytes)) == bytes)
    }
}
