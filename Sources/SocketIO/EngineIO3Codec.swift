import SIOCore

/// Engine.IO 3 wire formats, where they differ from revision 4 (``EngineIOCodec``).
///
/// Polling payloads are length-prefixed instead of separated by `\x1e`, in one of two framings:
/// - text: `<length>:<packet>` records, the length counted in UTF-16 code units as the JavaScript
///   implementation counts them (`6:4hello2:4€`); binary packets as `b4<base64>` (the `4` is the
///   packet type). A server uses it when the client sends `b64=1`, as this client does.
/// - binary ("XHR2"): per record a `0` (text) or `1` (binary) byte, the length as decimal digit
///   bytes (0-9), `0xFF`, then the packet; a binary packet starts with its type byte. python-engineio
///   3.x answers in this framing when `b64` is absent; it is read too.
///
/// python-engineio 3.14.2 does not count lengths the JavaScript way: it writes UTF-8 byte counts
/// (`payload.py`: `len()` of the encoded bytes) and reads code points (`len()` of the decoded
/// `str`). The three counts agree on ASCII, so the encoder writes JSON with every non-ASCII
/// character escaped as `\uXXXX` (python-engineio's own JSON is ASCII too), and the decoder, when
/// the UTF-16 count does not end on a record boundary, tries the UTF-8 count, then code points.
///
/// Over WebSocket, a binary frame starts with the packet type byte (`0x04` for a message).
enum EngineIO3Codec {
    /// Longer length prefixes are refused (a record can never be that large).
    static let maxLengthDigits = 10

    // MARK: Decoding

    /// Decodes a polling payload in either framing (the first byte tells which). An empty body
    /// holds no packets.
    static func decodePayload(_ bytes: UnsafeRawBufferPointer) throws(EngineIOParseError) -> [EngineIOPacket] {
        guard let first = bytes.first else { return [] }
        return first <= 1 ? try decodeBinaryPayload(bytes) : try decodeTextPayload(bytes)
    }

