/// The one sanitiser for text that comes from outside (the server, payloads, command output,
/// error messages) on its way to a line-oriented sink: systemd's `STATUS=`, metrics labels and
/// help text, `log` actions, standard output and the agent's own log.
///
/// It works on Unicode scalars (or bytes), never on `Character`: Swift's `"\r\n"` is one
/// `Character` that equals neither `"\r"` nor `"\n"`, so a per-`Character` test lets it through.
///
/// The result is one line of printable text:
/// - `\` becomes `\\`, so an escaped newline (`\n`) is never confused with a backslash and an `n`
///   that were in the data;
/// - LF, CR and tab become `\n`, `\r`, `\t`;
/// - the other C0 controls, DEL, the C1 controls (NEL included), U+2028/U+2029 and the bidi
///   overrides and isolates (U+202A–202E, U+2066–2069) become `\u{…}` (hex);
/// - invalid UTF-8 (only possible from ``escaped(utf8:)``) becomes `\x{…}`, one per byte.
public enum OutsideText {
    /// Whether `scalar` would break a line, hide text or reorder it on a terminal.
    @inlinable
    public static func isHostile(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        if v < 0x20 || (v >= 0x7F && v <= 0x9F) { return true }
        if v < 0x2028 { return false }
        return v == 0x2028 || v == 0x2029 || (v >= 0x202A && v <= 0x202E) || (v >= 0x2066 && v <= 0x2069)
    }

    /// Whether ``escaped(_:)`` would change `text`.
    public static func needsEscaping(_ text: some StringProtocol) -> Bool {
        text.unicodeScalars.contains { $0 == "\\" || isHostile($0) }
    }

    /// `text` as one safe line (see the type's description).
    public static func escaped(_ text: some StringProtocol) -> String {
        guard needsEscaping(text) else { return String(text) }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars { append(scalar, to: &out) }
        return String(out)
    }

    /// `bytes` decoded as UTF-8 and made one safe line; each byte that is not part of valid
    /// UTF-8 becomes `\x{hh}`.
    public static func escaped(utf8 bytes: some Collection<UInt8>) -> String {
        let a = Array(bytes)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < a.count {
            let first = a[i]
            var length = 0
            var value = UInt32(0)
            switch first {
            case 0x00...0x7F: length = 1; value = UInt32(first)
            case 0xC2...0xDF: length = 2; value = UInt32(first & 0x1F)
            case 0xE0...0xEF: length = 3; value = UInt32(first & 0x0F)
            case 0xF0...0xF4: length = 4; value = UInt32(first & 0x07)
            default: break
            }
            if length > 0, a.count - i >= length {
                var valid = true
                for k in 1..<length {
                    let b = a[i + k]
                    if b & 0xC0 != 0x80 { valid = false; break }
                    value = value << 6 | UInt32(b & 0x3F)
                }
                // Overlong forms, surrogates and values past U+10FFFF are invalid too.
                let smallest: UInt32 = length == 3 ? 0x800 : length == 4 ? 0x10000 : 0
                if valid, value >= smallest, let scalar = Unicode.Scalar(value) {
                    append(scalar, to: &out)
                    i += length
                    continue
                }
            }
            appendByte(first, to: &out)
            i += 1
        }
        return String(out)
    }

    @inline(__always)
    private static func append(_ scalar: Unicode.Scalar, to out: inout String.UnicodeScalarView) {
        if scalar == "\\" {
            out.append(contentsOf: #"\\"#.unicodeScalars)
            return
        }
        guard isHostile(scalar) else {
            out.append(scalar)
            return
        }
        switch scalar {
        case "\n": out.append(contentsOf: #"\n"#.unicodeScalars)
        case "\r": out.append(contentsOf: #"\r"#.unicodeScalars)
        case "\t": out.append(contentsOf: #"\t"#.unicodeScalars)
        default: out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
        }
    }

    private static func appendByte(_ byte: UInt8, to out: inout String.UnicodeScalarView) {
        out.append(contentsOf: "\\x{\(String(byte, radix: 16))}".unicodeScalars)
    }

    /// The longest prefix of `text` of at most `maxBytes` UTF-8 bytes that ends on a scalar
    /// boundary, with `...` in place of the rest when it was cut (the result is then at most
    /// `maxBytes` bytes, `...` included).
    public static func truncated(_ text: String, maxBytes: Int) -> String {
        guard text.utf8.count > maxBytes else { return text }
        let budget = max(0, maxBytes - 3)
        var out = String.UnicodeScalarView()
        var used = 0
        for scalar in text.unicodeScalars {
            let size = UTF8.width(scalar)
            if used + size > budget { break }
            used += size
            out.append(scalar)
        }
        return String(out) + "..."
    }
}
