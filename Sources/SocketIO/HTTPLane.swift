import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A complete HTTP response.
struct HTTPResponse {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: ByteBuffer
    var keepAlive: Bool
}

/// How transports reach the server: address, TLS, timeouts. Shared by the connections of one client.
struct ConnectionTarget: Sendable {
    // NIOSSLContext is Sendable (thread-safe); it is built once per client.
    var url: ServerURL
    var sslContext: NIOSSLContext?
    var connectTimeout: TimeAmount
    /// The HTTP proxy in between, if any (see Proxy.swift).
    var proxy: ProxyURL? = nil

    func bootstrap(on loop: any EventLoop) -> ClientBootstrap {
        ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
    }

    /// Adds the TLS handler (first in the pipeline) when the URL is secure.
    func addTLS(to channel: any Channel) throws {
        guard let sslContext else { return }
        let handler = try NIOSSLClientHandler(
            context: sslContext,
            serverHostname: url.hostIsIPAddress ? nil : url.host
        )
        try channel.pipeline.syncOperations.addHandler(handler)
        // TLS failures in words, with the server's certificate (ConnectionErrors.swift).
        try channel.pipeline.syncOperations.addHandler(TLSErrorWording(host: url.host, port: url.port, tls: handler))
    }
}

/// One keep-alive HTTP/1.1 connection that carries one request at a time (a polling "lane":
/// the GET lane and the POST lane each have their own, so at most one GET and one POST are in
/// flight). Used on its event loop only.
final class HTTPLane {
    private let loop: any EventLoop
    private let target: ConnectionTarget
    private var channel: (any Channel)?
    private var connecting: EventLoopFuture<any Channel>?
    private var pending: EventLoopPromise<HTTPResponse>?
    private var closed = false
    /// The largest response body accepted; a longer one fails the request and closes the connection.
    var maxBodySize: Int

    init(loop: any EventLoop, target: ConnectionTarget, maxBodySize: Int) {
        self.loop = loop
        self.target = target
        self.maxBodySize = maxBodySize
    }

    var isBusy: Bool { pending != nil }

    /// Sends a request and completes with the whole response.
    func request(_ head: HTTPRequestHead, body: [UInt8]?) -> EventLoopFuture<HTTPResponse> {
        loop.preconditionInEventLoop()
        precondition(pending == nil, "one request at a time per lane")
        let promise = loop.makePromise(of: HTTPResponse.self)
        guard !closed else {
            promise.fail(SocketIOError.transport("connection closed"))
            return promise.futureResult
        }
        pending = promise
        let channelFuture: EventLoopFuture<any Channel>
        if let channel, channel.isActive {
            channelFuture = loop.makeSucceededFuture(channel)
        } else {
            channel = nil
            channelFuture = connect()
        }
        channelFuture.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let channel):
                guard self.pending?.futureResult === promise.futureResult else { return }
                var head = head
                if let body { head.headers.replaceOrAdd(name: "Content-Length", value: String(body.count)) }
                if self.target.usesAbsoluteForm {
                    // Plain http through the proxy: absolute-form request, credentials on each.
                    head.uri = "http://" + self.target.url.hostHeader + head.uri
                    if let auth = self.target.proxy?.authorization { head.headers.replaceOrAdd(name: "Proxy-Authorization", value: auth) }
                    head.headers.replaceOrAdd(name: "Connection", value: "close")
                }
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                if let body {
                    channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
                }
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            case .failure(let error):
                self.fail(error)
            }
        }
        return promise.futureResult
    }

    private func connect() -> EventLoopFuture<any Channel> {
        let target = self.target
        // The lane is confined to its loop; the initializer runs there too (checked).
        let lane = NIOLoopBound(self, eventLoop: loop)
        let future = target.connect(on: loop, tunnel: !target.usesAbsoluteForm) { channel in
            try target.addTLS(to: channel)
            try channel.pipeline.syncOperations.addHTTPClientHandlers()
            try channel.pipeline.syncOperations.addHandler(HTTPResponseCollector(lane: lane.value))
        }
        future.assumeIsolated().whenSuccess { [self] channel in
            if self.closed {
                channel.close(promise: nil)
            } else {
                self.channel = channel
            }
        }
        return future
    }

    fileprivate func received(_ response: HTTPResponse, from channel: any Channel) {
        guard self.channel === channel else { return }
        // Through a proxy in absolute form, one request per connection: proxies (tinyproxy)
        // close client connections after a response without saying so.
        if !response.keepAlive || target.usesAbsoluteForm {
            self.channel = nil
            channel.close(promise: nil)
        }
        let promise = pending
        pending = nil
        if target.usesAbsoluteForm, response.status == .proxyAuthenticationRequired {
            self.channel = nil
            channel.close(promise: nil)
            promise?.fail(target.proxyAuthenticationError())
            return
        }
        promise?.succeed(response)
    }

    fileprivate func channelFailed(_ channel: any Channel, _ error: any Error) {
        guard self.channel === channel else { return }
        self.channel = nil
        fail(error)
    }

    fileprivate func fail(_ error: any Error) {
        let promise = pending
        pending = nil
        promise?.fail(error)
    }

    /// Closes the connection; a request in flight fails.
    func close() {
        closed = true
        channel?.close(promise: nil)
        channel = nil
        fail(SocketIOError.transport("connection closed"))
    }
}

/// Collects one response (head, body, end) and hands it to the lane.
private final class HTTPResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let lane: HTTPLane
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()
    private var discarding = false

    init(lane: HTTPLane) {
        self.lane = lane
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !discarding else { return }
        switch Self.unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
        case .body(var b):
            guard body.readableBytes + b.readableBytes <= lane.maxBodySize else {
                // A body beyond the limit (or one that never ends): the request fails and the
                // connection is closed, so nothing more is read.
                discarding = true
                body = ByteBuffer()
                lane.channelFailed(context.channel, SocketIOError.transport("the response body exceeds \(lane.maxBodySize) bytes"))
                context.close(promise: nil)
                return
            }
            body.writeBuffer(&b)
        case .end:
            guard let h = head else { return }
            head = nil
            let response = HTTPResponse(status: h.status, headers: h.headers, body: body, keepAlive: h.isKeepAlive)
            body = ByteBuffer()
            lane.received(response, from: context.channel)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        lane.channelFailed(context.channel, SocketIOError.transport("connection closed by the server"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        lane.channelFailed(context.channel, SocketIOError.transport(describeIOError(error)))
        context.close(promise: nil)
    }
}

/// A short description of an I/O error for logs and error values.
func describeIOError(_ error: any Error) -> String {
    if let e = error as? SocketIOError {
        if case .transport(let s) = e { return s }
        return e.description
    }
    if let text = ConnectionErrorWording.connect(error) { return text }
    // TLS errors are worded with the certificates by TLSErrorWording; one that reaches here
    // another way (a failed write) still gets words.
    if let text = ConnectionErrorWording.tls(error, host: "", port: 0, certificate: nil) { return text }
    if let e = error as? IOError {
        if let text = strerror(e.errnoCode) { return String(cString: text) }
        return "\(e)"
    }
    if let e = error as? NIOConnectionError {
        if let first = e.connectionErrors.first {
            return "connection to \(e.host):\(e.port) failed: \(describeIOError(first.error))"
        }
        return "connection to \(e.host):\(e.port) failed"
    }
    if error is ChannelError, case ChannelError.connectTimeout = error as! ChannelError {
        return "connect timeout"
    }
    return "\(error)"
}
