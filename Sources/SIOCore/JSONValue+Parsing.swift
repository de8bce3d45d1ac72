import OrderedCollections

/// Why a JSON text could not be read, and where (a byte offset from the start of the text).
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var message: String

    public init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }

    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}

extension JSONValue {
    /// Reads one JSON value that fills `text` (whitespace around it allowed).
    public init(parsing text: String) throws(JSONParseError) {
        var text = text
        let result = text.withUTF8 { buffer in
            Result { () throws(JSONParseError) in try JSONValue(parsing: buffer) }
        }
        self = try result.get()
    }

    /// Reads one JSON value that fills `bytes` (UTF-8; whitespace around it allowed).
    public init(parsing bytes: some Collection<UInt8>) throws(JSONParseError) {
        let parse = { (buffer: UnsafeBufferPointer<UInt8>) in
            Result { () throws(JSONParseError) in try JSONValue(parsing: buffer) }
        }
        if let result = bytes.withContiguousStorageIfAvailable(parse) {
            self = try result.get()
        } else {
            self = try Array(bytes).withUnsafeBufferPointer(parse).get()
        }
    }

    /// Reads one JSON value that fills `buffer`.
    public init(parsing buffer: UnsafeBufferPointer<UInt8>) throws(JSONParseError) {
        var parser = JSONParser(buffer)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.index == buffer.count else {
            throw JSONParseError(offset: parser.index, message: "unexpected text after the value")
        }
        self = value
    }
}

/// A byte-level JSON reader. Strict RFC 8259, with a nesting limit so hostile input cannot
/// exhaust the stack.
struct JSONParser {
    static let maxDepth = 512

    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    func fail(_ message: String, at offset: Int? = nil) -> JSONParseError {
        JSONParseError(offset: offset ?? index, message: message)
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < Self.maxDepth else { throw fail("nested too deeply") }
        guard index < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail("unexpected character '\(Unicode.Scalar(bytes[index]))'")
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let start = index
        let count = literal.utf8CodeUnitCount
        guard bytes.count - index >= count else { throw fail("unexpected end of input", at: start) }
        let lit = literal.utf8Start
        for i in 0..<count where bytes[index + i] != lit[i] {
            throw fail("invalid literal", at: start)
        }
        index += count
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        index += 1  // {
        var object = OrderedDictionary<String, JSONValue>()
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of input in object") }
            guard bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            object[key] = value
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of input in object") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(object)
            }
            throw fail("expected ',' or '}'")
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        index += 1  // [
        var array: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(array)
        }
        while true {
            skipWhitespace()
            array.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of input in list") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(array)
            }
            throw fail("expected ',' or ']'")
        }
    }

    mutating func parseNumber() throws(JSONParseError) -> Double {
        let start = index
        var isInteger = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, isDigit(bytes[index]) else { throw fail("invalid number", at: start) }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw fail("invalid number", at: start) }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < bytes.count, isDigit(bytes[index]) else { throw fail("invalid number", at: start) }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        // Fast path: short integers need no string conversion.
        if isInteger, index - start <= 15 {
            var negative = false
            var i = start
            if bytes[i] == UInt8(ascii: "-") {
                negative = true
                i += 1
            }
            var n: Int64 = 0
            while i < index {
                n = n * 10 + Int64(bytes[i] &- UInt8(ascii: "0"))
                i += 1
            }
            return Double(negative ? -n : n)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text) else { throw fail("invalid number", at: start) }
        // `1e999` and 400-digit integers are valid JSON but not a Double: an error, not infinity
        // (which would be written back as `null`, and which no rule can compare usefully).
        guard value.isFinite else { throw fail("number out of range", at: start) }
        return value
    }

    @inline(__always)
    func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    mutating func parseString() throws(JSONParseError) -> String {
        var builder = JSONStringBuilder()
        try readString(into: &builder)
        return builder.value
    }

    /// Reads a string from its opening quote to just past its closing quote, giving `sink` its
    /// contents: the runs of bytes between escapes as they stand in the text, and each escape
    /// decoded. The one reader of string syntax (control characters, escapes, surrogate pairs,
    /// UTF-8) for the parser and for the checker, which keeps nothing.
    @inline(__always)
    mutating func readString<Sink: JSONStringSink>(into sink: inout Sink) throws(JSONParseError) {
        let start = index
        index += 1  // opening quote
        var runStart = index
        // The bytes of the run or'ed together (below 0x80: ASCII), for a sink that checks UTF-8 itself.
        var high: UInt8 = 0
        var valid = true
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                sink.append(run: UnsafeBufferPointer(rebasing: bytes[runStart..<index]), high: high)
                index += 1
                guard valid, sink.close() else { throw fail("invalid UTF-8 in string", at: start) }
                return
            }
            if b == UInt8(ascii: "\\") {
                sink.append(run: UnsafeBufferPointer(rebasing: bytes[runStart..<index]), high: high)
                index += 1
                guard index < bytes.count else { break }
                sink.append(escaped: try readEscape())
                runStart = index
                continue
            }
            if b < 0x20 { throw fail("control character in string") }
            if Sink.checksUTF8AsItReads, b >= 0x80 {
                // One whole UTF-8 sequence (an escape, a quote or the end cannot complete one:
                // escapes decode to whole sequences), or the string is invalid once it closes.
                if let length = utf8SequenceLength(at: index) {
                    index += length
                } else {
                    valid = false
                    index += 1
                }
                continue
            }
            high |= b
            index += 1
        }
        throw fail("unterminated string", at: start)
    }

    /// One escape, from the byte after its backslash: the scalar it stands for.
    @inline(__always)
    mutating func readEscape() throws(JSONParseError) -> Unicode.Scalar {
        let e = bytes[index]
        index += 1
        switch e {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            var scalar = try parseHex4()
            if (0xD800..<0xDC00).contains(scalar) {
                // A high surrogate must be followed by an escaped low surrogate.
                guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                    bytes[index + 1] == UInt8(ascii: "u")
                else { throw fail("unpaired surrogate in string") }
                index += 2
                let low = try parseHex4()
                guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in string") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                throw fail("unpaired surrogate in string")
            }
            guard let u = Unicode.Scalar(scalar) else { throw fail("invalid escape") }
            return u
        default:
            throw fail("invalid escape '\\\(Unicode.Scalar(e))'", at: index - 2)
        }
    }

    /// The length of the well-formed UTF-8 sequence (Unicode table 3-7) that starts at `at`
    /// with a byte ≥ 0x80, or nil.
    func utf8SequenceLength(at: Int) -> Int? {
        let lead = bytes[at]
        let length: Int
        var low: UInt8 = 0x80, high: UInt8 = 0xBF  // the range of the second byte
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: return nil
        }
        guard bytes.count - at >= length else { return nil }
        guard bytes[at + 1] >= low, bytes[at + 1] <= high else { return nil }
        for k in 2..<max(length, 2) where bytes[at + k] & 0xC0 != 0x80 {
            return nil
        }
        return length
    }

    mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard bytes.count - index >= 4 else { throw fail("invalid \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            index += 1
        }
        return v
    }
}

