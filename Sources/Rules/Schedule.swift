#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A problem in an `at:` or `cron:` text, at an offset (Unicode scalars) inside it.
struct ScheduleError: Error, Sendable {
    var offset: Int
    var message: String
}

/// A local-time schedule: `at: "HH:MM"` (daily) or a standard 5-field `cron:` ("M H DOM MON DOW",
/// with `*`, lists, ranges, steps, and month/day names). Local time comes from the C library (the
/// system's time zone, or `TZ`), daylight saving time included:
/// - a time the clocks skip (spring forward) fires at the first moment after the change;
/// - a time that happens twice (fall back) fires once, at its first occurrence.
public struct Schedule: Sendable, Equatable {
    var minutes: UInt64 = 0
    var hours: UInt32 = 0
    var days: UInt32 = 0
    var months: UInt16 = 0
    var weekdays: UInt8 = 0
    /// Whether day-of-month / day-of-week were `*`: cron matches either restricted field when both are restricted.
    var anyDay = true
    var anyWeekday = true
    public let text: String

    /// `HH:MM`, 24-hour clock.
    static func at(_ text: String) throws(ScheduleError) -> Schedule {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let h = Int(parts[0]), let m = Int(parts[1]), parts[0].count <= 2, parts[1].count == 2 else {
            throw ScheduleError(offset: 0, message: "at: takes a time of day as \"HH:MM\" (24-hour, local time), like \"02:00\"")
        }
        guard (0...23).contains(h) else { throw ScheduleError(offset: 0, message: "the hour must be 0 to 23, not \(h)") }
        guard (0...59).contains(m) else { throw ScheduleError(offset: parts[0].count + 1, message: "the minute must be 0 to 59, not \(m)") }
        var s = Schedule(text: text)
        s.minutes = 1 << UInt64(m)
        s.hours = 1 << UInt32(h)
        s.days = ~0
        s.months = ~0
        s.weekdays = ~0
        return s
    }

    /// Five fields: minute hour day-of-month month day-of-week.
    static func cron(_ text: String) throws(ScheduleError) -> Schedule {
        let scalars = Array(text.unicodeScalars)
        var fields: [(String, Int)] = []
        var i = 0
        while i < scalars.count {
            if scalars[i] == " " || scalars[i] == "\t" { i += 1; continue }
            let start = i
            var f = ""
            while i < scalars.count, scalars[i] != " ", scalars[i] != "\t" { f.unicodeScalars.append(scalars[i]); i += 1 }
            fields.append((f, start))
        }
        guard fields.count == 5 else {
            throw ScheduleError(offset: fields.count > 5 ? fields[5].1 : 0,
                                message: "cron: takes 5 fields, \"MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK\" like \"*/15 * * * *\", found \(fields.count)")
        }
        var s = Schedule(text: text)
        let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let weekdays = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        let m = try field(fields[0].0, fields[0].1, 0...59, "minute", [])
        let h = try field(fields[1].0, fields[1].1, 0...23, "hour", [])
        let dom = try field(fields[2].0, fields[2].1, 1...31, "day of month", [])
        let mon = try field(fields[3].0, fields[3].1, 1...12, "month", months, nameBase: 1)
        let dow = try field(fields[4].0, fields[4].1, 0...7, "day of week", weekdays)
        s.minutes = m.bits
        s.hours = UInt32(truncatingIfNeeded: h.bits)
        s.days = UInt32(truncatingIfNeeded: dom.bits)
        s.months = UInt16(truncatingIfNeeded: mon.bits)
        var w = dow.bits
        if w & (1 << 7) != 0 { w |= 1 }  // 7 is Sunday too
        s.weekdays = UInt8(truncatingIfNeeded: w & 0x7f)
        s.anyDay = dom.star
        s.anyWeekday = dow.star
        return s
    }

