import SIOCore
import Testing

/// The nesting limit that keeps hostile input from exhausting the stack: 512 levels parse, 513 do not.
struct JSONDepthTests {
    private func nested(_ depth: Int, object: Bool) -> String {
        object
            ? String(repeating: #"{"a":"#, count: depth - 1) + "{}" + String(repeating: "}", count: depth - 1)
            : String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
    }

    @Test(arguments: [false, true])
    func acceptsTheLimitAndRefusesOneMore(object: Bool) throws {
        let ok = try JSONValue(parsing: nested(512, object: object))
        var depth = 0
        var value: JSONValue? = ok
        while let v = value, v.arrayValue != nil || v.objectValue != nil {
            depth += 1
            value = v.arrayValue?.first ?? v.objectValue?["a"]
        }
        #expect(depth == 512)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: nested(513, object: object)) }
        do {
            _ = try JSONValue(parsing: nested(513, object: object))
        } catch {
            #expect(error.message.contains("nested too deeply"))
        }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: nested(100_000, object: object)) }
    }
}