/// What ``JSONParser/readString(into:)`` does with a string's contents.
protocol JSONStringSink {
    /// Whether the reader checks UTF-8 sequence by sequence as it reads; otherwise `close` does.
    static var checksUTF8AsItReads: Bool { get }
    /// Bytes of the string as they stand in the text, up to an escape or the closing quote (no
    /// quote, backslash or control character); `high`, their bytes or'ed together, is below
    /// 0x80 when all are ASCII (when the reader does not check UTF-8 itself).
    mutating func append(run: UnsafeBufferPointer<UInt8>, high: UInt8)
    /// An escape, decoded.
    mutating func append(escaped: Unicode.Scalar)
    /// The closing quote: false when the contents are not UTF-8.
    mutating func close() -> Bool
}

/// Builds the string: the text as it stands when it has no escape, else the bytes with the
/// escapes decoded; UTF-8 is checked once, at the closing quote.
struct JSONStringBuilder: JSONStringSink {
    static var checksUTF8AsItReads: Bool { false }
    private var plain = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
    private var high: UInt8 = 0
    private var escaped = false
    private var decoded: [UInt8] = []
    private(set) var value = ""

    @inline(__always)
    mutating func append(run: UnsafeBufferPointer<UInt8>, high: UInt8) {
        if escaped {
            decoded.append(contentsOf: run)
        } else {
            plain = run
            self.high = high
        }
    }

    @inline(__always)
    mutating func append(escaped scalar: Unicode.Scalar) {
        if !escaped {
            escaped = true
            decoded = Array(plain)
        }
        UTF8.encode(scalar) { decoded.append($0) }
    }

    @inline(__always)
    mutating func close() -> Bool {
        if !escaped, high < 0x80 {
            // ASCII is valid UTF-8 as it is (String(validating:) is generic at run time).
            value = String(decoding: plain, as: UTF8.self)
            return true
        }
        guard let s = escaped ? String(validating: decoded, as: UTF8.self) : String(validating: plain, as: UTF8.self) else { return false }
        value = s
        return true
    }
}

/// Keeps nothing: the reader checks the string's UTF-8 as it goes.
struct JSONStringCheck: JSONStringSink {
    static var checksUTF8AsItReads: Bool { true }
    @inline(__always) mutating func append(run: UnsafeBufferPointer<UInt8>, high: UInt8) {}
    @inline(__always) mutating func append(escaped: Unicode.Scalar) {}
    @inline(__always) mutating func close() -> Bool { true }
}
