import Foundation
import NIOCore
import Synchronization
import Testing

@testable import SocketIO

/// Through a real tinyproxy: WebSocket in a CONNECT tunnel, polling in absolute form, the
/// upgrade, Basic auth, refusals, the environment variables and no_proxy.
@Suite(.timeLimit(.minutes(3)))
struct ProxyTests {
    func client(
        _ server: PeerServer, _ mode: TransportMode, proxy: ProxySetting, environment: [String: String] = [:],
        recorder: Recorder = Recorder()
    ) -> SocketIOClient {
        makeClient(server, transports: mode, recorder: recorder) {
            $0.proxy = proxy
            $0.environment = environment
        }
    }

    @Test(arguments: [TransportMode.websocket, .polling, .auto])
    func everyTransportGoesThroughTheProxy(mode: TransportMode) async throws {
        let server = try await PeerServer.start()
        defer { server.kill() }
        let proxy = try await Tinyproxy()
        defer { proxy.stop() }
        let c = client(server, mode, proxy: .url(proxy.url))
        c.connect()
        try await c.waitUntilConnected(timeout: .seconds(20))
        // The server sees the transport the client settled on (after the upgrade for auto).
        let expected = mode == .polling ? "polling" : "websocket"
        let deadline = ContinuousClock.now + .seconds(10)
        var transport: [JSONValue] = []
        repeat {
            transport = try await c.emitWithAck("transport", [], timeout: .seconds(10))
            if transport == [.string(expected)] { break }
            try await Task.sleep(for: .milliseconds(50))
        } while ContinuousClock.now < deadline
        #expect(transport == [.string(expected)])
        #expect(try await c.emitWithAck("echo", ["via proxy"], timeout: .seconds(10)) == ["via proxy"])
        await c.disconnect()

        let requests = proxy.requests
        let tunnels = requests.filter { $0.hasPrefix("CONNECT 127.0.0.1:\(server.port) ") }
        let polls = requests.filter { $0.hasPrefix("GET http://127.0.0.1:\(server.port)/socket.io/?") }
        let posts = requests.filter { $0.hasPrefix("POST http://127.0.0.1:\(server.port)/socket.io/?") }
        switch mode {
        case .websocket:
            #expect(tunnels.count == 1)
            #expect(polls.isEmpty)
        case .polling:
            #expect(tunnels.isEmpty)
            #expect(!polls.isEmpty && !posts.isEmpty)
        case .auto:
            #expect(tunnels.count == 1)  // the upgrade
            #expect(!polls.isEmpty)
        }
    }

    @Test(arguments: [TransportMode.websocket, .polling])
    func basicAuthIsRequiredAndAccepted(mode: TransportMode) async throws {
        let server = try await PeerServer.start()
        defer { server.kill() }
        let proxy = try await Tinyproxy(basicAuth: ("alice", "s3cret"))
        defer { proxy.stop() }
        let host = "127.0.0.1:\(proxy.port)"

        let recorder = Recorder()
        let anonymous = client(server, mode, proxy: .url(proxy.url), recorder: recorder)
        anonymous.connect()
        do {
            try await anonymous.waitUntilConnected(timeout: .seconds(10), failFast: true)
            Issue.record("connected without proxy credentials")
        } catch {
            #expect("\(error)" == "transport error: the proxy http://\(host) requires authentication (407); give user:password in the proxy URL")
        }
        // A proxy error goes through the normal backoff: the client keeps trying.
        try await recorder.wait("a reconnection attempt") { _ in
            recorder.count { if case .reconnectAttempt = $0 { true } else { false } } >= 2
        }
        await anonymous.disconnect()

        let wrong = client(server, mode, proxy: .url("http://alice:nope@\(host)"))
        wrong.connect()
        do {
            try await wrong.waitUntilConnected(timeout: .seconds(10), failFast: true)
            Issue.record("connected with wrong proxy credentials")
        } catch {
            // tinyproxy answers wrong credentials with 401 (not 407). Through a tunnel that can
            // only be the proxy; in absolute form it could be the server, so it is shown as is.
            if mode == .websocket {
                #expect("\(error)" == "transport error: the proxy http://\(host) rejected the credentials (401)")
            } else {
                #expect("\(error)".hasPrefix("transport error: handshake answered 401"))
            }
            #expect(!"\(error)".contains("nope"))
        }
        await wrong.disconnect()

        // Percent-encoded in the URL, sent decoded.
        let authorised = client(server, mode, proxy: .url("http://alice:s3%63ret@\(host)"))
        authorised.connect()
        try await authorised.waitUntilConnected(timeout: .seconds(20))
        #expect(try await authorised.emitWithAck("echo", [1], timeout: .seconds(10)) == [1])
        await authorised.disconnect()
    }

