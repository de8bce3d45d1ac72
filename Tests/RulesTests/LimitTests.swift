import Rules
import SIOCore
import Testing

/// Numbers from rule files never trap: a duration too long for the timers is an error where it is
/// written, and conversions saturate.
struct LimitTests {
    @Test(arguments: [
        ("rules:\n  - id: a\n    on: x\n    for: 99999999999999999999s\n    then: [{log: stdout}]\n",
         "4:10: for: \"99999999999999999999s\" is longer than the longest duration, 36500d (100 years)"),
        ("rules:\n  - id: a\n    on: x\n    cooldown: 36501d\n    then: [{log: stdout}]\n",
         "4:15: cooldown: \"36501d\" is longer than the longest duration, 36500d (100 years)"),
        ("rules:\n  - id: a\n    on: x\n    then:\n      - emit: x\n        ack: 200000000000d\n",
         "6:14: ack: \"200000000000d\" is longer than the longest duration, 36500d (100 years)"),
        ("rules:\n  - id: a\n    on: x\n    then: [{log: stdout}]\ntests:\n  - name: t\n    events: [{at: 1e300, event: x}]\n    expect: []\n",
         "7:19: at: \"1e300\" is longer than the longest duration, 36500d (100 years)"),
        ("rules:\n  - id: a\n    on: x\n    for: 1" + String(repeating: "0", count: 400) + "s\n    then: [{log: stdout}]\n",
         "4:10: for: \"1" + String(repeating: "0", count: 400) + "s\" is not a duration (500ms, 10s, 5m, 1h, 1d)"),
    ])
    func tooLongDurationIsAPositionedError(yaml: String, expected: String) {
        #expect(errors(yaml) == [expected])
    }

    @Test func theLongestDurationIsAccepted() throws {
        _ = try rules("rules:\n  - id: a\n    on: x\n    for: 36500d\n    then:\n      - emit: x\n        ack: 36500d\n")
    }

    @Test func conversionsSaturate() {
        #expect(durationFromSeconds(1e30) == .seconds(Int64.max))
        #expect(durationFromSeconds(-1e30) == .seconds(Int64.min))
        #expect(durationFromSeconds(.infinity) == .seconds(Int64.max))
        #expect(durationFromSeconds(.nan) == .zero)
        #expect(durationFromSeconds(1.5) == .milliseconds(1500))
        #expect(parseDuration("36501d") == nil)
        #expect(parseDurationSeconds("99999999999999999999s") == 1e20)
    }
}
