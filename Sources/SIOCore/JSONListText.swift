/// The JSON text of a list, checked once by the strict parser's rules (nesting, numbers, UTF-8,
/// escapes), whose elements are turned into `JSONValue`s only when something reads them.
///
/// An event's arguments arrive as one JSON list; a rule that reads `payload.level` needs one
/// number out of it. The text is kept as received (the array is shared, not copied), so a
/// value read from it is what the strict parser gives for the same bytes, and `values()` is
/// exactly what `JSONValue(parsing:)` gives for the whole list.
public struct JSONListText: Sendable {
    /// The bytes that hold the list (and possibly other text before it: a packet header).
    public let storage: [UInt8]
    /// Where the `[` is.
    public let start: Int
    /// Just after the `]`.
    public let end: Int
    /// How many elements the list has.
    public let count: Int

    /// Checks that `storage[offset...]` is one JSON list, with whitespace around it allowed,
    /// under the same rules as `JSONValue(parsing:)`. Throws the error that parser gives when the
    /// text is not valid JSON; returns nil when it is valid JSON but not a list.
    public static func checking(_ storage: [UInt8], from offset: Int) throws(JSONParseError) -> JSONListText? {
        let result = storage.withUnsafeBufferPointer { all in
            let buffer = UnsafeBufferPointer(rebasing: all[offset...])
            return Result { () throws(JSONParseError) -> (Int, Int, Int)? in
                var scanner = JSONParser(buffer)
                scanner.skipWhitespace()
                let first = scanner.index
                let isList = scanner.index < buffer.count && buffer[scanner.index] == UInt8(ascii: "[")
                var count = 0
                var valid = true
                do {
                    if isList {
                        count = try scanner.checkArray(depth: 0)
                    } else {
                        try scanner.checkValue(depth: 0)
                    }
                } catch {
                    valid = false
                }
                let last = scanner.index
                if valid {
                    scanner.skipWhitespace()
                    valid = scanner.index == buffer.count
                }
                guard valid else {
                    // Rejected: the strict parser says why (and, checked in the fuzz tests, agrees).
                    _ = try JSONValue(parsing: buffer)
                    throw JSONParseError(offset: 0, message: "rejected by the scanner only")
                }
                return isList ? (first, last, count) : nil
            }
        }
        guard let (first, last, count) = try result.get() else { return nil }
        return JSONListText(storage: storage, start: offset + first, end: offset + last, count: count)
    }

    private init(storage: [UInt8], start: Int, end: Int, count: Int) {
        self.storage = storage
        self.start = start
        self.end = end
        self.count = count
    }

    /// Every element, decoded: what `JSONValue(parsing:)` gives for the list.
    public func values() -> [JSONValue] {
        storage.withUnsafeBufferPointer { all in
            guard let list = try? JSONValue(parsing: UnsafeBufferPointer(rebasing: all[start..<end])),
                case .array(let a) = list
            else { return [] }  // unreachable: the text was checked
            return a
        }
    }

    /// Element `i` (0-based; nil when out of range), decoded.
    public func element(_ i: Int) -> JSONValue? {
        guard i >= 0, i < count else { return nil }
        return storage.withUnsafeBufferPointer { all in
            var reader = JSONParser(all)
            reader.index = start
            guard reader.seekElement(i) else { return nil }
            return try? reader.parseValue(depth: 0)
        }
    }

    /// Whether element `i` is a JSON object.
    public func isObject(_ i: Int) -> Bool {
        guard i >= 0, i < count else { return false }
        return storage.withUnsafeBufferPointer { all in
            var reader = JSONParser(all)
            reader.index = start
            return reader.seekElement(i) && all[reader.index] == UInt8(ascii: "{")
        }
    }

    /// The member `name` of element `i`, decoded, when that element is an object that has it
    /// (the last of duplicate keys, as `JSONValue(parsing:)` keeps it); nil otherwise.
    public func member(_ name: String, ofElement i: Int) -> JSONValue? {
        guard i >= 0, i < count else { return nil }
        return storage.withUnsafeBufferPointer { all in
            var reader = JSONParser(all)
            reader.index = start
            guard reader.seekElement(i), all[reader.index] == UInt8(ascii: "{") else { return nil }
            guard let at = reader.lastMember(named: name) else { return nil }
            reader.index = at
            return try? reader.parseValue(depth: 0)
        }
    }
}

extension JSONListText: Equatable {
    /// Equal when the lists hold equal values (as `JSONValue` compares them), whatever the text.
    public static func == (lhs: JSONListText, rhs: JSONListText) -> Bool {
        lhs.count == rhs.count && lhs.values() == rhs.values()
    }
}

// MARK: - Checking without building values