    @Test func refusedConnectAndUnreachableProxyAreClearErrors() async throws {
        let server = try await PeerServer.start()
        defer { server.kill() }
        // CONNECT only to port 443: our server's port is refused.
        let proxy = try await Tinyproxy(connectPorts: [443])
        defer { proxy.stop() }
        let refused = client(server, .websocket, proxy: .url(proxy.url))
        refused.connect()
        do {
            try await refused.waitUntilConnected(timeout: .seconds(10), failFast: true)
            Issue.record("CONNECT was not refused")
        } catch {
            #expect("\(error)".hasPrefix("transport error: the proxy \(proxy.url) refused CONNECT to 127.0.0.1:\(server.port): 403"))
        }
        await refused.disconnect()

        let nowhere = try freeTCPPort()
        let recorder = Recorder()
        let unreachable = client(server, .websocket, proxy: .url("http://user:pw@127.0.0.1:\(nowhere)"), recorder: recorder)
        unreachable.connect()
        do {
            try await unreachable.waitUntilConnected(timeout: .seconds(10), failFast: true)
            Issue.record("connected through a proxy that is not there")
        } catch {
            #expect("\(error)".hasPrefix("transport error: cannot reach the proxy http://127.0.0.1:\(nowhere): "))
            #expect(!"\(error)".contains("pw"))
        }
        try await recorder.wait("retries with backoff") { _ in
            recorder.count { if case .reconnectAttempt = $0 { true } else { false } } >= 2
        }
        await unreachable.disconnect()
    }

    @Test(arguments: ["http_proxy", "HTTP_PROXY"])
    func environmentProxyAndNoProxyBypass(variable: String) async throws {
        let server = try await PeerServer.start()
        defer { server.kill() }
        let proxy = try await Tinyproxy()
        defer { proxy.stop() }

        let viaEnvironment = client(server, .websocket, proxy: .environment, environment: [variable: proxy.url])
        viaEnvironment.connect()
        try await viaEnvironment.waitUntilConnected(timeout: .seconds(20))
        await viaEnvironment.disconnect()
        #expect(proxy.requests.filter { $0.hasPrefix("CONNECT 127.0.0.1:\(server.port) ") }.count == 1)

        for noProxy in ["127.0.0.1", "localhost,127.0.0.1:\(server.port)", "*", ".example.com, 127.0.0.1"] {
            let bypassing = client(
                server, .polling, proxy: .environment, environment: [variable: proxy.url, "no_proxy": noProxy])
            bypassing.connect()
            try await bypassing.waitUntilConnected(timeout: .seconds(20))
            await bypassing.disconnect()
        }
        // An https_proxy is not used for http, and an explicit setting wins over the environment.
        let other = client(server, .polling, proxy: .environment, environment: ["https_proxy": proxy.url])
        other.connect()
        try await other.waitUntilConnected(timeout: .seconds(20))
        await other.disconnect()
        let direct = client(server, .polling, proxy: .direct, environment: [variable: proxy.url])
        direct.connect()
        try await direct.waitUntilConnected(timeout: .seconds(20))
        await direct.disconnect()
        #expect(proxy.requests.count == 1, "bypassed connections went through the proxy: \(proxy.requests)")
    }

