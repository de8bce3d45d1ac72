import NIOCore
import NIOPosix

/// Connecting through an HTTP proxy: the CONNECT tunnel (https, wss, ws) or absolute-form
/// requests (plain-http polling).
extension ConnectionTarget {
    /// Whether plain-http polling requests go to the proxy in absolute form (no tunnel).
    var usesAbsoluteForm: Bool { proxy != nil && !url.secure }

    /// Opens a connection to the server (through the proxy when there is one) and then runs
    /// `configure` on the channel's pipeline (TLS, HTTP handlers), on the loop.
    ///
    /// - `tunnel`: through the proxy with `CONNECT host:port` first (https, wss, and ws); TLS
    ///   then runs inside the tunnel with the server's name for SNI and verification.
    ///   Otherwise (plain-http polling) the connection goes to the proxy and requests use the
    ///   absolute form.
    func connect(
        on loop: any EventLoop, tunnel: Bool,
        configure: @escaping @Sendable (any Channel) throws -> Void
    ) -> EventLoopFuture<any Channel> {
        guard let proxy else {
            return bootstrap(on: loop)
                .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try configure(channel) } }
                .connect(host: url.host, port: url.port)
        }
        let established = loop.makePromise(of: Void.self)
        let authority = (url.host.contains(":") ? "[\(url.host)]" : url.host) + ":\(url.port)"
        let proxyName = proxy.description
        return bootstrap(on: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if tunnel {
                        try channel.pipeline.syncOperations.addHandler(
                            ProxyConnectHandler(authority: authority, authorization: proxy.authorization, proxy: proxyName, established: established))
                    } else {
                        established.succeed()
                    }
                }
            }
            .connect(host: proxy.host, port: proxy.port)
            .flatMapErrorThrowing { error in
                let failure = SocketIOError.transport("cannot reach the proxy \(proxyName): \(describeIOError(error))")
                established.fail(failure)
                throw failure
            }
            .flatMap { channel in
                established.futureResult.flatMapErrorThrowing { error in
                    channel.close(promise: nil)
                    throw error
                }.flatMapThrowing {
                    try configure(channel)
                    return channel
                }
            }
    }

    /// The error for a proxy's 407 answer to an absolute-form request.
    func proxyAuthenticationError() -> SocketIOError {
        .transport(
            proxy?.authorization == nil
                ? "the proxy \(proxy.map { "\($0)" } ?? "") requires authentication (407); give user:password in the proxy URL"
                : "the proxy \(proxy.map { "\($0)" } ?? "") rejected the credentials (407)")
    }
}

/// Sends `CONNECT authority` to the proxy, reads its answer (at most 16 KiB of head), and
/// removes itself on a 2xx; fails `established` with a readable error otherwise.
final class ProxyConnectHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let maxHeadBytes = 16 * 1024

    private let authority: String
    private let authorization: String?
    private let proxy: String
    private let established: EventLoopPromise<Void>
    private var buffer = ByteBuffer()
    private var done = false

    init(authority: String, authorization: String?, proxy: String, established: EventLoopPromise<Void>) {
        self.authority = authority
        self.authorization = authorization
        self.proxy = proxy
        self.established = established
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { sendConnect(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendConnect(context)
        context.fireChannelActive()
    }

    private var sent = false

    private func sendConnect(_ context: ChannelHandlerContext) {
        guard !sent else { return }
        sent = true
        var text = "CONNECT \(authority) HTTP/1.1\r\nHost: \(authority)\r\n"
        if let authorization { text += "Proxy-Authorization: \(authorization)\r\n" }
        text += "\r\n"
        context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return context.fireChannelRead(data) }
        var chunk = Self.unwrapInboundIn(data)
        buffer.writeBuffer(&chunk)
        let view = buffer.readableBytesView
        guard let end = headEnd(view) else {
            if buffer.readableBytes > Self.maxHeadBytes { finish(context, .transport("the proxy \(proxy) sent an over-long answer to CONNECT")) }
            return
        }
        let head = String(decoding: view[view.startIndex..<end], as: UTF8.self)
        let statusLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else {
            return finish(context, .transport("the proxy \(proxy) did not answer CONNECT with HTTP"))
        }
        let reason = parts.count > 2 ? String(parts[2]) : ""
        switch code {
        case 200..<300:
            guard end + 4 == view.endIndex else {
                return finish(context, .transport("the proxy \(proxy) sent data after its answer to CONNECT"))
            }
            done = true
            established.succeed()
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        case _ where code == 407 || (code == 401 && authorization != nil):
            // 407 always; 401 only after credentials were sent: tinyproxy answers wrong credentials
            // with 401, and before CONNECT succeeds any answer is the proxy's.
            finish(
                context,
                .transport(
                    authorization == nil
                        ? "the proxy \(proxy) requires authentication (407); give user:password in the proxy URL"
                        : "the proxy \(proxy) rejected the credentials (\(code))"))
        default:
            finish(context, .transport("the proxy \(proxy) refused CONNECT to \(authority): \(code) \(reason)"))
        }
    }

    /// Index of the blank line's first byte ("\r\n\r\n").
    private func headEnd(_ view: ByteBufferView) -> Int? {
        guard view.count >= 4 else { return nil }
        var i = view.startIndex
        while i + 3 < view.endIndex {
            if view[i] == 13 && view[i + 1] == 10 && view[i + 2] == 13 && view[i + 3] == 10 { return i }
            i += 1
        }
        return nil
    }

    private func finish(_ context: ChannelHandlerContext, _ error: SocketIOError) {
        guard !done else { return }
        done = true
        established.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done { finish(context, .transport("the proxy \(proxy) closed the connection during CONNECT")) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done { finish(context, .transport("proxy \(proxy): \(describeIOError(error))")) }
        context.fireErrorCaught(error)
    }
}
