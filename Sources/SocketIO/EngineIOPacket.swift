import SIOCore

/// Engine.IO v4 packet types (one ASCII digit on the wire).
package enum EngineIOPacketType: UInt8, Sendable {
    case open = 0, close, ping, pong, message, upgrade, noop
}

/// One Engine.IO packet. Text payloads are UTF-8 bytes; a binary `message` carries raw bytes.
struct EngineIOPacket: Equatable, Sendable {
    var type: EngineIOPacketType
    var payload: [UInt8]
    var isBinary: Bool

    init(_ type: EngineIOPacketType, _ payload: [UInt8] = [], isBinary: Bool = false) {
        self.type = type
        self.payload = payload
        self.isBinary = isBinary
    }

    static func text(_ type: EngineIOPacketType, _ text: String) -> EngineIOPacket {
        EngineIOPacket(type, Array(text.utf8))
    }

    static func binaryMessage(_ bytes: [UInt8]) -> EngineIOPacket {
        EngineIOPacket(.message, bytes, isBinary: true)
    }
}

/// Why Engine.IO input could not be read.
struct EngineIOParseError: Error, Equatable, CustomStringConvertible {
    var message: String
    var description: String { "malformed Engine.IO data: \(message)" }
}

/// Encoding and decoding of Engine.IO packets and HTTP long-polling payloads.
enum EngineIOCodec {
    static let recordSeparator: UInt8 = 0x1E

    /// Decodes a text packet (a WebSocket text frame, or one record of a polling payload).
    static func decodeText(_ bytes: UnsafeRawBufferPointer) throws(EngineIOParseError) -> EngineIOPacket {
        guard let first = bytes.first else { throw EngineIOParseError(message: "empty packet") }
        guard first >= UInt8(ascii: "0"), let type = EngineIOPacketType(rawValue: first &- UInt8(ascii: "0")) else {
            throw EngineIOParseError(message: "unknown packet type \(Self.describe(first))")
        }
        return EngineIOPacket(type, Array(bytes[1...]))
    }

    static func decodeText(_ bytes: [UInt8]) throws(EngineIOParseError) -> EngineIOPacket {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(EngineIOParseError) in try decodeText(buffer) }
        }
        return try result.get()
    }

    /// Encodes a text packet: the type digit followed by the payload.
    static func encodeText(_ packet: EngineIOPacket, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "0") + packet.type.rawValue)
        out.append(contentsOf: packet.payload)
    }

    /// Decodes an HTTP long-polling payload: records separated by `\x1e`; `b` + base64 is binary.
    static func decodePayload(_ bytes: UnsafeRawBufferPointer) throws(EngineIOParseError) -> [EngineIOPacket] {
        var packets: [EngineIOPacket] = []
        var start = 0
        let count = bytes.count
        if count == 0 { throw EngineIOParseError(message: "empty payload") }
        while start <= count {
            var end = start
            while end < count, bytes[end] != recordSeparator { end += 1 }
            let record = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            if record.first == UInt8(ascii: "b") {
                guard let decoded = Base64.decode(bytes: UnsafeRawBufferPointer(rebasing: record[1...])) else {
                    throw EngineIOParseError(message: "invalid base64 in binary packet")
                }
                packets.append(.binaryMessage(decoded))
            } else {
                packets.append(try decodeText(record))
            }
            start = end + 1
        }
        return packets
    }

    static func decodePayload(_ bytes: [UInt8]) throws(EngineIOParseError) -> [EngineIOPacket] {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(EngineIOParseError) in try decodePayload(buffer) }
        }
        return try result.get()
    }

    /// Appends one packet of a polling payload (binary as `b` + base64).
    static func appendPayloadRecord(_ packet: EngineIOPacket, into out: inout [UInt8]) {
        if !out.isEmpty { out.append(recordSeparator) }
        if packet.isBinary {
            out.append(UInt8(ascii: "b"))
            Base64.encode(packet.payload, into: &out)
        } else {
            encodeText(packet, into: &out)
        }
    }

    /// Encodes packets as one polling payload.
    static func encodePayload(_ packets: [EngineIOPacket]) -> [UInt8] {
        var out: [UInt8] = []
        for packet in packets { appendPayloadRecord(packet, into: &out) }
        return out
    }

    static func describe(_ byte: UInt8) -> String {
        (0x20..<0x7F).contains(byte) ? "'\(Unicode.Scalar(byte))'" : "0x" + String(byte, radix: 16)
    }
}

/// The server's open packet.
package struct EngineIOHandshake: Equatable, Sendable {
    var sid: String
    var upgrades: [String]
    /// Milliseconds.
    var pingInterval: Int
    /// Milliseconds.
    var pingTimeout: Int
    var maxPayload: Int

    package init(sid: String, upgrades: [String], pingInterval: Int, pingTimeout: Int, maxPayload: Int) {
        self.sid = sid
        self.upgrades = upgrades
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.maxPayload = maxPayload
    }

    /// Reads the JSON of an open packet (`0{...}` without the `0`).
    init(payload: [UInt8]) throws(EngineIOParseError) {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: payload)
        } catch {
            throw EngineIOParseError(message: "open packet is not JSON (\(error))")
        }
        guard case .object = value else { throw EngineIOParseError(message: "open packet is not a JSON object") }
        guard let sid = value["sid"]?.stringValue, !sid.isEmpty else {
            throw EngineIOParseError(message: "open packet has no sid")
        }
        self.sid = sid
        self.upgrades = value["upgrades"]?.arrayValue?.compactMap(\.stringValue) ?? []
        /// A non-negative number, clamped to `limit` (so any size converts without a trap).
        func number(_ key: String, _ fallback: Int, limit: Int) throws(EngineIOParseError) -> Int {
            guard let v = value[key] else { return fallback }
            guard let n = v.numberValue, n >= 0 else {
                throw EngineIOParseError(message: "open packet has an invalid \(key)")
            }
            return n >= Double(limit) ? limit : Int(n)
        }
        self.pingInterval = try number("pingInterval", 25_000, limit: Self.maxPingMilliseconds)
        self.pingTimeout = try number("pingTimeout", 20_000, limit: Self.maxPingMilliseconds)
        self.maxPayload = try number("maxPayload", 1_000_000, limit: Int(Int32.max))
    }

    /// pingInterval and pingTimeout above this (5 minutes) are clamped to it, so a dead server is
    /// still noticed within 10 minutes.
    static let maxPingMilliseconds = 300_000

    /// How long the connection may stay silent before it is considered dead
    /// (pingInterval + pingTimeout; never less than a second, so `pingInterval: 0` is tolerated).
    var livenessTimeout: Duration {
        .milliseconds(max(pingInterval + pingTimeout, 1000))
    }
}
