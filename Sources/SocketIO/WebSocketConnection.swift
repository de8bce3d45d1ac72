import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// A client WebSocket on NIO: frames are handled in a channel handler on the event loop and
/// handed to the owner through `onFrame`; nothing crosses into async code.
final class WebSocketConnection: EngineTransport {
    typealias Inbound = TransportMessage

    let kind = TransportKind.websocket
    private let loop: any EventLoop
    private let target: ConnectionTarget
    fileprivate var context: ChannelHandlerContext?
    /// Where data frames are written: below NIO's frame encoder (``WebSocketWireWriter``).
    fileprivate var wire: WebSocketWireWriter?
    private var channel: (any Channel)?
    private var closed = false
    /// Called for each text or binary message, on the loop.
    var onFrame: ((Inbound) -> Void)?
    /// Called once when the connection is gone, on the loop.
    var onClose: ((TransportClosure) -> Void)?
    /// Called with the 101 response head (for cookies).
    var onUpgradeResponse: ((HTTPResponseHead) -> Void)?
    /// Called when the channel becomes writable again after it was not.
    var onWritable: (() -> Void)?
    /// The largest frame and message accepted; a larger one closes the connection.
    let maxMessageSize: Int
    /// Mask keys for the frames sent (no system call per frame).
    var maskKeys = MaskKeyPool()

    init(loop: any EventLoop, target: ConnectionTarget, maxMessageSize: Int) {
        self.loop = loop
        self.target = target
        self.maxMessageSize = maxMessageSize
    }

    func open(uri: String, headers: HTTPHeaders) -> EventLoopFuture<Void> {
        connect(target: target, uri: uri, headers: headers)
    }

    /// Whether a write now would go out without piling up in the channel (NIO's water marks).
    var isWritable: Bool { context?.channel.isWritable ?? false }

