import NIOCore
import NIOHTTP1

/// The server answered a handshake (the polling GET or the WebSocket request) with an HTTP status
/// other than success: the status and the start of the body, which tell a refused protocol
/// version (400) or a refused connection (401) from other failures.
package struct HandshakeRefusal: Error, Equatable, CustomStringConvertible {
    var status: Int
    var body: String

    package var description: String { "handshake answered \(status): \(shortBody)" }

    /// The body for logs and errors: at most 200 characters, control characters escaped.
    var shortBody: String {
        var text = ""
        var count = 0
        for scalar in body.unicodeScalars {
            if count == 200 {
                text += "…"
                break
            }
            count += 1
            if scalar.value < 0x20 || scalar.value == 0x7F {
                text += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                text.unicodeScalars.append(scalar)
            }
        }
        return text
    }

    /// At most this much of the body is kept.
    static let maxBody = 4096
}

/// Reads the HTTP answer to a WebSocket request that was not upgraded (bounded; loop only) and
/// hands it over once, at its end or when the connection closes or `deadline` passes.
///
/// `@unchecked Sendable`: the handler is created for one channel and every access to its state
/// happens on that channel's event loop: the channel callbacks run there, and `whenComplete` is
/// called there (`assumeIsolated()` traps if it is not).
final class RefusedUpgradeReader: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart

    private var status = 0
    private var body: [UInt8] = []
    private var done = false
    private var waiter: ((HandshakeRefusal) -> Void)?

    /// Calls `body` with the answer when it is complete, or after `deadline` with what has arrived.
    func whenComplete(on loop: any EventLoop, deadline: TimeAmount, _ body: @escaping (HandshakeRefusal) -> Void) {
        let isolated = loop.assumeIsolated()
        if done { return body(refusal) }
        waiter = body
        isolated.scheduleTask(in: deadline) { [self] in finish() }
    }

    private var refusal: HandshakeRefusal {
        HandshakeRefusal(status: status, body: String(decoding: body, as: UTF8.self))
    }

    private func finish() {
        guard !done else { return }
        done = true
        let w = waiter
        waiter = nil
        w?(refusal)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(let buffer):
            let room = HandshakeRefusal.maxBody - body.count
            if room > 0 { body.append(contentsOf: buffer.readableBytesView.prefix(room)) }
        case .end:
            finish()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }
}
