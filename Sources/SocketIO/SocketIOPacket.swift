import SIOCore

/// Socket.IO v5 packet types.
enum SocketIOPacketType: UInt8, Sendable {
    case connect = 0, disconnect, event, ack, connectError, binaryEvent, binaryAck
}

/// One Socket.IO packet: `<type>[<attachments>-][<nsp>,][<ackId>][<JSON>]`.
/// In a decoded binary packet, `data` still holds `{"_placeholder":true,"num":n}` objects until the
/// attachments are filled in by ``SocketIOBinaryAssembler``.
struct SocketIOPacket: Equatable, Sendable {
    var type: SocketIOPacketType
    var namespace: String
    var id: Int?
    var data: JSONValue?
    var attachmentCount: Int
    /// An EVENT decoded with `lazyEvents`: its checked JSON list (`[name, args…]`), with `data` nil.
    var eventText: JSONListText?

    init(_ type: SocketIOPacketType, namespace: String = "/", id: Int? = nil, data: JSONValue? = nil, attachmentCount: Int = 0) {
        self.type = type
        self.namespace = namespace
        self.id = id
        self.data = data
        self.attachmentCount = attachmentCount
    }
}

/// Why a Socket.IO packet could not be read.
struct SocketIOParseError: Error, Equatable, CustomStringConvertible {
    var message: String
    var description: String { "malformed Socket.IO packet: \(message)" }
}

/// The encoded form of a packet: the text (without the Engine.IO `4`) and the binary attachments.
struct EncodedSocketIOPacket: Sendable {
    var text: [UInt8]
    var attachments: [[UInt8]]
}

enum SocketIOCodec {
    static let maxAttachments = 10_000
    static let maxAckIdDigits = 15

    /// Encodes `packet`. Bytes anywhere in `data` turn EVENT/ACK into BINARY_EVENT/BINARY_ACK, with
    /// placeholders numbered depth-first. `prefix` is prepended to the text (the Engine.IO `4`).
    static func encode(_ packet: SocketIOPacket, prefix: UInt8? = nil) -> EncodedSocketIOPacket {
        var type = packet.type
        var attachments: [[UInt8]] = []
        var data = packet.data
        if let d = data, d.containsBinary {
            data = extractBinary(d, into: &attachments)
            if type == .event { type = .binaryEvent }
            if type == .ack { type = .binaryAck }
        }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        if let prefix { out.append(prefix) }
        out.append(UInt8(ascii: "0") + type.rawValue)
        if type == .binaryEvent || type == .binaryAck {
            out.append(contentsOf: String(attachments.count).utf8)
            out.append(UInt8(ascii: "-"))
        }
        if packet.namespace != "/" && !packet.namespace.isEmpty {
            out.append(contentsOf: packet.namespace.utf8)
            out.append(UInt8(ascii: ","))
        }
        if let id = packet.id { out.append(contentsOf: String(id).utf8) }
        data?.write(into: &out)
        return EncodedSocketIOPacket(text: out, attachments: attachments)
    }

    /// The EVENT `[name, args…]`, as ``encode(_:prefix:)`` encodes it, written straight from
    /// its parts (no list built first). Arguments holding bytes take ``encode(_:prefix:)``.
    static func encodeEvent(_ name: String, _ args: [JSONValue], namespace: String, id: Int?, prefix: UInt8? = nil) -> EncodedSocketIOPacket {
        for a in args where a.containsBinary {
            var data: [JSONValue] = [.string(name)]
            data.append(contentsOf: args)
            return encode(SocketIOPacket(.event, namespace: namespace, id: id, data: .array(data)), prefix: prefix)
        }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        if let prefix { out.append(prefix) }
        out.append(UInt8(ascii: "0") + SocketIOPacketType.event.rawValue)
        if namespace != "/" && !namespace.isEmpty {
            out.append(contentsOf: namespace.utf8)
            out.append(UInt8(ascii: ","))
        }
        if let id { out.append(contentsOf: String(id).utf8) }
        out.append(UInt8(ascii: "["))
        JSONValue.writeString(name, into: &out)
        for a in args {
            out.append(UInt8(ascii: ","))
            a.write(into: &out)
        }
        out.append(UInt8(ascii: "]"))
        return EncodedSocketIOPacket(text: out, attachments: [])
    }

