/// Parses a duration as rule files write it: a number and a unit, `500ms`, `10s`, `5m`, `1h`, `1d`,
/// or several of them in a row (`1h30m`). Fractions are allowed (`1.5s`). A bare number without a
/// unit is rejected, so `for: 10` never means ten of some unit the operator did not choose.
///
/// - Returns: the duration, or nil when `text` is not a duration (empty, no unit, unknown unit,
///   negative) or is longer than `longestDuration`.
public func parseDuration(_ text: String) -> Duration? {
    guard let seconds = parseDurationSeconds(text), seconds <= longestDuration else { return nil }
    return durationFromSeconds(seconds)
}

/// The longest duration rule files and the configuration accept, in seconds: 36500d (100 years).
/// Longer ones are errors where they are written; every timer stays within what a 64-bit count of
/// nanoseconds holds (292 years).
public let longestDuration: Double = 36_500 * 86_400

/// The shortest `every:` period rule files accept, in seconds.
public let shortestEvery: Double = 1

/// Like `parseDuration`, as seconds, with no upper bound (always finite).
public func parseDurationSeconds(_ text: String) -> Double? {
    let scalars = Array(text.unicodeScalars)
    var i = 0
    var total = 0.0
    var parts = 0
    func skipSpaces() { while i < scalars.count, scalars[i] == " " { i += 1 } }
    skipSpaces()
    while i < scalars.count {
        var number = ""
        while i < scalars.count, (scalars[i].properties.numericType != nil && scalars[i].isASCII) || scalars[i] == "." {
            number.unicodeScalars.append(scalars[i])
            i += 1
        }
        guard !number.isEmpty, let value = Double(number), value.isFinite else { return nil }
        var unit = ""
        while i < scalars.count, scalars[i].properties.isAlphabetic {
            unit.unicodeScalars.append(scalars[i])
            i += 1
        }
        let factor: Double
        switch unit {
        case "ms": factor = 0.001
        case "s": factor = 1
        case "m": factor = 60
        case "h": factor = 3600
        case "d": factor = 86400
        default: return nil
        }
        total += value * factor
        parts += 1
        skipSpaces()
    }
    return parts > 0 && total.isFinite ? total : nil
}

/// Converts seconds to a `Duration` (nanosecond precision), saturating: beyond ±2^63 seconds it
/// gives the longest duration of that sign, and NaN gives zero.
public func durationFromSeconds(_ seconds: Double) -> Duration {
    guard !seconds.isNaN else { return .zero }
    // 2^63 is exactly representable; every Double below it converts to Int64 without trapping.
    let limit = 9_223_372_036_854_775_808.0
    if seconds >= limit { return .seconds(Int64.max) }
    if seconds <= -limit { return .seconds(Int64.min) }
    let whole = seconds.rounded(.towardZero)
    let nanos = ((seconds - whole) * 1e9).rounded()
    return .seconds(Int64(whole)) + .nanoseconds(Int64(nanos))
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    public var secondsValue: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}

/// Writes seconds the way rule files write durations: `90s` → `1m30s`, `0.5` → `500ms`.
func formatSeconds(_ seconds: Double) -> String {
    if seconds < 0 { return "-" + formatSeconds(-seconds) }
    if seconds == 0 { return "0s" }
    if seconds < 1 {
        let ms = seconds * 1000
        return ms == ms.rounded() ? "\(Int(ms))ms" : "\(ms)ms"
    }
    if seconds != seconds.rounded() || seconds >= 1e15 {
        return "\(seconds)s"
    }
    var rest = Int(seconds)
    var out = ""
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] where rest >= size {
        out += "\(rest / size)\(unit)"
        rest %= size
    }
    return out
}