    static func decodePayload(_ bytes: [UInt8]) throws(EngineIOParseError) -> [EngineIOPacket] {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(EngineIOParseError) in try decodePayload(buffer) }
        }
        return try result.get()
    }

    /// `<length>:<packet>` records.
    static func decodeTextPayload(_ bytes: UnsafeRawBufferPointer) throws(EngineIOParseError) -> [EngineIOPacket] {
        var packets: [EngineIOPacket] = []
        let count = bytes.count
        var i = 0
        while i < count {
            var length = 0
            var digits = 0
            while i < count, bytes[i] != UInt8(ascii: ":") {
                guard isDigit(bytes[i]) else {
                    throw EngineIOParseError(message: "expected a record length, found \(EngineIOCodec.describe(bytes[i]))")
                }
                digits += 1
                guard digits <= maxLengthDigits else { throw EngineIOParseError(message: "record length too long") }
                length = length * 10 + Int(bytes[i] &- UInt8(ascii: "0"))
                i += 1
            }
            guard digits > 0, i < count else { throw EngineIOParseError(message: "record without a length") }
            i += 1  // the colon
            guard let end = recordEnd(bytes, start: i, length: length) else {
                throw EngineIOParseError(message: "record length \(length) does not match the data")
            }
            if end > i {
                packets.append(try decodeTextRecord(UnsafeRawBufferPointer(rebasing: bytes[i..<end])))
            }
            i = end
        }
        return packets
    }

    /// One record of the text framing: a text packet, or `b<type><base64>`.
    static func decodeTextRecord(_ record: UnsafeRawBufferPointer) throws(EngineIOParseError) -> EngineIOPacket {
        guard record.first == UInt8(ascii: "b") else { return try EngineIOCodec.decodeText(record) }
        guard record.count >= 2, let type = packetType(digit: record[1]) else {
            throw EngineIOParseError(message: "binary record without a packet type")
        }
        guard let data = Base64.decode(bytes: UnsafeRawBufferPointer(rebasing: record[2...])) else {
            throw EngineIOParseError(message: "invalid base64 in binary packet")
        }
        return EngineIOPacket(type, data, isBinary: true)
    }

    /// How the units of a length prefix are counted.
    enum LengthUnit: CaseIterable {
        case utf16, utf8, scalars
    }

    /// The end of a record of `length` units starting at `start`: the first unit count (UTF-16,
    /// then UTF-8 bytes, then code points) that ends at the end of the payload or before another
    /// `<digits>:`. Nil when none does.
    static func recordEnd(_ bytes: UnsafeRawBufferPointer, start: Int, length: Int) -> Int? {
        var tried: [Int] = []
        for unit in LengthUnit.allCases {
            guard let end = advance(bytes, from: start, by: length, unit), !tried.contains(end) else { continue }
            if end == bytes.count || startsRecord(bytes, at: end) { return end }
            tried.append(end)
        }
        return nil
    }

    /// The index `length` units after `start`, or nil when the data ends first or the count ends
    /// inside a character.
    static func advance(_ bytes: UnsafeRawBufferPointer, from start: Int, by length: Int, _ unit: LengthUnit) -> Int? {
        let count = bytes.count
        if unit == .utf8 { return length <= count - start ? start + length : nil }
        var i = start
        var remaining = length
        while remaining > 0 {
            guard i < count else { return nil }
            let size = min(sequenceLength(lead: bytes[i]), count - i)
            let units = unit == .utf16 && size == 4 ? 2 : 1
            guard units <= remaining else { return nil }
            remaining -= units
            i += size
        }
        return i
    }

    /// The bytes of the UTF-8 sequence a lead byte starts; a byte that cannot lead one (a stray
    /// continuation byte, 0xF8...0xFF) counts as a character of its own, so malformed text is
    /// counted the same way when it is written and when it is read.
    @inline(__always)
    static func sequenceLength(lead b: UInt8) -> Int {
        switch b {
        case 0xC0..<0xE0: 2
        case 0xE0..<0xF0: 3
        case 0xF0..<0xF8: 4
        default: 1
        }
    }

    /// Whether `<digits>:` starts at `index`.
    static func startsRecord(_ bytes: UnsafeRawBufferPointer, at index: Int) -> Bool {
        var i = index
        while i < bytes.count, i - index <= maxLengthDigits, isDigit(bytes[i]) { i += 1 }
        return i > index && i < bytes.count && bytes[i] == UInt8(ascii: ":")
    }

    /// The binary ("XHR2") framing.
    static func decodeBinaryPayload(_ bytes: UnsafeRawBufferPointer) throws(EngineIOParseError) -> [EngineIOPacket] {
        var packets: [EngineIOPacket] = []
        let count = bytes.count
        var i = 0
        while i < count {
            let isBinary = bytes[i] == 1
            guard bytes[i] <= 1 else { throw EngineIOParseError(message: "binary payload record of unknown kind \(bytes[i])") }
            i += 1
            var length = 0
            var digits = 0
            while i < count, bytes[i] != 0xFF {
                guard bytes[i] <= 9 else { throw EngineIOParseError(message: "bad length digit in a binary payload") }
                digits += 1
                guard digits <= maxLengthDigits else { throw EngineIOParseError(message: "record length too long") }
                length = length * 10 + Int(bytes[i])
                i += 1
            }
            guard digits > 0, i < count else { throw EngineIOParseError(message: "record without a length") }
            i += 1  // 0xFF
            guard length <= count - i else { throw EngineIOParseError(message: "truncated binary payload") }
            let record = UnsafeRawBufferPointer(rebasing: bytes[i..<(i + length)])
            i += length
            guard let first = record.first else { continue }
            if isBinary {
                guard let type = EngineIOPacketType(rawValue: first) else {
                    throw EngineIOParseError(message: "binary packet of unknown type \(first)")
                }
                packets.append(EngineIOPacket(type, Array(record[1...]), isBinary: true))
            } else {
                packets.append(try EngineIOCodec.decodeText(record))
            }
        }
        return packets
    }

    /// A binary WebSocket frame: the packet type byte, then the data.
    static func decodeWebSocketBinary(_ bytes: UnsafeRawBufferPointer) throws(EngineIOParseError) -> EngineIOPacket {
        guard let first = bytes.first, let type = EngineIOPacketType(rawValue: first) else {
            throw EngineIOParseError(message: "binary frame without a packet type")
        }
        return EngineIOPacket(type, Array(bytes[1...]), isBinary: true)
    }

    static func decodeWebSocketBinary(_ bytes: [UInt8]) throws(EngineIOParseError) -> EngineIOPacket {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(EngineIOParseError) in try decodeWebSocketBinary(buffer) }
        }
        return try result.get()
    }

    // MARK: Encoding

    /// Appends one record of the text framing. `bytes` is an encoded text packet (type digit
    /// included) or, when `isBinary`, the data of a binary message.
    static func appendPayloadRecord(_ bytes: [UInt8], isBinary: Bool, into out: inout [UInt8]) {
        if isBinary {
            let encodedCount = (bytes.count + 2) / 3 * 4
            out.append(contentsOf: String(encodedCount + 2).utf8)
            out.append(contentsOf: [UInt8(ascii: ":"), UInt8(ascii: "b"), UInt8(ascii: "4")])
            Base64.encode(bytes, into: &out)
        } else {
            let text = escapingNonASCIIJSON(bytes)
            out.append(contentsOf: String(utf16Count(text)).utf8)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: text)
        }
    }

    /// Encodes packets as one text-framed polling payload.
    static func encodePayload(_ packets: [EngineIOPacket]) -> [UInt8] {
        var out: [UInt8] = []
        for packet in packets {
            if packet.isBinary {
                appendPayloadRecord(packet.payload, isBinary: true, into: &out)
            } else {
                var text: [UInt8] = []
                EngineIOCodec.encodeText(packet, into: &text)
                appendPayloadRecord(text, isBinary: false, into: &out)
            }
        }
        return out
    }

    /// A binary WebSocket frame for message data: `0x04`, then the data.
    static func webSocketBinaryFrame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 1)
        out.append(EngineIOPacketType.message.rawValue)
        out.append(contentsOf: data)
        return out
    }

    /// UTF-16 code units of UTF-8 text (a 4-byte sequence counts 2), stepping through the bytes
    /// as the decoder does.
    static func utf16Count(_ bytes: [UInt8]) -> Int {
        var n = 0
        var i = 0
        while i < bytes.count {
            let size = min(sequenceLength(lead: bytes[i]), bytes.count - i)
            n += size == 4 ? 2 : 1
            i += size
        }
        return n
    }

    /// A text packet with the non-ASCII characters of its Socket.IO JSON payload written as
    /// `\uXXXX` escapes (JSON text outside strings is ASCII, so escaping every non-ASCII character
    /// after the packet header is exact). Other packets, and ASCII ones, are returned unchanged.
    static func escapingNonASCIIJSON(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.contains(where: { $0 >= 0x80 }), let start = socketIOPayloadStart(bytes) else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16)
        out.append(contentsOf: bytes[..<start])
        let hex = Array("0123456789abcdef".utf8)
        func escape(_ unit: UInt16) {
            out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u")])
            for shift in stride(from: 12, through: 0, by: -4) { out.append(hex[Int((unit >> UInt16(shift)) & 0xF)]) }
        }
        var iterator = bytes[start...].makeIterator()
        var decoder = UTF8()
        decoding: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                if scalar.value < 0x80 {
                    out.append(UInt8(scalar.value))
                } else {
                    for unit in String(scalar).utf16 { escape(unit) }
                }
            case .emptyInput:
                break decoding
            case .error:
                return bytes  // not UTF-8: leave it as it is
            }
        }
        return out
    }

    /// Where the JSON of an Engine.IO message carrying a Socket.IO packet starts
    /// (`4` `<type>` [`<n>-`] [`/nsp,`] [`<ack id>`]); nil for other packets.
    static func socketIOPayloadStart(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "4"), isDigit(bytes[1]) else { return nil }
        var i = 2
        if bytes[1] == UInt8(ascii: "5") || bytes[1] == UInt8(ascii: "6") {
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
            guard i < bytes.count, bytes[i] == UInt8(ascii: "-") else { return nil }
            i += 1
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "/") {
            while i < bytes.count, bytes[i] != UInt8(ascii: ",") { i += 1 }
            guard i < bytes.count else { return nil }
            i += 1
        }
        while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        return i
    }

    // MARK: Version negotiation

    /// Whether an HTTP answer to a handshake is the server refusing the Engine.IO revision that
    /// was sent: python-engineio's 400 "unsupported version of the Socket.IO or Engine.IO
    /// protocols", or engine.io's 400 `{"code":5,"message":"Unsupported protocol version"}`.
    static func isUnsupportedVersionAnswer(status: Int, body: String) -> Bool {
        guard status == 400 else { return false }
        let text = body.lowercased()
        if text.contains(text: "unsupported version") || text.contains(text: "unsupported protocol version") { return true }
        if let value = try? JSONValue(parsing: Array(body.utf8)), value["code"]?.numberValue == 5 { return true }
        return false
    }

    // MARK: Helpers

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    static func packetType(digit: UInt8) -> EngineIOPacketType? {
        guard isDigit(digit) else { return nil }
        return EngineIOPacketType(rawValue: digit &- UInt8(ascii: "0"))
    }
}

