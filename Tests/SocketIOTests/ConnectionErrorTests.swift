import Foundation
import NIOCore
import Testing

@testable import SocketIO

/// The connection errors an operator meets first, read as sentences with the cause and the fix:
/// against real TLS servers (python-socketio over Python's ssl) with certificates made by
/// openssl at test time, a real refused port, a listener that never answers, a name that does
/// not resolve. On the command line (the same words go to the agent's log and STATUS=).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ConnectionErrorTests {
    /// A fresh CA and server certificates (Peer/make_certs.sh).
    static func certificates() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sio-certs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let script = Process()
        script.executableURL = URL(fileURLWithPath: "/bin/bash")
        script.arguments = [packageRoot.appendingPathComponent("Tests/SocketIOTests/Peer/make_certs.sh").path, dir]
        try script.run()
        script.waitUntilExit()
        try #require(script.terminationStatus == 0, "make_certs.sh failed (is openssl installed? .ci/run installs it)")
        return dir
    }

    /// The one error line of `sioagent emit URL x` with `extra` options.
    static func emitError(_ url: String, _ extra: [String] = []) async throws -> String {
        let r = try await runCLI(["emit", url, "x"] + extra)
        #expect(r.code == 1, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == 1, "\(r.stderr)")
        let line = lines.last ?? ""
        // Words, not library internals.
        for term in ["NIOSSL", "BoringSSL", "OPENSSL_internal", ".cc:", "NIOConnectionError", "IOError", "ChannelError", "<none>"] {
            #expect(!line.contains(term), "\(term) in: \(line)")
        }
        return line
    }

    @Test func certificateProblemsNameTheCauseAndTheFix() async throws {
        let dir = try Self.certificates()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ca = dir + "/ca.pem"

        // The control: the good certificate with the CA given connects.
        let good = try await PeerServer.start(tls: (dir + "/good.pem", dir + "/good.key"))
        let ok = try await runCLI(["emit", good.url, "x", "--ca-file", ca])
        #expect(ok.code == 0, "\(ok.stderr)")

        // Not signed by a trusted CA: points at tls.ca_file / --ca-file.
        let untrusted = try await Self.emitError(good.url)
        #expect(untrusted.contains("is not signed by a CA the agent trusts"), "\(untrusted)")
        #expect(untrusted.contains("server.tls.ca_file") && untrusted.contains("--ca-file"), "\(untrusted)")
        #expect(untrusted.contains("127.0.0.1:\(good.port)"), "\(untrusted)")

        // A name mismatch: the name tried and the names the certificate holds.
        let wrong = try await PeerServer.start(tls: (dir + "/wrongname.pem", dir + "/wrongname.key"))
        let mismatch = try await Self.emitError(wrong.url, ["--ca-file", ca])
        #expect(mismatch.contains("does not name 127.0.0.1"), "\(mismatch)")
        #expect(mismatch.contains("it is for example.test, www.example.test"), "\(mismatch)")

        // Expired and not yet valid: the dates.
        let old = try await PeerServer.start(tls: (dir + "/expired.pem", dir + "/expired.key"))
        let expired = try await Self.emitError(old.url, ["--ca-file", ca])
        #expect(expired.contains("expired on 2020-02-01 00:00:00 UTC"), "\(expired)")
        #expect(expired.contains("valid from 2020-01-01 00:00:00 UTC to 2020-02-01 00:00:00 UTC"), "\(expired)")
        let later = try await PeerServer.start(tls: (dir + "/future.pem", dir + "/future.key"))
        let future = try await Self.emitError(later.url, ["--ca-file", ca])
        #expect(future.contains("is not valid before 2099-01-01 00:00:00 UTC"), "\(future)")

        withExtendedLifetime((good, wrong, old, later)) {}
    }

    @Test func protocolMismatchesSaySo() async throws {
        let dir = try Self.certificates()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A server that offers TLS 1.1 at most.
        let legacy = try await PeerServer.start(tls: (dir + "/good.pem", dir + "/good.key"), tlsMax: "1.1")
        let version = try await Self.emitError(legacy.url, ["--ca-file", dir + "/ca.pem"])
        #expect(version.contains("no TLS version in common"), "\(version)")
        withExtendedLifetime(legacy) {}

        // https:// to a plain http server.
        let plain = try await PeerServer.start()
        let notTLS = try await Self.emitError("https://127.0.0.1:\(plain.port)")
        #expect(notTLS.contains("did not answer in TLS"), "\(notTLS)")
        withExtendedLifetime(plain) {}
    }

    @Test func refusedUnresolvableAndTimedOutSayWhich() async throws {
        let refused = try await Self.emitError("http://127.0.0.1:1")
        #expect(refused.contains("connection to 127.0.0.1:1 refused: nothing listens on that port"), "\(refused)")

        let unresolvable = try await Self.emitError("http://nonexistent.invalid:3000")
        #expect(unresolvable.contains("the name nonexistent.invalid does not resolve"), "\(unresolvable)")

        // A listener whose queue is full: the kernel drops further SYNs, so connecting times out.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        listen(fd, 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        var fillers: [Int32] = []
        defer { for f in fillers { close(f) } }
        for _ in 0..<4 {
            let f = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(f, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            fillers.append(f)
        }
        var c = SocketIOClientConfiguration(url: "http://127.0.0.1:\(port)", transports: .polling, connectTimeout: .seconds(1))
        c.reconnection = ReconnectionPolicy(delay: .milliseconds(200), maxDelay: .milliseconds(500))
        let client = SocketIOClient(configuration: c, logger: testLogger)
        client.connect()
        var text = ""
        do {
            try await client.waitUntilConnected(timeout: .seconds(10), failFast: true)
        } catch {
            text = "\(error)"
        }
        await client.disconnect()
        #expect(text.contains("connecting to 127.0.0.1:\(port) timed out after 1 s: no answer"), "\(text)")
    }
}