    private static func field(_ text: String, _ offset: Int, _ range: ClosedRange<Int>, _ what: String, _ names: [String],
                              nameBase: Int = 0) throws(ScheduleError) -> (bits: UInt64, star: Bool) {
        var bits: UInt64 = 0
        var star = false
        var position = offset
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let itemOffset = position
            position += item.unicodeScalars.count + 1
            func value(_ s: Substring, _ at: Int) throws(ScheduleError) -> Int {
                if let n = Int(s) {
                    guard range.contains(n) else {
                        throw ScheduleError(offset: at, message: "\(what) must be \(range.lowerBound) to \(range.upperBound), not \(n)")
                    }
                    return n
                }
                if let k = names.firstIndex(of: s.lowercased()) { return k + nameBase }
                throw ScheduleError(offset: at, message: "\"\(s)\" is not a \(what)" + (names.isEmpty ? " (a number \(range.lowerBound) to \(range.upperBound))" : suggestion(s.lowercased(), names)))
            }
            guard !item.isEmpty else { throw ScheduleError(offset: itemOffset, message: "empty item in the \(what) field") }
            var body = item
            var step = 1
            if let slash = item.firstIndex(of: "/") {
                body = item[..<slash]
                let stepText = item[item.index(after: slash)...]
                guard let n = Int(stepText), n > 0, n <= range.upperBound else {
                    throw ScheduleError(offset: itemOffset + body.unicodeScalars.count + 1, message: "the step after \"/\" must be a number from 1 to \(range.upperBound)")
                }
                step = n
            }
            var lo = range.lowerBound, hi = range.upperBound
            if body == "*" {
                if step == 1 { star = true }
            } else if let dash = body.firstIndex(of: "-") {
                lo = try value(body[..<dash], itemOffset)
                hi = try value(body[body.index(after: dash)...], itemOffset + body[..<dash].unicodeScalars.count + 1)
                guard lo <= hi else { throw ScheduleError(offset: itemOffset, message: "the range \(body) goes backwards") }
            } else {
                lo = try value(body, itemOffset)
                if step == 1 { hi = lo }
            }
            var v = lo
            while v <= hi { bits |= 1 << UInt64(v); v += step }
        }
        return (bits, star)
    }

    // MARK: Matching local times

    struct Civil: Equatable, Comparable {
        var year, month, day, hour, minute: Int

        static func < (a: Civil, b: Civil) -> Bool {
            (a.year, a.month, a.day, a.hour, a.minute) < (b.year, b.month, b.day, b.hour, b.minute)
        }
    }

    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        switch m {
        case 2: return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// 0 = Sunday.
    static func weekday(_ y: Int, _ m: Int, _ d: Int) -> Int {
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1
        let days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468
        return ((days % 7) + 11) % 7
    }

    func dayMatches(_ y: Int, _ m: Int, _ d: Int) -> Bool {
        let dom = days & (1 << UInt32(d)) != 0
        let dow = weekdays & (1 << UInt8(Schedule.weekday(y, m, d))) != 0
        if anyDay && anyWeekday { return true }
        if anyDay { return dow }
        if anyWeekday { return dom }
        return dom || dow
    }

    /// The first local time at or after `c` that the schedule matches (searching 10 years ahead).
    func match(from c: Civil) -> Civil? {
        var c = c
        let limit = c.year + 10
        for _ in 0..<200_000 {
            if c.minute > 59 { c.minute = 0; c.hour += 1 }
            if c.hour > 23 { c.hour = 0; c.day += 1 }
            if c.day > Schedule.daysInMonth(c.year, c.month) { c.day = 1; c.month += 1 }
            if c.month > 12 { c.month = 1; c.year += 1 }
            if c.year > limit { return nil }
            if months & (1 << UInt16(c.month)) == 0 { c.month += 1; c.day = 1; c.hour = 0; c.minute = 0; continue }
            if !dayMatches(c.year, c.month, c.day) { c.day += 1; c.hour = 0; c.minute = 0; continue }
            if hours & (1 << UInt32(c.hour)) == 0 { c.hour += 1; c.minute = 0; continue }
            if minutes & (1 << UInt64(c.minute)) == 0 { c.minute += 1; continue }
            return c
        }
        return nil
    }

    /// The first time after `t` (Unix seconds) the schedule fires, in the local time of `timeZone`
    /// (a TZ name such as "Europe/Lisbon"; nil: the system's), or nil when it never does.
    public func next(after t: Double, timeZone: String? = nil) -> Double? {
        LocalTime.with(timeZone) { () -> Double? in
            guard t.isFinite, abs(t) < 1e13 else { return nil }
            var c = LocalTime.civil(Int(t.rounded(.down)))
            c.minute += 1
            for _ in 0..<64 {
                guard let m = match(from: c) else { return nil }
                for instant in LocalTime.instants(m) where Double(instant) > t {
                    return Double(instant)
                }
                c = m
                c.minute += 1
            }
            return nil
        }
    }
}

