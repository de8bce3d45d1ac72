import Agent
import SocketIO
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing

/// A receiving end of systemd's notification protocol: a Unix datagram socket bound to a path or
/// an abstract name, as systemd's own tests use. Collects every datagram with its arrival time.
final class FakeNotifySocket: Sendable {
    let name: String
    private let fd: Int32
    private let messages = Mutex<[(at: ContinuousClock.Instant, text: String)]>([])
    private let stopped = Atomic<Bool>(false)

    /// `abstract`: bind in the abstract namespace (NOTIFY_SOCKET starts with `@`).
    init(directory: String, abstract: Bool) throws {
        name = abstract ? "@sioagent-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" : directory + "/notify.sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(name.utf8)
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in raw.copyBytes(from: bytes) }
        let length = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count + (abstract ? 0 : 1)
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
        }
        guard rc == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EINVAL) }
        var timeout = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [self] in self.receive() }
        thread.start()
    }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopped.load(ordering: .relaxed) {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 {
                let text = String(decoding: buffer[0..<n], as: UTF8.self)
                messages.withLock { $0.append((ContinuousClock.now, text)) }
            }
        }
        close(fd)
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    var all: [(at: ContinuousClock.Instant, text: String)] { messages.withLock { $0 } }

    /// Every `KEY=VALUE` line received, in order.
    var assignments: [(key: String, value: String)] {
        all.flatMap { m in
            // Split on LF scalars, as systemd splits (on Characters, "\r\n" would be one).
            m.text.unicodeScalars.split(separator: "\n").map { line in
                let eq = line.firstIndex(of: "=") ?? line.endIndex
                return (String(Substring(line[..<eq])), eq == line.endIndex ? "" : String(Substring(line[line.index(after: eq)...])))
            }
        }
    }

    func values(_ key: String) -> [String] { assignments.filter { $0.key == key }.map(\.value) }

    func times(_ key: String) -> [ContinuousClock.Instant] {
        all.filter { $0.text.unicodeScalars.split(separator: "\n").contains { String(Substring($0)).hasPrefix(key + "=") } }.map(\.at)
    }
}

