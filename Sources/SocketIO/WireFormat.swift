import SIOCore

/// The client's own encoders and decoders, for a peer inside the package that is not the NIO
/// client: the deterministic simulation's server, and its shell around ``ClientStateMachine`` and
/// ``EngineStateMachine``. Each member calls the codec the client uses (nothing is re-implemented
/// here), so the simulation speaks exactly the client's wire format, Engine.IO 3 or 4.
package enum WireFormat {
    /// One Engine.IO packet: its type and payload (text bytes, or raw bytes when `isBinary`).
    package struct EnginePacket: Equatable, Sendable {
        package var type: EngineIOPacketType
        package var payload: [UInt8]
        package var isBinary: Bool

        package init(_ type: EngineIOPacketType, _ payload: [UInt8] = [], isBinary: Bool = false) {
            self.type = type
            self.payload = payload
            self.isBinary = isBinary
        }

        init(_ packet: EngineIOPacket) { self.init(packet.type, packet.payload, isBinary: packet.isBinary) }
        var packet: EngineIOPacket { EngineIOPacket(type, payload, isBinary: isBinary) }
    }

    /// A text WebSocket message: the type digit, then the payload.
    package static func encodeFrame(_ packet: EnginePacket) -> [UInt8] {
        var out: [UInt8] = []
        EngineIOCodec.encodeText(packet.packet, into: &out)
        return out
    }

    package static func decodeFrame(_ bytes: [UInt8]) throws -> EnginePacket {
        EnginePacket(try EngineIOCodec.decodeText(bytes))
    }

    /// A long-polling body of several packets: `\x1e`-separated records (Engine.IO 4) or
    /// `<length>:<packet>` records (Engine.IO 3).
    package static func encodePayload(_ packets: [EnginePacket], revision: EngineIORevision) -> [UInt8] {
        let packets = packets.map(\.packet)
        return revision == .eio3 ? EngineIO3Codec.encodePayload(packets) : EngineIOCodec.encodePayload(packets)
    }

    package static func decodePayload(_ bytes: [UInt8], revision: EngineIORevision) throws -> [EnginePacket] {
        let packets = revision == .eio3 ? try EngineIO3Codec.decodePayload(bytes) : try EngineIOCodec.decodePayload(bytes)
        return packets.map(EnginePacket.init)
    }

    /// Reads an open packet's payload as the client does; `pingInterval` in milliseconds.
    package static func handshake(_ payload: [UInt8]) throws -> (handshake: EngineIOHandshake, pingInterval: Int) {
        let h = try EngineIOHandshake(payload: payload)
        return (h, h.pingInterval)
    }

    /// Socket.IO packet types.
    package enum Kind: Sendable, Equatable {
        case connect, disconnect, event, ack, connectError
    }

    /// One Socket.IO packet without binary attachments.
    package struct Packet: Sendable, Equatable {
        package var kind: Kind
        package var namespace: String
        package var id: Int?
        package var data: JSONValue?

        package init(_ kind: Kind, namespace: String = "/", id: Int? = nil, data: JSONValue? = nil) {
            self.kind = kind
            self.namespace = namespace
            self.id = id
            self.data = data
        }
    }

    /// A Socket.IO packet as the payload of an Engine.IO message (the text after the `4`), as
    /// the client encodes its emits, acks and DISCONNECTs (and as servers encode theirs).
    package static func encode(_ packet: Packet) -> [UInt8] {
        let type: SocketIOPacketType =
            switch packet.kind {
            case .connect: .connect
            case .disconnect: .disconnect
            case .event: .event
            case .ack: .ack
            case .connectError: .connectError
            }
        return SocketIOCodec.encode(SocketIOPacket(type, namespace: packet.namespace, id: packet.id, data: packet.data)).text
    }

    /// The namespace CONNECT as the client sends it: Socket.IO v2 carries no payload (the auth
    /// rides as a query after the namespace).
    package static func encodeConnect(namespace: String, auth: JSONValue?, revision: EngineIORevision) -> [UInt8] {
        if revision == .eio3 {
            return namespace == "/" ? Array("0".utf8) : SocketIO2.connectPacket(namespace: namespace, auth: auth)
        }
        return encode(Packet(.connect, namespace: namespace, data: auth))
    }

    /// Reads the Socket.IO packet in an Engine.IO message's payload (after the `4`) as the client does (a v2
    /// ERROR packet with a list or no payload too). Binary packets are not read here.
    package static func decode(_ payload: [UInt8], revision: EngineIORevision) throws -> Packet {
        let decoded: SocketIOPacket
        do {
            decoded = try SocketIOCodec.decode(payload)
        } catch {
            guard revision == .eio3, let legacy = SocketIO2.decodeError(payload) else { throw error }
            decoded = legacy
        }
        let kind: Kind
        switch decoded.type {
        case .connect: kind = .connect
        case .disconnect: kind = .disconnect
        case .event: kind = .event
        case .ack: kind = .ack
        case .connectError: kind = .connectError
        case .binaryEvent, .binaryAck: throw SocketIOParseError(message: "binary packets are not read here")
        }
        // Socket.IO v2 CONNECT carries the auth query after the namespace: `/devices?token=1`.
        var namespace = decoded.namespace
        if let q = namespace.firstIndex(of: "?") { namespace = String(namespace[..<q]) }
        return Packet(kind, namespace: namespace, id: decoded.id, data: decoded.data)
    }

    /// The message and data of a CONNECT_ERROR payload, as the client reads them.
    package static func refusal(_ payload: JSONValue?) -> (message: String, data: JSONValue?) {
        SocketIO2.refusal(payload)
    }
}
