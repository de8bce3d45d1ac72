import OrderedCollections

extension JSONValue {
    /// Compact JSON text. Bytes are written as `{"$binary":"<base64>"}`.
    public func jsonString() -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        write(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends compact JSON text (UTF-8) to `out`. Bytes are written as `{"$binary":"<base64>"}`;
    /// numbers that are whole and fit in 2^53 are written without a fraction; NaN and infinities,
    /// which JSON cannot hold, as `null`.
    public func write(into out: inout [UInt8]) {
        switch self {
        case .null:
            out.append(contentsOf: "null".utf8)
        case .bool(let b):
            out.append(contentsOf: b ? "true".utf8 : "false".utf8)
        case .number(let n):
            JSONValue.writeNumber(n, into: &out)
        case .string(let s):
            JSONValue.writeString(s, into: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            var first = true
            for element in a {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                element.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            var first = true
            for (key, value) in o {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                JSONValue.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .binary(let bytes):
            out.append(contentsOf: #"{"$binary":""#.utf8)
            Base64.encode(bytes, into: &out)
            out.append(contentsOf: #""}"#.utf8)
        }
    }

    /// Writes a number as JSON text.
    public static func writeNumber(_ n: Double, into out: inout [UInt8]) {
        if n.isNaN || n.isInfinite {
            out.append(contentsOf: "null".utf8)
        } else if n == n.rounded(), abs(n) < 9_007_199_254_740_992 {
            let i = Int64(n)
            if i == 0 {
                out.append(UInt8(ascii: "0"))
                return
            }
            var v = i.magnitude
            var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            var count = 0
            withUnsafeMutableBytes(of: &digits) { buf in
                while v > 0 {
                    buf[count] = UInt8(v % 10) + UInt8(ascii: "0")
                    v /= 10
                    count += 1
                }
                if i < 0 { out.append(UInt8(ascii: "-")) }
                for j in stride(from: count - 1, through: 0, by: -1) { out.append(buf[j]) }
            }
        } else {
            out.append(contentsOf: n.description.utf8)
        }
    }

    /// Writes a string as a JSON string literal. Besides what JSON requires (quote, backslash,
    /// C0 controls), DEL, the C1 controls, U+2028/U+2029 and the bidi overrides and isolates
    /// (``OutsideText/isHostile(_:)``) are written as `\uXXXX`: the same value, and a JSON line
    /// read by a line-oriented tool (journald, a terminal, `less`) stays one line that shows what
    /// it holds.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        func unicodeEscape(_ v: UInt32, _ out: inout [UInt8]) {
            out.append(contentsOf: #"\u"#.utf8)
            for shift in [UInt32(12), 8, 4, 0] {
                let d = UInt8(truncatingIfNeeded: v >> shift & 0xF)
                out.append(d < 10 ? 0x30 + d : 0x57 + d)
            }
        }
        let utf8 = s.utf8
        var i = utf8.startIndex
        while i != utf8.endIndex {
            let b = utf8[i]
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            case 0x08: out.append(contentsOf: #"\b"#.utf8)
            case 0x0C: out.append(contentsOf: #"\f"#.utf8)
            case 0..<0x20, 0x7F: unicodeEscape(UInt32(b), &out)
            case 0xC2, 0xE2:
                // Lead bytes of C1 controls (C2 80–9F) and of U+2028/2029, U+202A–202E and
                // U+2066–2069 (E2 80 A8–AE, E2 81 A6–A9): decode the scalar to decide.
                let scalar = s.unicodeScalars[i]
                let width = UTF8.width(scalar)
                if OutsideText.isHostile(scalar) {
                    unicodeEscape(scalar.value, &out)
                } else {
                    var k = i
                    for _ in 0..<width {
                        out.append(utf8[k])
                        k = utf8.index(after: k)
                    }
                }
                i = utf8.index(i, offsetBy: width)
                continue
            default:
                out.append(b)
            }
            i = utf8.index(after: i)
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension JSONValue {
    /// Turns every `{"$binary":"<base64>"}` object (exactly that one key) into `.binary`,
    /// the form that command-line arguments and recorded events use for bytes.
    /// Returns nil when such an object holds text that is not base64.
    public func decodingBinaryMarkers() -> JSONValue? {
        switch self {
        case .array(let a):
            var out: [JSONValue] = []
            out.reserveCapacity(a.count)
            for element in a {
                guard let d = element.decodingBinaryMarkers() else { return nil }
                out.append(d)
            }
            return .array(out)
        case .object(let o):
            if o.count == 1, let marker = o["$binary"] {
                guard case .string(let text) = marker, let bytes = Base64.decode(text) else { return nil }
                return .binary(bytes)
            }
            var out = OrderedDictionary<String, JSONValue>()
            out.reserveCapacity(o.count)
            for (key, value) in o {
                guard let d = value.decodingBinaryMarkers() else { return nil }
                out[key] = d
            }
            return .object(out)
        default:
            return self
        }
    }
}
