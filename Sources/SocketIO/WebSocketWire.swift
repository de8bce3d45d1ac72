import NIOCore

/// The data frames the client sends, encoded here whole: one buffer holding the header, the mask
/// key and the masked payload (RFC 6455 §5.2, a final client frame), built straight from the
/// packet's bytes. NIO's `WebSocketFrameEncoder` would take a `WebSocketFrame` boxed in `NIOAny`,
/// copy its payload to mask it (the frame still holds the buffer) and write the header as a
/// second buffer; its bytes on the wire are the same as these (`WebSocketWireTests`).
enum WebSocketWire {
    static let text: UInt8 = 0x1
    static let binary: UInt8 = 0x2

    /// A final frame of `opcode` carrying `payload`, masked with `maskKey` (its bytes in network
    /// order, the first in the high bits).
    static func frame(opcode: UInt8, payload: [UInt8], maskKey: UInt32, allocator: ByteBufferAllocator) -> ByteBuffer {
        let count = payload.count
        let lengthBytes = count <= 125 ? 0 : count <= 0xFFFF ? 2 : 8
        var buffer = allocator.buffer(capacity: 2 + lengthBytes + 4 + count)
        buffer.writeInteger(0x80 | opcode)
        switch lengthBytes {
        case 0: buffer.writeInteger(0x80 | UInt8(truncatingIfNeeded: count))
        case 2:
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(truncatingIfNeeded: count))
        default:
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(count))
        }
        buffer.writeInteger(maskKey)
        guard count > 0 else { return buffer }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { out in
            payload.withUnsafeBytes { source in mask(source, into: out, key: maskKey) }
            return count
        }
        return buffer
    }

    /// `out[i] = source[i] ^ key byte i % 4`, eight bytes at a time where it can.
    private static func mask(_ source: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, key: UInt32) {
        let count = source.count
        // The key's bytes in memory order, twice: XORed over eight bytes loaded as they lie.
        let wide = UInt64(key.bigEndian) | UInt64(key.bigEndian) << 32
        var i = 0
        while i + 8 <= count {
            let word = source.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ wide
            out.storeBytes(of: word, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < count {
            out[i] = source[i] ^ UInt8(truncatingIfNeeded: key >> UInt32(24 - 8 * (i & 3)))
            i += 1
        }
    }
}

/// Sits right below NIO's `WebSocketFrameEncoder` (on the socket's side): ``WebSocketWire``
/// frames are written from its context, so they go to the socket (or the TLS handler) without
/// passing through the encoder, and keep their order with the encoder's own frames (pongs, the
/// close frame), which pass through it unchanged: every write is synchronous on the loop.
final class WebSocketWireWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Its context while it is in the pipeline.
    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }
}