/// Socket.IO v2 (protocol revision 4), where it differs from v5: `/` is connected by the server
/// without a CONNECT from the client; CONNECT carries no payload, so auth travels as query
/// parameters; the server's CONNECT reply has no sid; ERROR payloads are strings, objects, lists or
/// absent.
enum SocketIO2 {
    /// An auth object as query parameters: strings as they are, other values as JSON text.
    static func queryParameters(_ auth: JSONValue?) -> [(name: String, value: String)] {
        guard case .object(let members)? = auth else { return [] }
        return members.map { key, value in
            switch value {
            case .string(let s): (key, s)
            case .null: (key, "")
            default: (key, value.jsonString())
            }
        }
    }

    /// The query string for auth parameters, percent-encoded (`token=abc&n=1`), or empty.
    static func queryString(_ parameters: [(name: String, value: String)]) -> String {
        parameters.map { percentEncodeQuery($0.name) + "=" + percentEncodeQuery($0.value) }.joined(separator: "&")
    }

    /// CONNECT for a namespace other than `/`, as socket.io-client 2.x writes it: the auth as a
    /// query after the namespace, then a comma (`0/admin?token=abc,`). `prefix` goes first (the
    /// Engine.IO `4`).
    static func connectPacket(namespace: String, auth: JSONValue?, prefix: UInt8? = nil) -> [UInt8] {
        var out: [UInt8] = []
        if let prefix { out.append(prefix) }
        out.append(UInt8(ascii: "0"))
        out.append(contentsOf: namespace.utf8)
        let query = queryString(queryParameters(auth))
        if !query.isEmpty {
            out.append(UInt8(ascii: "?"))
            out.append(contentsOf: query.utf8)
        }
        out.append(UInt8(ascii: ","))
        return out
    }