extension JSONParser {
    /// Checks one value as `parseValue` reads it, building nothing; throws where it throws
    /// (the message may differ: callers that need it ask `parseValue`).
    mutating func checkValue(depth: Int) throws(JSONParseError) {
        guard depth < Self.maxDepth else { throw fail("nested too deeply") }
        guard index < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): try checkObject(depth: depth)
        case UInt8(ascii: "["): _ = try checkArray(depth: depth)
        case UInt8(ascii: "\""): try checkString()
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try parseNumber()
        default: throw fail("unexpected character")
        }
    }

    mutating func checkObject(depth: Int) throws(JSONParseError) {
        index += 1  // {
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            try checkString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            try checkValue(depth: depth + 1)
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of input in object") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return
            }
            throw fail("expected ',' or '}'")
        }
    }

    /// Checks a list and returns how many elements it has. At depth 0 the depth check is the
    /// one `checkValue` would have made.
    mutating func checkArray(depth: Int) throws(JSONParseError) -> Int {
        guard depth < Self.maxDepth else { throw fail("nested too deeply") }
        index += 1  // [
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return 0
        }
        var count = 0
        while true {
            skipWhitespace()
            try checkValue(depth: depth + 1)
            count += 1
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of input in list") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return count
            }
            throw fail("expected ',' or ']'")
        }
    }

    /// Checks a string as `parseString` reads it (the same reader), keeping nothing.
    mutating func checkString() throws(JSONParseError) {
        var check = JSONStringCheck()
        try readString(into: &check)
    }

    // MARK: Reading checked text

    /// From the `[` of a checked list, moves to the first byte of element `i`; false when the
    /// list is shorter.
    mutating func seekElement(_ i: Int) -> Bool {
        index += 1  // [
        skipWhitespace()
        if bytes[index] == UInt8(ascii: "]") { return false }
        var n = 0
        while n < i {
            skipChecked()
            skipWhitespace()
            if bytes[index] == UInt8(ascii: "]") { return false }
            index += 1  // ,
            skipWhitespace()
            n += 1
        }
        return true
    }

    /// From the `{` of a checked object, the offset of the value of the last member whose key
    /// equals `name` (as Swift compares strings), or nil.
    mutating func lastMember(named name: String) -> Int? {
        var utf8 = name
        return utf8.withUTF8 { n in
            var ascii = true
            for b in n where b >= 0x80 {
                ascii = false
                break
            }
            return lastMember(named: name, utf8: n, isASCII: ascii)
        }
    }

    private mutating func lastMember(named name: String, utf8 n: UnsafeBufferPointer<UInt8>, isASCII: Bool) -> Int? {
        var found: Int?
        index += 1  // {
        skipWhitespace()
        if bytes[index] == UInt8(ascii: "}") { return nil }
        while true {
            let keyStart = index
            skipChecked()
            let keyEnd = index
            skipWhitespace()
            index += 1  // :
            skipWhitespace()
            if keyMatches(keyStart, keyEnd, name, n, isASCII) { found = index }
            skipChecked()
            skipWhitespace()
            if bytes[index] == UInt8(ascii: "}") { return found }
            index += 1  // ,
            skipWhitespace()
        }
    }

    /// Whether the key text `bytes[start..<end]` (with its quotes) is equal to `name`.
    private func keyMatches(_ start: Int, _ end: Int, _ name: String, _ n: UnsafeBufferPointer<UInt8>, _ isASCII: Bool) -> Bool {
        let first = start + 1, length = end - start - 2
        if isASCII {
            // Plain ASCII keys compare byte for byte. An escape or a non-ASCII byte needs the
            // decoded key: "\u006b" is "k", and U+212A (Kelvin sign) is canonically "K".
            var plainDifference = false
            if length == n.count {
                var i = 0
                while i < length {
                    let b = bytes[first + i]
                    if b == UInt8(ascii: "\\") || b >= 0x80 { break }
                    // The first plain difference decides: what precedes is the same ASCII text.
                    if b != n[i] { plainDifference = true; break }
                    i += 1
                }
                if i == length { return true }
            }
            if plainDifference { return false }
            var special = false
            for k in first..<(first + length) where bytes[k] == UInt8(ascii: "\\") || bytes[k] >= 0x80 {
                special = true
                break
            }
            if !special { return false }
        }
        var reader = JSONParser(bytes)
        reader.index = start
        guard let key = try? reader.parseString() else { return false }
        return key == name
    }

    /// Moves past one value of checked text (no checks).
    mutating func skipChecked() {
        switch bytes[index] {
        case UInt8(ascii: "\""):
            index += 1
            while bytes[index] != UInt8(ascii: "\"") {
                index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
            }
            index += 1
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            repeat {
                switch bytes[index] {
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                    index += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    index += 1
                case UInt8(ascii: "\""):
                    skipChecked()
                default:
                    index += 1
                }
            } while depth > 0
        default:
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), 0x20, 0x09, 0x0A, 0x0D: return
                default: index += 1
                }
            }
        }
    }
}
