import Foundation
import SIOCore
import Testing

/// `sioagent replay` and the rules-over-time contract (issue 15, item 10), through the binary.
@Suite(.serialized)
struct ReplayContractTests {
    static let rules = """
        rules:
          - id: morning
            cron: "0 9 * * *"
            then: [{log: stdout, message: morning}]
          - id: charger
            on: charger
            then: [{set: charging, value: "{{ payload }}"}]
        """
    static let events = """
        {"at": "2026-12-01T00:00:00Z", "event": "charger", "args": [true]}
        {"at": "2026-12-01T23:00:00Z", "event": "tick"}
        """

    func replay(_ extra: [String]) throws -> (status: Int32, out: String, err: String) {
        let rulesPath = try temporaryFile("tz.yaml", Self.rules)
        let eventsPath = try temporaryFile("events.jsonl", Self.events)
        return try sioagent(["replay", "--rules", rulesPath] + extra + [eventsPath])
    }

    @Test func replayTzSetsTheZoneOfSchedules() throws {
        let newYork = try replay(["--tz", "America/New_York"])
        #expect(newYork.status == 0, "\(newYork.err)")
        // 09:00 EST is 14:00 UTC.
        #expect(newYork.out.contains(#"{"at":1796133600,"rule":"morning","phase":"then","action":"log""#), "\(newYork.out)")
        let lisbon = try replay(["--tz", "Europe/Lisbon"])
        // 09:00 WET is 09:00 UTC.
        #expect(lisbon.out.contains(#"{"at":1796115600,"rule":"morning""#), "\(lisbon.out)")
        let bad = try replay(["--tz", "Mars/Olympus"])
        #expect(bad.status == 2)
        #expect(bad.err.contains("--tz: \"Mars/Olympus\" is not a time zone name"), "\(bad.err)")
    }

    @Test func replayPrintsSetWithNameAndValue() throws {
        let r = try replay(["--tz", "UTC"])
        #expect(r.out.split(separator: "\n").first
                == #"{"at":1796083200,"rule":"charger","phase":"then","action":"set","name":"charging","value":true}"#, "\(r.out)")
    }
}
