import SIOCore

/// Reading recorded events for `sioagent replay`: one JSON object a line,
/// `{"at": 12.5 or "2026-11-24T10:00:00Z", "namespace": "/", "event": "batery", "args": [20]}`
/// (`namespace` defaults to "/", `args` to []; `data` gives a single argument; `ack: true` marks
/// an event that asked for an acknowledgement; `at` defaults to the previous line's time).
public enum ReplayInput {
    /// Parses one line. Returns the time (seconds; ISO 8601 times as Unix seconds) and the event,
    /// or the reason the line is malformed.
    public static func parse(line: String, previousTime: Double?) -> Result<(at: Double, event: RuleEvent), ReplayLineError> {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: line)
        } catch {
            return .failure(ReplayLineError(message: error.description))
        }
        guard case .object(let o) = value else { return .failure(ReplayLineError(message: "expected a JSON object, got a \(StaticType(of: value).name)")) }
        for key in o.keys where !["at", "namespace", "event", "args", "data", "ack"].contains(key) {
            return .failure(ReplayLineError(message: "unknown key \"\(key)\"" + suggestion(key, ["at", "namespace", "event", "args", "data", "ack"])))
        }
        let at: Double
        switch o["at"] {
        case .number(let n)?: at = n
        case .string(let s)?:
            guard let t = parseISO8601(s) else { return .failure(ReplayLineError(message: "\"at\": \"\(s)\" is not a number of seconds or an ISO 8601 time like 2026-11-24T10:00:00Z")) }
            at = t
        case nil:
            guard let previousTime else { return .failure(ReplayLineError(message: "the first event needs \"at\"")) }
            at = previousTime
        default:
            return .failure(ReplayLineError(message: "\"at\" must be seconds or an ISO 8601 time"))
        }
        if let previousTime, at < previousTime {
            return .failure(ReplayLineError(message: "\"at\" goes back in time (\(JSONValue.number(at)) after \(JSONValue.number(previousTime)))"))
        }
        guard case .string(let name)? = o["event"], !name.isEmpty else { return .failure(ReplayLineError(message: "missing \"event\" (a name)")) }
        var namespace = "/"
        if let ns = o["namespace"] {
            guard case .string(let s) = ns, s.hasPrefix("/") else { return .failure(ReplayLineError(message: "\"namespace\" must be text starting with \"/\"")) }
            namespace = s
        }
        var args: [JSONValue] = []
        if o["args"] != nil && o["data"] != nil { return .failure(ReplayLineError(message: "give \"args\" or \"data\", not both")) }
        if let a = o["args"] {
            guard case .array(let list) = a else { return .failure(ReplayLineError(message: "\"args\" must be a list")) }
            args = list
        }
        if let d = o["data"] { args = [d] }
        guard case .array(let decoded)? = JSONValue.array(args).decodingBinaryMarkers() else {
            return .failure(ReplayLineError(message: "a {\"$binary\": …} value is not base64"))
        }
        var ack = false
        if let a = o["ack"] {
            guard case .bool(let b) = a else { return .failure(ReplayLineError(message: "\"ack\" must be true or false")) }
            ack = b
        }
        return .success((at, RuleEvent(namespace: namespace, name: name, args: decoded, canReply: ack)))
    }
}

public struct ReplayLineError: Error, Sendable, Equatable {
    public var message: String
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` to Unix seconds.
public func parseISO8601(_ text: String) -> Double? {
    let s = Array(text.utf8)
    var i = 0
    func number(_ digits: Int) -> Int? {
        guard i + digits <= s.count else { return nil }
        var v = 0
        for k in 0..<digits {
            let c = s[i + k]
            guard c >= 48 && c <= 57 else { return nil }
            v = v * 10 + Int(c - 48)
        }
        i += digits
        return v
    }
    func expect(_ c: UInt8) -> Bool {
        guard i < s.count, s[i] == c else { return false }
        i += 1
        return true
    }
    guard let year = number(4), expect(45), let month = number(2), expect(45), let day = number(2) else { return nil }
    guard i < s.count, s[i] == 84 || s[i] == 116 || s[i] == 32 else { return nil }
    i += 1
    guard let hour = number(2), expect(58), let minute = number(2), expect(58), let second = number(2) else { return nil }
    guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
    var fraction = 0.0
    if i < s.count, s[i] == 46 {
        i += 1
        var scale = 0.1
        var any = false
        while i < s.count, s[i] >= 48, s[i] <= 57 { fraction += Double(s[i] - 48) * scale; scale /= 10; i += 1; any = true }
        if !any { return nil }
    }
    var offset = 0
    if expect(90) || expect(122) {
    } else if i < s.count, s[i] == 43 || s[i] == 45 {
        let sign = s[i] == 45 ? -1 : 1
        i += 1
        guard let oh = number(2) else { return nil }
        _ = expect(58)
        guard let om = number(2) else { return nil }
        offset = sign * (oh * 3600 + om * 60)
    } else {
        return nil
    }
    guard i == s.count else { return nil }
    // Days from civil (proleptic Gregorian).
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    let days = era * 146097 + doe - 719468
    return Double(days * 86400 + hour * 3600 + minute * 60 + second - offset) + fraction
}