    static func extractBinary(_ value: JSONValue, into attachments: inout [[UInt8]]) -> JSONValue {
        switch value {
        case .binary(let bytes):
            attachments.append(bytes)
            return ["_placeholder": true, "num": .number(Double(attachments.count - 1))]
        case .array(let a):
            return .array(a.map { extractBinary($0, into: &attachments) })
        case .object(let o):
            var out = o  // same keys, same order
            for (k, v) in o { out[k] = extractBinary(v, into: &attachments) }
            return .object(out)
        default:
            return value
        }
    }

    /// Decodes the text of a packet (after the Engine.IO `4`). Checks the payload shape per type.
    /// With `keeping` (the array `bytes` points into), an EVENT's JSON is checked, not decoded:
    /// the packet gets `eventText` (sharing the array) instead of `data`; it accepts and rejects
    /// exactly the packets the full decoding does.
    static func decode(_ bytes: UnsafeRawBufferPointer, keeping storage: [UInt8]? = nil) throws(SocketIOParseError) -> SocketIOPacket {
        let count = bytes.count
        guard count > 0 else { throw SocketIOParseError(message: "empty packet") }
        guard let type = SocketIOPacketType(rawValue: bytes[0] &- UInt8(ascii: "0")), bytes[0] >= UInt8(ascii: "0") else {
            throw SocketIOParseError(message: "unknown packet type \(EngineIOCodec.describe(bytes[0]))")
        }
        var i = 1
        var attachments = 0
        if type == .binaryEvent || type == .binaryAck {
            let start = i
            while i < count, isDigit(bytes[i]) {
                attachments = attachments * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                i += 1
                guard attachments <= maxAttachments else { throw SocketIOParseError(message: "too many attachments") }
            }
            guard i > start, i < count, bytes[i] == UInt8(ascii: "-") else {
                throw SocketIOParseError(message: "binary packet without attachment count")
            }
            i += 1
        }
        var namespace = "/"
        if i < count, bytes[i] == UInt8(ascii: "/") {
            let start = i
            while i < count, bytes[i] != UInt8(ascii: ",") { i += 1 }
            guard let ns = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self) else {
                throw SocketIOParseError(message: "namespace is not UTF-8")
            }
            namespace = ns
            if i < count { i += 1 }  // the comma
        }
        var id: Int?
        if i < count, isDigit(bytes[i]) {
            let start = i
            var n = 0
            while i < count, isDigit(bytes[i]) {
                guard i - start < maxAckIdDigits else { throw SocketIOParseError(message: "ack id too long") }
                n = n * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                i += 1
            }
            id = n
        }
        var data: JSONValue?
        if let storage, type == .event, i < count, storage.count == count {
            var j = i
            while j < count, bytes[j] == 0x20 || bytes[j] == 0x09 || bytes[j] == 0x0A || bytes[j] == 0x0D { j += 1 }
            if j < count, bytes[j] == UInt8(ascii: "[") {
                let list: JSONListText?
                do {
                    list = try JSONListText.checking(storage, from: i)
                } catch {
                    throw SocketIOParseError(message: "invalid JSON payload (\(error))")
                }
                if let list {
                    guard list.count > 0 else { throw SocketIOParseError(message: "EVENT payload is not a non-empty array") }
                    let first = storage[list.start + 1 ..< list.end].first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
                    guard let first, first == UInt8(ascii: "\"") || first == UInt8(ascii: "-") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else {
                        throw SocketIOParseError(message: "EVENT name is not a string")
                    }
                    var packet = SocketIOPacket(type, namespace: namespace, id: id, data: nil, attachmentCount: attachments)
                    packet.eventText = list
                    return packet
                }
            }
        }
        if i < count {
            let rest = UnsafeBufferPointer(rebasing: bytes.bindMemory(to: UInt8.self)[i...])
            do {
                data = try JSONValue(parsing: rest)
            } catch {
                throw SocketIOParseError(message: "invalid JSON payload (\(error))")
            }
        }
        let packet = SocketIOPacket(type, namespace: namespace, id: id, data: data, attachmentCount: attachments)
        try validate(packet)
        return packet
    }

    static func decode(_ bytes: [UInt8]) throws(SocketIOParseError) -> SocketIOPacket {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(SocketIOParseError) in try decode(buffer) }
        }
        return try result.get()
    }

    static func decode(_ text: String) throws(SocketIOParseError) -> SocketIOPacket {
        try decode(Array(text.utf8))
    }

    static func validate(_ packet: SocketIOPacket) throws(SocketIOParseError) {
        switch packet.type {
        case .connect:
            if let d = packet.data, d.objectValue == nil {
                throw SocketIOParseError(message: "CONNECT payload is not an object")
            }
        case .disconnect:
            if packet.data != nil { throw SocketIOParseError(message: "DISCONNECT with a payload") }
        case .event, .binaryEvent:
            guard let args = packet.data?.arrayValue, let first = args.first else {
                throw SocketIOParseError(message: "EVENT payload is not a non-empty array")
            }
            guard first.stringValue != nil || first.numberValue != nil else {
                throw SocketIOParseError(message: "EVENT name is not a string")
            }
        case .ack, .binaryAck:
            guard packet.id != nil else { throw SocketIOParseError(message: "ACK without an id") }
            guard packet.data?.arrayValue != nil else { throw SocketIOParseError(message: "ACK payload is not an array") }
        case .connectError:
            guard let d = packet.data, d.objectValue != nil || d.stringValue != nil else {
                throw SocketIOParseError(message: "CONNECT_ERROR payload is neither an object nor a string")
            }
        }
    }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}

