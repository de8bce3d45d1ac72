#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SIOCore
import SIOYAML

/// What expressions of the rule being compiled may read.
struct RuleScope {
    var allowKey = true
    var allowWindows = true
    var windowsForbiddenReason = "window functions need a rule with on: (they range over its events)"
}

/// The keys of rules that watch over time: `absent`, `at`, `cron`, `max_keys`, `window_samples`.
struct TimeKeys {
    var absent: Double?
    var schedule: Schedule?
    var maxKeys = defaultMaxKeys
    var windowSamples = defaultWindowSamples
}

extension FileCompiler {
    /// Reads `absent`, `at`, `cron`, `max_keys` and `window_samples` of a rule, with their errors.
    mutating func compileTimeKeys(_ m: [String: Entry]) -> TimeKeys {
        var out = TimeKeys()
        if let e = m["absent"] {
            out.absent = duration(e.value, "absent")
            if let v = out.absent, v <= 0 { error(e.value, "absent must be longer than 0s"); out.absent = nil }
            if m["on"] == nil { error(e.keyNode, "absent: needs on: (the events whose absence it watches)") }
            for other in ["for", "clear_when"] {
                if let o = m[other] { error(o.keyNode, "\(other): cannot be combined with absent: (an absent rule fires on silence and clears on the next event)") }
            }
        }
        for kind in ["at", "cron"] {
            guard let e = m[kind] else { continue }
            guard case .scalar(let s) = e.value else {
                error(e.value, "\(kind): must be text like \(kind == "at" ? "\"02:00\"" : "\"*/15 * * * *\""), not \(describe(e.value))")
                continue
            }
            do {
                out.schedule = kind == "at" ? try Schedule.at(s.string) : try Schedule.cron(s.string)
            } catch {
                self.error(contentPosition(e.value, offset: error.offset), error.message)
            }
        }
        out.maxKeys = positiveInteger(m["max_keys"], "max_keys", limit: 10_000_000) ?? defaultMaxKeys
        out.windowSamples = positiveInteger(m["window_samples"], "window_samples", limit: 1_000_000) ?? defaultWindowSamples
        return out
    }

    /// A whole number from 1 to `limit`, or nil (with an error) when the entry is present but wrong.
    mutating func positiveInteger(_ e: Entry?, _ what: String, limit: Int) -> Int? {
        guard let e else { return nil }
        guard case .number(let v) = json(e.value), e.value.scalar?.style == .plain, v == v.rounded(), v >= 1, v <= Double(limit) else {
            error(e.value, "\(what) must be a whole number from 1 to \(limit), not \(describe(e.value))")
            return nil
        }
        return Int(v)
    }

    /// `set: NAME` (with `value:` and an optional `ttl:`) and `unset: NAME`.
    mutating func compileStateAction(_ kind: String, _ value: YAMLNode, _ m: [String: Entry], environmentRead: inout Set<String>) -> ActionTemplate? {
        guard case .scalar(let s) = value, isIdentifier(s.string) else {
            error(value, "\(kind): takes a state name (letters, digits, _), not \(describe(value))")
            return nil
        }
        if kind == "unset" { return .unset(name: s.string) }
        guard let v = m["value"] else {
            error(value, "set: needs value: (what state.\(s.string) holds; a template)")
            return nil
        }
        guard let t = template(v.value, environmentRead: &environmentRead) else { return nil }
        var ttl: Double?
        if let e = m["ttl"] {
            ttl = duration(e.value, "ttl")
            if let x = ttl, x <= 0 { error(e.value, "ttl must be longer than 0s"); ttl = nil }
        }
        stateSets.insert(s.string)
        return .set(name: s.string, value: t, ttl: ttl)
    }

    /// A test's `clock: {start: "2026-12-01T01:59:00", tz: "Europe/Lisbon"}`.
    mutating func compileClock(_ n: YAMLNode) -> (start: Double, timeZone: String?)? {
        guard let m = mapping(n, "clock:", known: ["start", "tz"]) else { return nil }
        var timeZone: String?
        if let e = m["tz"] {
            guard let tz = text(e.value, "tz") else { return nil }
            guard isKnownTimeZone(tz) else {
                error(e.value, "tz: \"\(tz)\" is not a time zone name like Europe/Lisbon or UTC")
                return nil
            }
            timeZone = tz
        }
        var start = 0.0
        if let e = m["start"] {
            guard let t = text(e.value, "start"), let v = parseLocalDateTime(t, timeZone: timeZone ?? "UTC") else {
                error(e.value, "start: is a local date and time like \"2026-12-01T01:59:00\"")
                return nil
            }
            start = v
        }
        return (start, timeZone ?? "UTC")
    }

    /// A test's `state: {NAME: value}`.
    mutating func compileInitialState(_ n: YAMLNode) -> [String: StateEntry]? {
        guard case .object(let o) = json(n) else {
            error(n, "state: is a mapping of state names to values, like {charging: true}")
            return nil
        }
        var out: [String: StateEntry] = [:]
        for (k, v) in o { out[k] = StateEntry(value: v) }
        return out
    }
}

/// Whether the C library has this time zone (it reads the file when the zone is used).
/// Whether `tz` names a time zone of the system's database (`Europe/Lisbon`, `UTC`): a plain
/// relative name, never a path out of `/usr/share/zoneinfo`.
public func isKnownTimeZone(_ tz: String) -> Bool {
    let valid = !tz.isEmpty && !tz.hasPrefix("/") && !tz.contains(text: "..") && tz.unicodeScalars.allSatisfy {
        $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "/_+-".unicodeScalars.contains($0))
    }
    return valid && (tz == "UTC" || fileExists("/usr/share/zoneinfo/" + tz))
}

private func fileExists(_ path: String) -> Bool {
    access(path, R_OK) == 0
}