/// Local time through the C library, for one time zone at a time.
enum LocalTime {
    /// Guards `TZ` while a time zone other than the system's is in use.
    private static let lock = Mutex<Void>(())
    private static let systemTZ: String? = getenv("TZ").map { String(cString: $0) }

    static func with<T>(_ timeZone: String?, _ body: () -> T) -> T {
        lock.withLock { _ in
            guard let timeZone else { return body() }
            setenv("TZ", timeZone, 1)
            tzset()
            defer {
                if let systemTZ { setenv("TZ", systemTZ, 1) } else { unsetenv("TZ") }
                tzset()
            }
            return body()
        }
    }

    static func civil(_ t: Int) -> Schedule.Civil {
        var time = time_t(t)
        var tm = tm()
        localtime_r(&time, &tm)
        return Schedule.Civil(year: Int(tm.tm_year) + 1900, month: Int(tm.tm_mon) + 1, day: Int(tm.tm_mday),
                              hour: Int(tm.tm_hour), minute: Int(tm.tm_min))
    }

    /// The instants (whole minutes) whose local time is `c`, earliest first; for a local time the
    /// clocks skip, the first instant after the skip.
    static func instants(_ c: Schedule.Civil) -> [Int] {
        var found: [Int] = []
        for dst in [Int32(-1), 0, 1] {
            var tm = tm()
            tm.tm_year = Int32(c.year - 1900)
            tm.tm_mon = Int32(c.month - 1)
            tm.tm_mday = Int32(c.day)
            tm.tm_hour = Int32(c.hour)
            tm.tm_min = Int32(c.minute)
            tm.tm_isdst = dst
            let t = Int(mktime(&tm))
            if civil(t) == c, !found.contains(t) { found.append(t) }
        }
        if !found.isEmpty { return found.sorted() }
        // A skipped time: the first instant whose local time is after it.
        var tm = tm()
        tm.tm_year = Int32(c.year - 1900)
        tm.tm_mon = Int32(c.month - 1)
        tm.tm_mday = Int32(c.day)
        tm.tm_hour = Int32(c.hour)
        tm.tm_min = Int32(c.minute)
        tm.tm_isdst = -1
        var t = Int(mktime(&tm))
        t -= t % 60
        for _ in 0..<(4 * 60) where c < civil(t - 60) { t -= 60 }
        for _ in 0..<(4 * 60) where !(c < civil(t)) { t += 60 }
        return [t]
    }
}

/// Local date and time as "YYYY-MM-DDTHH:MM:SS" in `timeZone` to Unix seconds (the first
/// occurrence when the time happens twice); nil when malformed.
func parseLocalDateTime(_ text: String, timeZone: String?) -> Double? {
    let s = Array(text.utf8)
    guard s.count == 19 || s.count == 16, s[4] == 45, s[7] == 45, s[10] == 84 || s[10] == 32, s[13] == 58 else { return nil }
    func n(_ a: Int, _ b: Int) -> Int? { Int(String(decoding: s[a..<b], as: UTF8.self)) }
    guard let y = n(0, 4), let mo = n(5, 7), let d = n(8, 10), let h = n(11, 13), let mi = n(14, 16) else { return nil }
    var sec = 0
    if s.count == 19 { guard s[16] == 58, let v = n(17, 19), v < 60 else { return nil }; sec = v }
    guard (1...12).contains(mo), (1...Schedule.daysInMonth(y, mo)).contains(d), h < 24, mi < 60 else { return nil }
    return LocalTime.with(timeZone) {
        LocalTime.instants(Schedule.Civil(year: y, month: mo, day: d, hour: h, minute: mi)).first.map { Double($0 + sec) }
    }
}
