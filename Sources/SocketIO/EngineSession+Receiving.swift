import Logging
import NIOCore

/// What the transport delivers: WebSocket messages one packet each, polling bodies several.
extension EngineSession {
    func receiveFrame(_ frame: TransportMessage) {
        switch frame {
        case .text(let buffer):
            let decoded = buffer.withUnsafeReadableBytes { bytes in
                Result { () throws(EngineIOParseError) in try EngineIOCodec.decodeText(bytes) }
            }
            switch decoded {
            case .success(let packet):
                if machine.phase == .opening {
                    guard packet.type == .open else {
                        fail(.parseError, "the first packet was not an open packet")
                        return
                    }
                    _ = opened(packet.payload)
                } else {
                    receive(packet)
                }
            case .failure(let error):
                machine.receivedMalformed(now: loop.now)
                logger.warning("ignoring a malformed packet", metadata: ["error": "\(error)"])
            }
        case .binary(let buffer):
            guard isEIO3 else {
                receive(.binaryMessage(Array(buffer.readableBytesView)))
                return
            }
            // Engine.IO 3: the frame starts with the packet type.
            do {
                receive(try EngineIO3Codec.decodeWebSocketBinary(Array(buffer.readableBytesView)))
            } catch {
                machine.receivedMalformed(now: loop.now)
                logger.warning("ignoring a malformed packet", metadata: ["error": "\(error)"])
            }
        case .payload(let buffer):
            receivePayload(buffer)
        }
    }

    /// A polling body: the handshake's (it starts with the open packet), then each poll's.
    func receivePayload(_ buffer: ByteBuffer) {
        let decoded = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(EngineIOParseError) in try decodePayload(bytes) }
        }
        let packets: [EngineIOPacket]
        switch decoded {
        case .success(let p):
            packets = p
        case .failure(let error):
            guard machine.phase != .opening else { return fail(.parseError, "\(error)") }
            machine.receivedMalformed(now: loop.now)
            logger.warning("ignoring a malformed polling payload", metadata: ["error": "\(error)"])
            return
        }
        var rest = packets[...]
        if machine.phase == .opening {
            guard let first = rest.popFirst(), first.type == .open, !first.isBinary else {
                return fail(.parseError, "the handshake did not start with an open packet")
            }
            guard opened(first.payload) else { return }
        }
        for packet in rest {
            receive(packet)
            guard machine.isOpen else { return }
        }
        flushQueue()
    }

    /// Decodes a polling payload in this session's revision.
    func decodePayload(_ bytes: UnsafeRawBufferPointer) throws(EngineIOParseError) -> [EngineIOPacket] {
        isEIO3 ? try EngineIO3Codec.decodePayload(bytes) : try EngineIOCodec.decodePayload(bytes)
    }

    func receive(_ packet: EngineIOPacket) {
        switch machine.received(packet.type, payloadCount: packet.payload.count, now: loop.now) {
        case .deliver:
            onEvent?(.packet(packet))
        case .pong(let echo):
            var bytes: [UInt8] = [UInt8(ascii: "3")]
            if echo {
                bytes.append(contentsOf: packet.payload)
            } else if !warnedPong {
                warnedPong = true
                logger.warning("the server's ping carries a long payload; answering with an empty pong", metadata: [
                    "bytes": "\(packet.payload.count)", "limit": "\(Self.maxPongPayload)",
                ])
            }
            send([OutgoingFrame(bytes: bytes, isBinary: false)], promise: nil)
        case .close:
            fail(.transportClose, "the server closed the session")
        case .rescheduleHeartbeat:
            armHeartbeat()
        case .ignore:
            if packet.type == .open, machine.isOpen { logger.warning("ignoring a second open packet") }
        }
    }
}
