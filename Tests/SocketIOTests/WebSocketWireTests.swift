import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import SocketIO

/// The client's data frames, encoded whole by ``WebSocketWire``: the same bytes as NIO's
/// `WebSocketFrameEncoder` writes for the same frame, and NIO's decoder reads them back.
struct WebSocketWireTests {
    /// Every length form (7-bit up to 125, 16-bit up to 65,535, 64-bit beyond) at its edges,
    /// lengths that are not a multiple of the 8-byte masking step, both opcodes.
    static let lengths = [0, 1, 3, 7, 8, 9, 30, 125, 126, 127, 1000, 65_535, 65_536, 70_001]

    private func payload(_ count: Int) -> [UInt8] {
        // Every byte value, in an order that differs between neighbours.
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 167 &+ ($0 >> 8) &+ 13) }
    }

    /// What NIO's encoder writes for the same frame: its header and payload buffers, joined.
    private func nioBytes(opcode: WebSocketOpcode, payload: [UInt8], maskKey: UInt32) throws -> [UInt8] {
        let channel = EmbeddedChannel(handler: WebSocketFrameEncoder())
        defer { _ = try? channel.finish() }
        var data = channel.allocator.buffer(capacity: payload.count)
        data.writeBytes(payload)
        let key = try #require(WebSocketMaskingKey((0..<4).map { UInt8(truncatingIfNeeded: maskKey >> UInt32(24 - 8 * $0)) }))
        try channel.writeOutbound(WebSocketFrame(fin: true, opcode: opcode, maskKey: key, data: data))
        var bytes: [UInt8] = []
        while var part = try channel.readOutbound(as: ByteBuffer.self) {
            bytes += part.readBytes(length: part.readableBytes) ?? []
        }
        return bytes
    }

    @Test(arguments: lengths)
    func sameBytesAsNIOsEncoder(length: Int) throws {
        let body = payload(length)
        for (opcode, nio) in [(WebSocketWire.text, WebSocketOpcode.text), (WebSocketWire.binary, .binary)] {
            for key: UInt32 in [0x0102_0304, 0xDEAD_BEEF, 0, 0xFFFF_FFFF] {
                var frame = WebSocketWire.frame(opcode: opcode, payload: body, maskKey: key, allocator: ByteBufferAllocator())
                let ours = frame.readBytes(length: frame.readableBytes) ?? []
                let expected = try nioBytes(opcode: nio, payload: body, maskKey: key)
                #expect(ours == expected, "length \(length), opcode \(opcode), key \(key)")
            }
        }
    }

    /// NIO's decoder reads the frame back: final, the opcode, masked, the payload unmasked.
    @Test(arguments: lengths)
    func nioDecodesIt(length: Int) throws {
        let body = payload(length)
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
        defer { _ = try? channel.finish() }
        let frame = WebSocketWire.frame(opcode: WebSocketWire.text, payload: body, maskKey: 0xA1B2_C3D4, allocator: channel.allocator)
        try channel.writeInbound(frame)
        let decoded = try #require(try channel.readInbound(as: WebSocketFrame.self))
        #expect(decoded.fin)
        #expect(decoded.opcode == .text)
        #expect(decoded.maskKey != nil)
        var data = decoded.unmaskedData
        #expect(data.readBytes(length: data.readableBytes) ?? [] == body)
    }
}
