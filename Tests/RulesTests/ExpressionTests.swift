@testable import Rules
import SIOCore
import Testing

/// Compiles and evaluates `text` against an event; nil when it has no value. Fails the test on a compile error.
func value(_ text: String, _ e: RuleEvent = event("x"), vars: [String: JSONValue] = [:], env: [String: String] = [:],
           now: Double = 0, sourceLocation: SourceLocation = #_sourceLocation) -> JSONValue? {
    do {
        var parser = try ExpressionParser(text: text, scope: ExpressionScope(vars: vars, environment: env))
        let root = try parser.parseAll()
        #expect(parser.errors.isEmpty, "\(parser.errors)", sourceLocation: sourceLocation)
        return evaluate(root, EvalContext(event: e, now: now))
    } catch {
        Issue.record("\(text): \(error.message) at \(error.offset)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The first compile problem of `text` as "OFFSET: MESSAGE".
func compileError(_ text: String, vars: [String: JSONValue] = [:]) -> String? {
    do {
        var parser = try ExpressionParser(text: text, scope: ExpressionScope(vars: vars, environment: [:]))
        _ = try parser.parseAll()
        return parser.errors.first.map { "\($0.offset): \($0.message)" }
    } catch {
        return "\(error.offset): \(error.message)"
    }
}

struct ExpressionTests {
    let device = event("status", ["device": "p7", "level": 15, "tags": ["a", "b"], "odd key": true, "nested": ["x": [1, 2, 3]]], "second")

    @Test func pathsReadFieldsIndexesAndOddKeys() {
        #expect(value("payload.device", device) == "p7")
        #expect(value("payload[\"odd key\"]", device) == true)
        #expect(value("payload.nested.x[0]", device) == 1)
        #expect(value("payload.nested.x[-1]", device) == 3)
        #expect(value("args[1]", device) == "second")
        #expect(value("args[-1]", device) == "second")
        #expect(value("args[2]", device) == nil)
        #expect(value("payload.tags[5]", device) == nil)
        #expect(value("event", device) == "status")
        #expect(value("namespace", event("x", namespace: "/devices")) == "/devices")
        #expect(value("now", now: 12.5) == 12.5)
        #expect(value("payload", event("x")) == .null)
        #expect(value("len(args)", device) == 2)
    }

    @Test func missingFieldsNeverCompareAsZero() {
        #expect(value("payload.missing < 20", device) == nil)
        #expect(value("payload.missing > 20", device) == nil)
        #expect(value("payload.missing == 0", device) == nil)
        #expect(value("payload.missing != 0", device) == nil)
        #expect(value("payload.device.level < 20", device) == nil)
        #expect(value("not (payload.missing < 20)", device) == nil)
        #expect(value("exists(payload.missing)", device) == false)
        #expect(value("exists(payload.level)", device) == true)
        #expect(value("default(payload.missing, 0) < 20", device) == true)
    }

    @Test func noSilentCoercion() {
        #expect(value("payload < 20", event("x", "5")) == nil)
        #expect(value("payload == 5", event("x", "5")) == nil)
        #expect(value("payload == true", event("x", "true")) == nil)
        #expect(value("number(payload) < 20", event("x", "5")) == true)
        #expect(value("number(payload)", event("x", "abc")) == nil)
        #expect(value("string(payload) == \"5\"", event("x", 5)) == true)
        #expect(value("payload + 1", event("x", "1")) == nil)
        #expect(value("payload == null", event("x", .null)) == true)
        #expect(value("payload != null", event("x", 3)) == true)
    }

    @Test func comparisonsAndLogic() {
        #expect(value("payload.level < 20 and payload.device == \"p7\"", device) == true)
        #expect(value("payload.level >= 20 or payload.device != \"p7\"", device) == false)
        #expect(value("not payload.level > 20", device) == true)
        #expect(value("payload.level <= 15 and payload.level >= 15", device) == true)
        #expect(value("\"abc\" < \"abd\"") == true)
        // false and (no value) is false; true and (no value) has no value.
        #expect(value("payload.level > 20 and payload.missing > 1", device) == false)
        #expect(value("payload.level < 20 and payload.missing > 1", device) == nil)
        #expect(value("payload.level < 20 or payload.missing > 1", device) == true)
    }

    @Test func membershipContainsAndRegex() {
        #expect(value("payload.device in [\"p7\", \"p8\"]", device) == true)
        #expect(value("payload.device not in [\"p7\", \"p8\"]", device) == false)
        #expect(value("\"a\" in payload.tags", device) == true)
        #expect(value("payload.tags contains \"b\"", device) == true)
        #expect(value("payload.device contains \"7\"", device) == true)
        #expect(value("payload contains \"device\"", device) == true)
        #expect(value("\"dev\" in payload.device", device) == false)
        #expect(value("payload.device matches \"^p[0-9]+$\"", device) == true)
        #expect(value("payload.device matches \"^q\"", device) == false)
        #expect(value("payload.level matches \"1\"", device) == nil)
        #expect(value("5 in vars.list", vars: ["list": [1, 5]]) == true)
    }

    @Test func arithmetic() {
        #expect(value("payload.level + 5", device) == 20)
        #expect(value("payload.level - 5 * 2", device) == 5)
        #expect(value("(payload.level - 5) * 2", device) == 20)
        #expect(value("payload.level / 2", device) == 7.5)
        #expect(value("payload.level % 4", device) == 3)
        #expect(value("payload.level / 0", device) == nil)
        #expect(value("-payload.level", device) == -15)
        #expect(value("\"a\" + \"b\"") == "ab")
        #expect(value("[1] + [2]") == [1, 2])
    }

    @Test func functions() {
        #expect(value("len(payload.device)", device) == 2)
        #expect(value("len(payload)", device) == 5)
        #expect(value("lower(\"AbC\")") == "abc")
        #expect(value("upper(payload.device)", device) == "P7")
        #expect(value("number(\" 2.5 \")") == 2.5)
        #expect(value("string(true)") == "true")
        #expect(value("string(payload.tags)", device) == "[\"a\",\"b\"]")
        #expect(value("round(2.345, 2)") == 2.35)
        #expect(value("round(2.5)") == 3)
        #expect(value("json(payload.tags)", device) == "[\"a\",\"b\"]")
        #expect(value("default(payload.device, \"?\")", device) == "p7")
        #expect(value("default(payload.none, \"?\")", device) == "?")
    }

    @Test func varsAndEnvResolveAtLoad() {
        #expect(value("payload < vars.low", event("x", 10), vars: ["low": 20]) == true)
        #expect(value("vars[\"low\"]", vars: ["low": 20]) == 20)
        #expect(value("env.SITE", env: ["SITE": "lab"]) == "lab")
        #expect(value("number(env.N) + 1", env: ["N": "41"]) == 42)
    }

    @Test(arguments: [
        ("payload <", "9: expression ends too early: expected a value"),
        ("payload = 1", "8: \"=\" is not an operator; use \"==\" to compare"),
        ("payload < 1 < 2", "12: comparisons do not chain; join them with \"and\""),
        ("(payload < 1", "12: expected \")\" to close the \"(\", found end of expression"),
        ("payload.level > 10s", "16: a duration (10s) is only allowed as the window of count_over, avg_over…; elsewhere write seconds (a number)"),
        ("'abc", "0: unterminated string: missing closing '"),
        ("payload matches 3", "16: \"matches\" needs a quoted regular expression after it (compiled when the rules load)"),
        ("foo(1)", "0: unknown function \"foo\""),
        ("len(1, 2)", "0: len() takes 1 argument, got 2"),
        ("\"a\" == 1", "4: \"==\" between a string and a number never holds: values are not converted (use number() or string())"),
        ("true < 1", "0: \"<\" compares numbers or strings, but this is a bool"),
        ("1 and payload", "0: \"and\" needs true or false, but this is a number"),
        ("vars.x", "5: unknown variable \"x\" (this file has no vars:)"),
        ("args.name", "5: field \"name\" of a list, which has no fields"),
        ("payload in 3", "11: \"in\" needs a list, string or object on its right, but this is a number"),
        ("payload ! 1", "8: unexpected \"!\"; write \"not\""),
        ("payload 1", "8: unexpected number 1 after the end of the expression"),
    ])
    func compileErrorsHaveOffsets(text: String, expected: String) {
        #expect(compileError(text) == expected)
    }

    @Test func explainsWhyAConditionDidNotHold() throws {
        func why(_ when: String, _ e: RuleEvent, vars: [String: JSONValue] = [:]) throws -> String {
            var parser = try ExpressionParser(text: when, scope: ExpressionScope(vars: vars, environment: [:]))
            let compiled = CompiledExpression(root: try parser.parseAll(), source: when)
            return compiled.explainNotTrue(EvalContext(event: e, now: 0))
        }
        #expect(try why("payload < vars.low", event("b", 23), vars: ["low": 20]) == "`payload` is 23, needed < 20")
        #expect(try why("payload < 20", event("b", "23")) == "`payload` is \"23\" (string), needed < 20 (number): values are not converted")
        #expect(try why("payload.level < 20", event("b", ["x": 1])) == "field missing: `payload` has no field \"level\"")
        #expect(try why("payload.a.b < 20", event("b", ["a": 3])) == "`payload.a` is 3 (number), which has no field \"b\"")
        #expect(try why("payload > 1 and payload < 5", event("b", 7)) == "`payload` is 7, needed < 5")
        #expect(try why("payload matches \"^a\"", event("b", "bcd")) == "`payload` is \"bcd\", which does not match \"^a\"")
    }
}
