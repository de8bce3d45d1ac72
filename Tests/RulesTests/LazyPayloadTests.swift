@testable import Rules
import SIOCore
import Testing

/// Events whose arguments are checked JSON text (as the client delivers them) read the same as
/// events whose arguments were decoded up front: every path, condition and function.
struct LazyPayloadTests {
    static let payloads: [String] = [
        #"["status",{"device":"p7","level":15,"tags":["a","b"],"odd key":true,"nested":{"x":[1,2,3]}},"second"]"#,
        #"["status",{"level":25,"level":5,"device":"\u0070\u0037"}]"#,
        #"["status",{"é":1,"e\u0301":2,"k":null}]"#,
        #"["status",7]"#, #"["status","p7"]"#, #"["status"]"#, #"["status",null,{"level":1}]"#,
        #"["status",[{"level":3}],{"x":{"level":"high"}}]"#,
        #"["status",{"level":1e300,"device":"\ud83d\ude00","n":-0.0,"big":123456789012345678901}]"#,
    ]

    static let expressions: [String] = [
        "payload", "payload.level", "payload.level < 20", "payload.level >= 20 and payload.device == \"p7\"",
        "payload.device == \"p7\"", "payload.device != \"p7\"", "payload[\"odd key\"]", "payload.nested.x[0]",
        "payload.nested.x[-1]", "payload.tags", "args", "args[0]", "args[1]", "args[-1]", "args[2]", "args[0].level",
        "args[1].level", "args[-1].level", "args[1].x.level", "len(args)", "exists(payload.missing)",
        "exists(payload.level)", "default(payload.missing, 0) < 20", "payload.k", "payload[\"é\"]", "payload[\"e\\u{301}\"]",
        "json(payload)", "json(args)", "payload < 10", "payload == \"p7\"", "not (payload.level < 20)",
        "payload.level < 20 or payload.device == \"x\"", "string(payload.level)", "payload.n", "payload.big",
    ]

    @Test func textAndDecodedArgumentsEvaluateAlike() throws {
        for text in Self.payloads {
            let bytes = Array(text.utf8)
            let list = try #require(try JSONListText.checking(bytes, from: 0))
            let decoded = try #require(try JSONValue(parsing: text).arrayValue)
            let lazy = RuleEvent(name: "status", arguments: JSONArguments(list, from: 1))
            let eager = RuleEvent(name: "status", args: Array(decoded.dropFirst()))
            #expect(lazy == eager)
            #expect(lazy.jsonValue().jsonString() == eager.jsonValue().jsonString())
            for source in Self.expressions {
                var parser = try ExpressionParser(text: source, scope: ExpressionScope(vars: [:], environment: [:]))
                let root = try parser.parseAll()
                let a = evaluate(root, EvalContext(event: lazy, now: 0))
                let b = evaluate(root, EvalContext(event: eager, now: 0))
                #expect(a == b && a?.jsonString() == b?.jsonString(), "\(source) on \(text): \(String(describing: a)) against \(String(describing: b))")
                let fast = FastCondition(root)
                #expect(fast.truth(lazy, 0) == fast.truth(eager, 0), "\(source) on \(text)")
            }
        }
    }

    /// A key that keeps an event held as text counts the text it keeps alive, not only the
    /// decoded size: whitespace padding is free decoded and not free in memory.
    @Test func keptTextCountsTheBytesItHolds() throws {
        let padded = Array(("[\"e\",1" + String(repeating: " ", count: JSONArguments.textLimit - 10) + "]").utf8)
        let list = try #require(try JSONListText.checking(padded, from: 0))
        let event = RuleEvent(name: "e", arguments: JSONArguments(list, from: 1))
        #expect(event.args == [1])
        #expect(event.arguments.textBytes == padded.count)
        #expect(approximateBytes(event) >= JSONArguments.textLimit - 10)
        #expect(approximateBytes(RuleEvent(name: "e", args: [1])) < 100)
    }

    /// Longer lists are decoded at once, so that rules reading many fields do not each walk a
    /// large text; they read the same.
    @Test func largeListsAreDecodedOnce() throws {
        let big = String(repeating: "x", count: JSONArguments.textLimit)
        let text = Array(#"["e",{"level":5,"pad":"\#(big)"},7]"#.utf8)
        let list = try #require(try JSONListText.checking(text, from: 0))
        let arguments = JSONArguments(list, from: 1)
        #expect(arguments.textBytes == 0)
        #expect(arguments.member("level", of: 0) == 5)
        #expect(arguments.element(1) == 7)
        #expect(arguments.values == Array(try #require(try JSONValue(parsing: text).arrayValue).dropFirst()))
    }
}