    /// Connects and performs the upgrade. Succeeds once frames can flow.
    func connect(target: ConnectionTarget, uri: String, headers: HTTPHeaders) -> EventLoopFuture<Void> {
        let upgraded = loop.makePromise(of: Bool.self)
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)
        head.headers = headers
        let requestHead = head
        let maxSize = max(maxMessageSize, 1024)
        // The connection is confined to its loop; the initializers run there too (checked).
        let connection = NIOLoopBound(self, eventLoop: loop)
        let refusal = RefusedUpgradeReader()
        let connectFuture = target.connect(on: loop, tunnel: true) { channel in
                    try target.addTLS(to: channel)
                    let upgrader = NIOTypedWebSocketClientUpgrader<Bool>(
                        maxFrameSize: maxSize,
                        upgradePipelineHandler: { channel, response in
                            channel.eventLoop.makeCompletedFuture {
                                connection.value.onUpgradeResponse?(response)
                                try channel.pipeline.syncOperations.addHandler(
                                    NIOWebSocketFrameAggregator(
                                        minNonFinalFragmentSize: 0,
                                        maxAccumulatedFrameCount: 1024,
                                        maxAccumulatedFrameSize: maxSize
                                    )
                                )
                                try channel.pipeline.syncOperations.addHandler(WebSocketFrameHandler(connection: connection.value))
                                // Data frames are encoded whole (WebSocketWire) and written below the encoder.
                                let encoder = try channel.pipeline.syncOperations.handler(type: WebSocketFrameEncoder.self)
                                let wire = WebSocketWireWriter()
                                try channel.pipeline.syncOperations.addHandler(wire, position: .before(encoder))
                                connection.value.wire = wire
                                return true
                            }
                        }
                    )
                    var configuration = NIOUpgradableHTTPClientPipelineConfiguration(
                        upgradeConfiguration: NIOTypedHTTPClientUpgradeConfiguration(
                            upgradeRequestHead: requestHead,
                            upgraders: [upgrader],
                            notUpgradingCompletionHandler: { channel in
                                channel.eventLoop.makeCompletedFuture {
                                    try channel.pipeline.syncOperations.addHandler(refusal)
                                    return false
                                }
                            }
                        )
                    )
                    configuration.leftOverBytesStrategy = .forwardBytes
                    let result = try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: configuration
                    )
                    result.cascade(to: upgraded)
        }
        // Without a channel (refused, or a proxy tunnel that failed) the upgrade never starts.
        connectFuture.whenFailure { upgraded.fail($0) }
        return connectFuture.assumeIsolated().flatMap { [self] channel in
            self.channel = channel
            if self.closed { channel.close(promise: nil) }
            return upgraded.futureResult.flatMap { ok in
                guard !ok else { return channel.eventLoop.makeSucceededVoidFuture() }
                // Not upgraded: the status and body say why (HandshakeRefusal).
                let answered = channel.eventLoop.makePromise(of: Void.self)
                refusal.whenComplete(on: channel.eventLoop, deadline: .seconds(2)) { answer in
                    channel.close(promise: nil)
                    answered.fail(answer)
                }
                return answered.futureResult
            }
        }.nonisolated()
    }

    /// Writes a text frame (not flushed unless `flush`).
    func sendText(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?) {
        write(opcode: WebSocketWire.text, bytes, flush: flush, promise: promise)
    }

    func sendBinary(_ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?) {
        write(opcode: WebSocketWire.binary, bytes, flush: flush, promise: promise)
    }

    /// One buffer per frame (header, mask key, masked payload), written below NIO's encoder.
    private func write(opcode: UInt8, _ bytes: [UInt8], flush: Bool, promise: EventLoopPromise<Void>?) {
        guard context != nil, let wire = wire?.context, !closed else {
            promise?.fail(SocketIOError.transport("WebSocket closed"))
            return
        }
        let frame = WebSocketWire.frame(opcode: opcode, payload: bytes, maskKey: maskKeys.nextKey(), allocator: wire.channel.allocator)
        wire.write(NIOAny(frame), promise: promise)
        if flush { wire.flush() }
    }

    func flush() {
        if let wire = wire?.context { wire.flush() } else { context?.flush() }
    }

    /// Sends a close frame and closes the connection.
    func close() {
        guard !closed else { return }
        closed = true
        if let context {
            var data = context.channel.allocator.buffer(capacity: 2)
            data.write(webSocketErrorCode: .normalClosure)
            let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: maskKeys.key(), data: data)
            let channel = context.channel
            context.writeAndFlush(NIOAny(frame)).assumeIsolated().whenComplete { _ in channel.close(promise: nil) }
            // Do not wait for the peer's close frame for long.
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        } else {
            channel?.close(promise: nil)
        }
    }

    /// Closes without calling back any more.
    func detachAndClose() {
        onClose = nil
        onFrame = nil
        onWritable = nil
        close()
    }

    fileprivate func writabilityChanged() {
        if isWritable { onWritable?() }
    }

    fileprivate func closedByPeer(_ reason: String) {
        context = nil
        wire = nil
        let callback = onClose
        onClose = nil
        onFrame = nil
        onWritable = nil
        closed = true
        callback?(TransportClosure(reason))
    }
}

private final class WebSocketFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let connection: WebSocketConnection
    private var sentClose = false

    init(connection: WebSocketConnection) {
        self.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) {
        connection.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            connection.onFrame?(.text(frame.unmaskedData))
        case .binary:
            connection.onFrame?(.binary(frame.unmaskedData))
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: connection.maskKeys.key(), data: frame.unmaskedData)
            context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            if !sentClose {
                sentClose = true
                var data = frame.unmaskedData
                let code = data.readWebSocketErrorCode() ?? .normalClosure
                var reply = context.channel.allocator.buffer(capacity: 2)
                reply.write(webSocketErrorCode: code)
                let close = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: connection.maskKeys.key(), data: reply)
                context.writeAndFlush(Self.wrapOutboundOut(close)).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            }
        default:
            break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.closedByPeer("connection closed")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.closedByPeer(describeIOError(error))
        context.close(promise: nil)
    }
}