    @Test func tlsRunsInsideTheTunnelWithTheServerName() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sio-proxy-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cert = dir.appendingPathComponent("cert.pem").path
        let key = dir.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0)
        let server = try await PeerServer.start(tls: (cert, key))
        defer { server.kill() }
        let proxy = try await Tinyproxy()
        defer { proxy.stop() }

        for mode in [TransportMode.auto, .polling] {
            // The certificate names only "localhost": verification passes only if the client
            // checks the origin's name, not the proxy's address.
            var c = SocketIOClientConfiguration(
                url: "https://localhost:\(server.port)", transports: mode, reconnection: fastReconnection, connectTimeout: .seconds(5))
            c.tls = TLSOptions(caFile: cert)
            c.proxy = .url(proxy.url)
            let client = SocketIOClient(configuration: c, logger: testLogger)
            client.connect()
            try await client.waitUntilConnected(timeout: .seconds(20))
            #expect(try await client.emitWithAck("echo", ["tls"], timeout: .seconds(10)) == ["tls"])
            await client.disconnect()
        }
        #expect(proxy.requests.allSatisfy { $0.hasPrefix("CONNECT localhost:\(server.port) ") })
        #expect(!proxy.requests.isEmpty)

        // Same tunnel, wrong name: verification fails.
        var wrong = SocketIOClientConfiguration(
            url: "https://127.0.0.1:\(server.port)", transports: .websocket, reconnection: fastReconnection, connectTimeout: .seconds(5))
        wrong.tls = TLSOptions(caFile: cert)
        wrong.proxy = .url(proxy.url)
        let mismatched = SocketIOClient(configuration: wrong, logger: testLogger)
        mismatched.connect()
        await #expect(throws: (any Error).self) { try await mismatched.waitUntilConnected(timeout: .seconds(10), failFast: true) }
        await mismatched.disconnect()
    }

    @Test func emitTakesProxyFromTheCommandLine() async throws {
        let server = try await PeerServer.start()
        defer { server.kill() }
        let proxy = try await Tinyproxy(basicAuth: ("alice", "s3cret"))
        defer { proxy.stop() }
        let proxied = "http://alice:s3cret@127.0.0.1:\(proxy.port)"
        let r = try await runCLI(["emit", server.url, "echo", "1", "--ack", "--transport", "websocket", "--proxy", proxied, "--verbose"])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[1]")
        #expect(!r.stderr.contains("s3cret"))
        #expect(proxy.requests.filter { $0.hasPrefix("CONNECT 127.0.0.1:\(server.port) ") }.count == 1)

        let refused = try await runCLI(["emit", server.url, "echo", "1", "--ack", "--transport", "polling", "--proxy", proxy.url, "--timeout", "3s"])
        #expect(refused.code == 1)
        #expect(refused.stderr.contains("requires authentication (407)"), "\(refused.stderr)")
        let bad = try await runCLI(["emit", server.url, "echo", "--proxy", "socks5://x:1"])
        #expect(bad.code == 2)
    }

    // MARK: Pure parts

    @Test func proxyURLsParseAndNeverShowCredentials() throws {
        let p = try ProxyURL("http://bob:pa%3Ass@proxy.local:3128")
        #expect(p.host == "proxy.local" && p.port == 3128)
        #expect(p.description == "http://proxy.local:3128")
        #expect(p.authorization == "Basic " + Base64.encode(Array("bob:pa:ss".utf8)))
        #expect(try ProxyURL("proxy.local").port == 80)
        #expect(try ProxyURL("http://[::1]:8080/").host == "::1")
        #expect(try ProxyURL("http://[::1]:8080/").description == "http://[::1]:8080")
        do {
            _ = try ProxyURL("https://bob:secret@proxy:443")
            Issue.record("https proxy accepted")
        } catch {
            #expect("\(error)".contains("only http:// proxies"))
            #expect(!"\(error)".contains("secret"))
        }
        #expect(throws: SocketIOError.self) { try ProxyURL("http://proxy:99999") }
    }

    @Test func noProxyMatching() {
        let cases: [(String, String, Int, Bool)] = [
            ("*", "anything.example", 443, true),
            ("example.com", "example.com", 443, true),
            ("example.com", "api.example.com", 443, true),
            (".example.com", "api.example.com", 443, true),
            ("*.example.com", "api.example.com", 443, true),
            ("example.com", "badexample.com", 443, false),
            ("example.com:8443", "example.com", 443, false),
            ("example.com:443", "example.com", 443, true),
            ("10.0.0.1", "10.0.0.1", 80, true),
            ("10.0.0.1", "10.0.0.10", 80, false),
            ("[::1]:8080", "::1", 8080, true),
            ("::1", "::1", 8080, true),
            ("foo, EXAMPLE.com", "Example.COM", 443, true),
            ("", "example.com", 443, false),
        ]
        for (noProxy, host, port, expected) in cases {
            #expect(ProxyURL.bypasses(noProxy, host: host, port: port) == expected, "\(noProxy) vs \(host):\(port)")
        }
    }

    /// curl's forms: addresses compared as addresses (never by suffix), CIDR blocks, suffixes at
    /// a dot boundary only.
    @Test func noProxyTakesAddressesAndCIDRBlocksAsCurlDoes() {
        let cases: [(String, String, Int, Bool)] = [
            // An address entry is not a text suffix.
            ("0.1", "192.168.0.1", 80, false),
            ("168.0.1", "192.168.0.1", 80, false),
            ("192.168.0.1", "192.168.0.1", 80, true),
            // CIDR blocks, v4 and v6.
            ("10.0.0.0/8", "10.20.30.40", 80, true),
            ("10.0.0.0/8", "11.0.0.1", 80, false),
            ("192.168.0.0/16", "192.168.255.1", 80, true),
            ("192.168.1.0/24", "192.168.2.1", 80, false),
            ("172.16.0.0/12", "172.31.0.1", 80, true),
            ("172.16.0.0/12", "172.32.0.1", 80, false),
            ("0.0.0.0/0", "8.8.8.8", 80, true),
            ("127.0.0.1/32", "127.0.0.1", 80, true),
            ("127.0.0.1/32", "127.0.0.2", 80, false),
            ("fd00::/8", "fd12:3456::1", 80, true),
            ("fd00::/8", "fe80::1", 80, false),
            ("[fe80::]/10", "fe80::1234", 80, true),
            ("2001:db8::/32", "[2001:db8:1::5]", 443, true),
            ("::1", "[::1]", 443, true),
            // A v4 block never matches a v6 host, a bad prefix never matches.
            ("10.0.0.0/8", "::ffff:10.0.0.1", 80, false),
            ("10.0.0.0/33", "10.0.0.1", 80, false),
            ("10.0.0.0/x", "10.0.0.1", 80, false),
            // Names are not resolved: a host name never matches an address or a block.
            ("127.0.0.0/8", "localhost", 80, false),
            // Suffixes at a dot boundary only; several entries, spaces and commas.
            ("example.com", "xexample.com", 443, false),
            (".example.com", "example.com", 443, true),
            ("localhost, 10.0.0.0/8 .corp", "git.corp", 443, true),
            ("localhost, 10.0.0.0/8 .corp", "10.1.1.1", 443, true),
            ("localhost, 10.0.0.0/8 .corp", "192.168.1.1", 443, false),
            ("*", "10.1.1.1", 443, true),
        ]
        for (noProxy, host, port, expected) in cases {
            #expect(ProxyURL.bypasses(noProxy, host: host, port: port) == expected, "\(noProxy) vs \(host):\(port)")
        }
    }

    /// A password with an unencoded reserved character is an error that says where, never a
    /// different proxy host.
    @Test(arguments: [
        ("http://bob:1234/5@proxy.corp:3128", "/", 16),
        ("http://bob:pa/ss@proxy.corp:3128", "/", 14),
        ("http://bob:pa?ss@proxy.corp:3128", "?", 14),
        ("http://bob:pa#ss@proxy.corp:3128", "#", 14),
        ("http://bob:p@ss@proxy.corp:3128", "@", 13),
        ("bob:p/ss@proxy.corp:3128", "/", 6),
    ])
    func reservedCharactersInUserInfoAreAPositionedError(url: String, character: String, position: Int) {
        do {
            let proxy = try ProxyURL(url)
            Issue.record("accepted as \(proxy)")
        } catch {
            let text = "\(error)"
            #expect(text.contains("unencoded '\(character)' (character \(position) of the URL)"), "\(text)")
            #expect(text.contains("percent-encode"))
            #expect(!text.contains("ss@") && !text.contains("1234"), "the password shows: \(text)")
        }
        #expect(ProxyURL.reservedCharacterOffset(url) == position - 1)
        // Encoded, the same password is accepted, and the host is the proxy's.
        let encoded = url.replacingOccurrences(of: "p" + character + "ss", with: "p%" + String(Character(character).asciiValue!, radix: 16) + "ss")
            .replacingOccurrences(of: "1234/5", with: "1234%2F5")
        if encoded != url, let proxy = try? ProxyURL(encoded) {
            #expect(proxy.host == "proxy.corp" && proxy.port == 3128)
        }
    }
}