/// `Type=notify` support: READY, STATUS and the watchdog, through a real datagram socket.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SystemdNotifyTests {
    static let rules = """
        rules:
          - id: echo
            on: ping
            then:
              - emit: pong
        """

    func makeAgent(url: String, directory: String, environment: [String: String], loop: any EventLoop) throws -> Agent {
        try Self.rules.write(toFile: directory + "/rules.yaml", atomically: true, encoding: .utf8)
        var configuration = AgentConfiguration(
            server: .init(url: url), reconnection: ReconnectionPolicy(delay: .milliseconds(200), maxDelay: .milliseconds(500)),
            rules: directory + "/rules.yaml", spool: .init(dir: directory + "/spool"), watchRules: false,
            environment: environment)
        configuration.server.transports = .auto
        return try Agent(configuration: configuration, logger: Logger(label: "test"), eventLoop: loop)
    }

    @Test(arguments: [false, true])
    func readyStatusAndWatchdogReachTheNotifySocket(abstract: Bool) async throws {
        let server = try await PeerServer.start()
        defer { Task { await server.stop() } }
        let directory = try TestPaths.temporaryDirectory("notify")
        let socket = try FakeNotifySocket(directory: directory, abstract: abstract)
        defer { socket.stop() }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let agent = try makeAgent(
            url: server.url, directory: directory,
            environment: ["NOTIFY_SOCKET": socket.name, "WATCHDOG_USEC": "200000"], loop: loop)
        let running = Task { await agent.run() }

        try await waitUntil("READY=1") { socket.values("READY") == ["1"] }
        try await waitUntil("a connected status with the transport") {
            socket.values("STATUS").contains { $0.hasPrefix("connected to \(server.url) (") }
        }
        // Polling first, then the upgrade: the status follows without an event.
        try await waitUntil("the websocket status") { socket.values("STATUS").last == "connected to \(server.url) (websocket)" }

        // Pings every 100 ms (half of WATCHDOG_USEC) while the loop runs...
        try await waitUntil("several pings") { socket.times("WATCHDOG").count >= 5 }
        // ...and none while it is wedged.
        let blockedAt = ContinuousClock.now
        loop.execute { usleep(1_000_000) }
        try await Task.sleep(for: .milliseconds(1100))
        let duringBlock = socket.times("WATCHDOG").filter { $0 > blockedAt + .milliseconds(150) && $0 < blockedAt + .milliseconds(950) }
        #expect(duringBlock.isEmpty, "pings were sent while the loop was blocked")
        let resumed = socket.times("WATCHDOG").count
        try await waitUntil("pings after the loop is free again") { socket.times("WATCHDOG").count >= resumed + 2 }

        // Losing the server shows in STATUS, with the reconnection attempts.
        await server.stop()
        try await waitUntil("a reconnecting status") {
            socket.values("STATUS").contains { $0.hasPrefix("reconnecting to \(server.url), attempt ") }
        }
        #expect(socket.values("STATUS").contains { $0.hasPrefix("disconnected from \(server.url)") })

        agent.shutdown()
        await running.value
        try await waitUntil("STOPPING=1") { socket.values("STOPPING") == ["1"] }
        #expect(socket.values("READY").count == 1)
    }

    /// The server's words reach STATUS= (a namespace refusal's message): they must not forge a
    /// line that systemd would act on.
    @Test func aRefusalMessageCannotForgeNotifyLines() async throws {
        let message = "no\r\nWATCHDOG=trigger\r\nMAINPID=1\u{85}STOPPING=1\u{2028}READY=0\nX=1"
        let server = try await PeerServer.start(refuse: "/private", refuseMessage: message)
        defer { Task { await server.stop() } }
        let directory = try TestPaths.temporaryDirectory("notify-refused")
        let socket = try FakeNotifySocket(directory: directory, abstract: false)
        defer { socket.stop() }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        try Self.rules.write(toFile: directory + "/rules.yaml", atomically: true, encoding: .utf8)
        var configuration = AgentConfiguration(
            server: .init(url: server.url), reconnection: ReconnectionPolicy(delay: .milliseconds(200), maxDelay: .milliseconds(500)),
            rules: directory + "/rules.yaml", spool: .init(dir: directory + "/spool"), watchRules: false,
            environment: ["NOTIFY_SOCKET": socket.name])
        configuration.server.namespaces = ["/private": nil]
        let agent = try Agent(configuration: configuration, logger: Logger(label: "test"), eventLoop: loop)
        let running = Task { await agent.run() }
        try await waitUntil("a status with the refusal") { socket.values("STATUS").contains { $0.contains("WATCHDOG=trigger") } }
        agent.shutdown()
        await running.value
        // Every datagram's lines, split as systemd splits them (on LF), begin with a key the
        // agent sends; the server's text stays inside one STATUS= value.
        let keys = Set(socket.assignments.map(\.key))
        #expect(keys.isSubset(of: ["READY", "STATUS", "STOPPING", "WATCHDOG"]), "\(keys)")
        #expect(socket.values("WATCHDOG").isEmpty)
        #expect(socket.values("MAINPID").isEmpty)
        #expect(socket.values("READY") == ["1"])
        #expect(socket.values("STOPPING") == ["1"])
        for datagram in socket.all {
            #expect(!datagram.text.unicodeScalars.contains { $0 == "\r" || $0 == "\u{85}" || $0 == "\u{2028}" }, "\(datagram.text.debugDescription)")
        }
        #expect(socket.values("STATUS").contains { $0.contains(#"no\r\nWATCHDOG=trigger\r\nMAINPID=1\u{85}STOPPING=1"#) })
    }

    @Test func readyIsSentWhenTheServerIsUnreachableAndCredentialsStayOutOfStatus() async throws {
        // A port that nobody listens on.
        let probe = try ServerSocketProbe.freePort()
        let directory = try TestPaths.temporaryDirectory("notify-down")
        let socket = try FakeNotifySocket(directory: directory, abstract: false)
        defer { socket.stop() }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let agent = try makeAgent(
            url: "http://user:secret@127.0.0.1:\(probe)/?token=hidden", directory: directory,
            environment: ["NOTIFY_SOCKET": socket.name], loop: loop)
        let started = ContinuousClock.now
        let running = Task { await agent.run() }
        try await waitUntil("READY=1 without a server") { socket.values("READY") == ["1"] }
        #expect(ContinuousClock.now - started < .seconds(10))
        try await waitUntil("a reconnecting status") { socket.values("STATUS").contains { $0.contains("attempt") } }
        // No watchdog configured: no pings.
        #expect(socket.times("WATCHDOG").isEmpty)
        let statuses = socket.values("STATUS")
        #expect(!statuses.isEmpty)
        #expect(statuses.allSatisfy { !$0.contains("secret") && !$0.contains("hidden") && !$0.contains("user") })
        #expect(statuses.contains { $0.contains("http://127.0.0.1:\(probe)/") })
        agent.shutdown()
        await running.value
    }
}

enum ServerSocketProbe {
    /// A TCP port that was free a moment ago.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
func waitUntil(_ what: String, timeout: Duration = .seconds(15), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now > deadline {
            Issue.record("timed out waiting for \(what)")
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}
