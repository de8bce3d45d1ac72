import Logging
import NIOCore
import NIOSSL

extension EngineSettings {
    /// The settings of every session of a client, derived once from its configuration.
    static func make(_ c: SocketIOClientConfiguration) throws(SocketIOError) -> EngineSettings {
        let url = try ServerURL(c.url)
        var sslContext: NIOSSLContext?
        if url.secure {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let caFile = c.tls.caFile { tls.trustRoots = .file(caFile) }
            if c.tls.insecure { tls.certificateVerification = .none }
            do {
                sslContext = try NIOSSLContext(configuration: tls)
            } catch {
                throw .transport("TLS setup failed: \(error)")
            }
        }
        var query: [String] = []
        if !url.query.isEmpty { query.append(url.query) }
        for (name, value) in c.query { query.append(percentEncodeQuery(name) + "=" + percentEncodeQuery(value)) }
        var path = c.path.isEmpty ? "/socket.io/" : c.path
        if !path.hasPrefix("/") { path = "/" + path }
        let connectTimeout = TimeAmount(saturating: c.connectTimeout)
        let proxy = try ProxyURL.resolve(c.proxy, for: url, environment: c.environment ?? processEnvironment())
        return EngineSettings(
            target: ConnectionTarget(url: url, sslContext: sslContext, connectTimeout: connectTimeout, proxy: proxy),
            path: path,
            mode: c.transports,
            baseQuery: query.joined(separator: "&"),
            headers: c.headers,
            upgradeTimeout: min(connectTimeout, .seconds(10)),
            payloadCeiling: max(c.maxPayloadCeiling, 1024)
        )
    }

    /// Warns when certificates are not checked, or when credentials would travel in clear text.
    func warnAboutSecurity(_ c: SocketIOClientConfiguration, logger: Logger) {
        if c.tls.insecure {
            logger.warning("tls.insecure is set: the server's certificate is not verified")
        }
        let credentialHeaders: Set<String> = ["authorization", "cookie", "proxy-authorization"]
        let sendsAuth = c.namespaces.values.contains { $0 != nil }
            || c.headers.contains { credentialHeaders.contains($0.name.lowercased()) }
        if !target.url.secure && sendsAuth {
            logger.warning("credentials (namespace auth or an Authorization header) are sent over plain http/ws; use https/wss")
        }
    }

    /// Engine.IO 3: every namespace's auth as query parameters of the Engine.IO URL (`/` first,
    /// each parameter once), where python-socketio 4.x reads it.
    static func legacyAuthQuery(_ namespaces: [ClientStateMachine.Namespace]) -> String {
        var parameters: [(name: String, value: String)] = []
        for ns in namespaces {
            for p in SocketIO2.queryParameters(ns.auth) where !parameters.contains(where: { $0 == p }) {
                parameters.append(p)
            }
        }
        return SocketIO2.queryString(parameters)
    }
}