/// Collects the binary attachments that follow a BINARY_EVENT/BINARY_ACK header and substitutes
/// the placeholders.
struct SocketIOBinaryAssembler {
    private var packet: SocketIOPacket?
    private var buffers: [[UInt8]] = []
    private var bytes = 0
    /// The most bytes the attachments of one packet may hold together.
    var byteLimit = 1_000_000

    /// Kept apart from `packet` so that asking, once per packet received, copies nothing.
    private(set) var isAssembling = false

    /// Starts a binary packet; returns it at once when it has no attachments.
    mutating func start(_ packet: SocketIOPacket) throws(SocketIOParseError) -> SocketIOPacket? {
        if packet.attachmentCount == 0 {
            return try Self.fill(packet, with: [])
        }
        self.packet = packet
        isAssembling = true
        self.buffers = []
        buffers.reserveCapacity(packet.attachmentCount)
        return nil
    }

    /// Adds one attachment; returns the complete packet after the last one.
    mutating func add(_ bytes: [UInt8]) throws(SocketIOParseError) -> SocketIOPacket? {
        guard let p = packet else { throw SocketIOParseError(message: "binary data without a binary packet") }
        self.bytes &+= bytes.count
        guard self.bytes <= byteLimit else {
            reset()
            throw SocketIOParseError(message: "the attachments exceed \(byteLimit) bytes")
        }
        buffers.append(bytes)
        guard buffers.count == p.attachmentCount else { return nil }
        defer { reset() }
        return try Self.fill(p, with: buffers)
    }

    mutating func reset() {
        packet = nil
        isAssembling = false
        buffers = []
        bytes = 0
    }

    static func fill(_ packet: SocketIOPacket, with buffers: [[UInt8]]) throws(SocketIOParseError) -> SocketIOPacket {
        var p = packet
        var used = [Bool](repeating: false, count: buffers.count)
        if let d = packet.data { p.data = try substitute(d, buffers, used: &used) }
        p.type = packet.type == .binaryEvent ? .event : .ack
        p.attachmentCount = 0
        return p
    }

    /// Replaces each placeholder by its attachment. Each attachment may be named once: a second
    /// reference is an error (one attachment named 30,000 times would be copied 30,000 times).
    static func substitute(_ value: JSONValue, _ buffers: [[UInt8]], used: inout [Bool]) throws(SocketIOParseError) -> JSONValue {
        switch value {
        case .array(let a):
            var out: [JSONValue] = []
            out.reserveCapacity(a.count)
            for v in a { out.append(try substitute(v, buffers, used: &used)) }
            return .array(out)
        case .object(let o):
            if o.count == 2, o["_placeholder"] == .bool(true), let n = o["num"]?.numberValue {
                guard n >= 0, n < Double(buffers.count), n == n.rounded() else {
                    throw SocketIOParseError(message: "placeholder \(n) out of range")
                }
                let i = Int(n)
                guard !used[i] else { throw SocketIOParseError(message: "placeholder \(i) used more than once") }
                used[i] = true
                return .binary(buffers[i])
            }
            var out = o  // same keys, same order
            for (k, v) in o { out[k] = try substitute(v, buffers, used: &used) }
            return .object(out)
        default:
            return value
        }
    }
}
