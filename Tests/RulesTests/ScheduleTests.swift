@testable import Rules
import Testing

/// `at:` and `cron:` as pure computations: the next firing after a time, in a given time zone.
struct ScheduleTests {
    /// Unix seconds of a local time in `tz`.
    func local(_ text: String, _ tz: String) throws -> Double {
        try #require(parseLocalDateTime(text, timeZone: tz))
    }

    func next(_ s: Schedule, after text: String, _ tz: String = "UTC") throws -> String {
        let t = try local(text, tz)
        let n = try #require(s.next(after: t, timeZone: tz))
        return LocalTime.with(tz) {
            let c = LocalTime.civil(Int(n))
            func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
            return "\(c.year)-\(two(c.month))-\(two(c.day))T\(two(c.hour)):\(two(c.minute))"
        }
    }

    @Test func atFiresDailyAtTheLocalTime() throws {
        let s = try Schedule.at("02:00")
        #expect(try next(s, after: "2026-12-01T01:59:00") == "2026-12-01T02:00")
        #expect(try next(s, after: "2026-12-01T02:00:00") == "2026-12-02T02:00")
        #expect(try next(s, after: "2026-12-31T03:00:00") == "2027-01-01T02:00")
    }

    @Test func atRejectsMalformedTimes() {
        #expect(throws: ScheduleError.self) { try Schedule.at("2am") }
        #expect(throws: ScheduleError.self) { try Schedule.at("24:00") }
        #expect(throws: ScheduleError.self) { try Schedule.at("02:60") }
    }

    @Test func cronStepsListsAndRanges() throws {
        let s = try Schedule.cron("*/15 * * * *")
        #expect(try next(s, after: "2026-12-01T10:07:00") == "2026-12-01T10:15")
        #expect(try next(s, after: "2026-12-01T23:50:00") == "2026-12-02T00:00")
        let work = try Schedule.cron("30 8-10,14 * * mon-fri")
        // 2026-12-04 is a Friday: next after 14:30 is Monday 08:30.
        #expect(try next(work, after: "2026-12-04T14:30:00") == "2026-12-07T08:30")
        #expect(try next(work, after: "2026-12-07T08:30:00") == "2026-12-07T09:30")
    }

    @Test func cronAtMonthAndYearBoundaries() throws {
        let endOfMonth = try Schedule.cron("0 12 31 * *")
        // November has no 31st: the next is December 31st.
        #expect(try next(endOfMonth, after: "2026-11-01T00:00:00") == "2026-12-31T12:00")
        let leap = try Schedule.cron("0 0 29 2 *")
        #expect(try next(leap, after: "2026-03-01T00:00:00") == "2028-02-29T00:00")
        let newYear = try Schedule.cron("0 0 1 jan *")
        #expect(try next(newYear, after: "2026-12-31T23:59:00") == "2027-01-01T00:00")
    }

    @Test func cronDayOfMonthOrDayOfWeek() throws {
        // Both restricted: either matches (standard cron). 2026-12-01 is a Tuesday.
        let s = try Schedule.cron("0 9 15 * sun")
        #expect(try next(s, after: "2026-12-01T10:00:00") == "2026-12-06T09:00")
        #expect(try next(s, after: "2026-12-13T10:00:00") == "2026-12-15T09:00")
        // 7 is Sunday too.
        let seven = try Schedule.cron("0 9 * * 7")
        #expect(try next(seven, after: "2026-12-01T10:00:00") == "2026-12-06T09:00")
        // Saturday to Sunday across a week boundary.
        let weekend = try Schedule.cron("0 9 * * sat,sun")
        #expect(try next(weekend, after: "2026-12-05T10:00:00") == "2026-12-06T09:00")
        #expect(try next(weekend, after: "2026-12-06T10:00:00") == "2026-12-12T09:00")
    }

    @Test func cronErrorsSayWhere() {
        func failure(_ text: String) -> ScheduleError? {
            do { _ = try Schedule.cron(text); return nil } catch { return error }
        }
        #expect(failure("* * * *")?.message.contains("5 fields") == true)
        #expect(failure("61 * * * *")?.offset == 0)
        #expect(failure("0 25 * * *")?.offset == 2)
        #expect(failure("0 0 * foo *")?.offset == 6)
        #expect(failure("0 0 * * mon-8")?.message.contains("day of week") == true)
        #expect(failure("*/0 * * * *")?.message.contains("step") == true)
    }

    @Test func daylightSavingTimeForAt() throws {
        // Europe/Lisbon springs forward on 2027-03-28 at 01:00 (to 02:00) and falls back on
        // 2026-10-25 at 02:00 (to 01:00).
        let skipped = try Schedule.at("01:30")
        // 01:30 does not exist that day: it fires at the first moment after the change.
        #expect(try next(skipped, after: "2027-03-28T00:00:00", "Europe/Lisbon") == "2027-03-28T02:00")
        let twice = try Schedule.at("01:30")
        let tz = "Europe/Lisbon"
        let first = try #require(twice.next(after: try local("2026-10-25T00:00:00", tz), timeZone: tz))
        // 01:30 happens twice: it fires once, at the first one, then the next day.
        let second = try #require(twice.next(after: first, timeZone: tz))
        #expect(second - first == 25 * 3600)
        // 02:00 the day before and 02:00 on the day of the change are 25 h apart.
        let daily = try Schedule.at("02:00")
        let a = try #require(daily.next(after: try local("2026-10-24T01:00:00", tz), timeZone: tz))
        let b = try #require(daily.next(after: a, timeZone: tz))
        #expect(b - a == 25 * 3600)
    }
}