    /// An ERROR (CONNECT_ERROR) packet as v2 servers send it, with any payload or none (the v5
    /// decoder refuses a list or a missing payload). `bytes` is the Socket.IO text (after the
    /// Engine.IO `4`); nil when it is not an ERROR packet. A payload that is not JSON is kept as text.
    static func decodeError(_ bytes: [UInt8]) -> SocketIOPacket? {
        guard bytes.first == UInt8(ascii: "4") else { return nil }
        var i = 1
        var namespace = "/"
        if i < bytes.count, bytes[i] == UInt8(ascii: "/") {
            let start = i
            while i < bytes.count, bytes[i] != UInt8(ascii: ",") { i += 1 }
            var name = String(decoding: bytes[start..<i], as: UTF8.self)
            if let q = name.firstIndex(of: "?") { name = String(name[..<q]) }
            namespace = name
            if i < bytes.count { i += 1 }
        }
        var data: JSONValue?
        if i < bytes.count {
            let rest = Array(bytes[i...])
            data = (try? JSONValue(parsing: rest)) ?? .string(String(decoding: rest, as: UTF8.self))
        }
        return SocketIOPacket(.connectError, namespace: namespace, data: data)
    }

    /// The message and extra data of a refusal: an ERROR (CONNECT_ERROR) payload, or the JSON
    /// body of a 401 answer to the handshake (python-socketio 4.x refusing `/`). Accepts a string,
    /// an object with `message` (and `data`), a list (python's tuple of arguments: the first string
    /// is the message, the rest the data) or nothing.
    static func refusal(_ payload: JSONValue?) -> (message: String, data: JSONValue?) {
        switch payload {
        case .string(let s)?:
            return (s, nil)
        case .object(let o)?:
            if let m = o["message"]?.stringValue { return (m, o["data"]) }
            return ("refused", payload)
        case .array(let a)?:
            guard let i = a.firstIndex(where: { $0.stringValue != nil }), let m = a[i].stringValue else {
                return ("refused", payload)
            }
            var rest = a
            rest.remove(at: i)
            return (m, rest.isEmpty ? nil : rest.count == 1 ? rest[0] : .array(rest))
        case nil, .null?:
            return ("refused", nil)
        case let other?:
            return ("refused", other)
        }
    }
}
