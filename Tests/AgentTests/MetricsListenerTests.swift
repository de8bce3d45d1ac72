import Foundation
import NIOCore
import NIOEmbedded
import Synchronization
import TestSupport
import Testing

@testable import Agent

/// The metrics listener against clients that misbehave, over real sockets
/// (Peer/metrics_client.py), with the real agent binary.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct MetricsListenerTests {
    /// Starts the agent with `metrics.listen` (its server does not exist: it keeps reconnecting,
    /// which changes nothing the listener does) and waits until it listens.
    static func startAgent(_ label: String) async throws -> (AgentFixture, ChildProcess, Int) {
        let fixture = try AgentFixture(label: label)
        let port = try ServerSocketProbe.freePort()
        let unused = try ServerSocketProbe.freePort()
        try fixture.writeConfig(url: "http://127.0.0.1:\(unused)", extra: "metrics:\n  listen: 127.0.0.1:\(port)\n")
        try fixture.writeRules("rules:\n  - id: r\n    on: e\n    then:\n      - log: stdout\n")
        let agent = try fixture.startAgent()
        try await agent.waitFor("the metrics listener") { !agent.logged("metrics listening").isEmpty }
        return (fixture, agent, port)
    }

    /// Runs Peer/metrics_client.py with `arguments`; its one JSON line.
    static func client(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> [String: Any] {
        let script = TestPaths.packageRoot + "/Tests/AgentTests/Peer/metrics_client.py"
        let child = try ChildProcess(try TestPaths.python, ["-u", script] + arguments, name: "metrics client")
        let code = await child.waitForExit(timeout: timeout)
        #expect(code == 0, "metrics_client \(arguments): \(child.stderrLines.joined(separator: "\n"))")
        let line = child.stdoutLines.last ?? "{}"
        return try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
    }

    static func rssBytes(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return nil }
        return kb * 1024
    }

    /// An answer read whole: status and headers, and the body.
    static func response(_ raw: String) -> (status: Int?, headers: [String: String], body: String) {
        guard let split = raw.range(of: "\r\n\r\n") else { return (nil, [:], "") }
        let lines = raw[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return (status, headers, String(raw[split.upperBound...]))
    }

    static func hex(_ text: String) -> String { text.utf8.map { String(format: "%02x", $0) }.joined() }

    @Test func aPipelinedFloodThatNeverReadsIsCutOffAndMemoryStaysBounded() async throws {
        let (_, agent, port) = try await Self.startAgent("metrics-flood")
        defer { Task { await agent.stop() } }
        let pid = agent.pid
        let before = Self.rssBytes(pid) ?? 0
        // Resident memory sampled every 100 ms while the client floods for 6 s.
        let peakBox = PeakSample()
        let sampler = Task {
            while !Task.isCancelled {
                let rss = Self.rssBytes(pid) ?? 0
                peakBox.value.withLock { $0 = max($0, rss) }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        let result = try await Self.client(["flood", String(port), "6"])
        sampler.cancel()
        let peak = max(peakBox.value.withLock { $0 }, Self.rssBytes(pid) ?? 0)
        // The client sent far more requests than it got answers, and the agent closed it.
        let requests = result["requests"] as? Int ?? 0
        let responses = result["responses"] as? Int ?? 0
        #expect(requests > 10_000, "\(result)")
        #expect(responses < requests / 2, "\(result)")
        #expect(result["eof"] as? Bool == true || result["closed_while_sending"] as? Bool == true, "\(result)")
        #expect(peak <= 40 * 1024 * 1024, "resident memory reached \(peak / 1024) KiB (from \(before / 1024) KiB)")
        // A scrape after it is answered.
        let after = try await Self.client(["raw", String(port), Self.hex("GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")])
        #expect(Self.response(after["response"] as? String ?? "").status == 200)
    }

    @Test func aStreamOfBlankLinesIsRefusedAndMemoryStaysBounded() async throws {
        // Blank lines may precede a request head; endless ones were once buffered without bound
        // (22 MB to 1.9 GB of resident memory in 8 s).
        let (_, agent, port) = try await Self.startAgent("metrics-blank-lines")
        defer { Task { await agent.stop() } }
        let pid = agent.pid
        let peakBox = PeakSample()
        let sampler = Task {
            while !Task.isCancelled {
                let rss = Self.rssBytes(pid) ?? 0
                peakBox.value.withLock { $0 = max($0, rss) }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        let result = try await Self.client(["flood", String(port), "4", Self.hex("\r\n")])
        sampler.cancel()
        let peak = max(peakBox.value.withLock { $0 }, Self.rssBytes(pid) ?? 0)
        // Answered 431 and closed: the client could not keep sending.
        #expect(result["closed_while_sending"] as? Bool == true || result["eof"] as? Bool == true, "\(result)")
        #expect((result["bytes"] as? Int ?? 0) < 64 * 1024 * 1024, "\(result)")
        #expect(peak <= 40 * 1024 * 1024, "resident memory reached \(peak / 1024) KiB")
        let after = try await Self.client(["raw", String(port), Self.hex("GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")])
        #expect(Self.response(after["response"] as? String ?? "").status == 200, "\(after)")
    }

    @Test func idleConnectionsMakeRoomAndAreClosed() async throws {
        let (_, agent, port) = try await Self.startAgent("metrics-idle")
        defer { Task { await agent.stop() } }
        // 64 connections that send nothing, then a scrape: the oldest idle ones made room. All
        // idle ones are closed within the idle timeout (10 s) and a margin.
        let idle = try await Self.client(["idle", String(port), "64", "14"])
        #expect(idle["opened"] as? Int == 64, "\(idle)")
        #expect(idle["scrape_status"] as? Int == 200, "\(idle)")
        #expect((idle["scrape_body_bytes"] as? Int ?? 0) > 100, "\(idle)")
        #expect(idle["closed"] as? Int == 64, "\(idle)")
        // A request head sent a byte at a time does not keep its connection: closed at the idle
        // deadline, unanswered.
        let slow = try await Self.client(["slowloris", String(port), "20"])
        let closedAfter = slow["closed_after"] as? Double ?? 0
        #expect(closedAfter >= 9 && closedAfter < 14, "\(slow)")
        #expect(slow["received"] as? String == "", "\(slow)")
        // Still answering.
        let after = try await Self.client(["raw", String(port), Self.hex("GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")])
        #expect(Self.response(after["response"] as? String ?? "").status == 200)
    }

    @Test func malformedAndOddRequestsGetTheirAnswer() async throws {
        let (_, agent, port) = try await Self.startAgent("metrics-malformed")
        defer { Task { await agent.stop() } }
        func send(_ text: String) async throws -> (status: Int?, headers: [String: String], body: String, eof: Bool, raw: String) {
            let r = try await Self.client(["raw", String(port), Self.hex(text)])
            let raw = r["response"] as? String ?? ""
            let parsed = Self.response(raw)
            return (parsed.status, parsed.headers, parsed.body, r["eof"] as? Bool ?? false, raw)
        }
        // Garbage, a NUL in the request line, an unknown version: 400, then closed.
        for text in ["garbage\r\n\r\n", "GET /metrics\0 HTTP/1.1\r\n\r\n", "GET /metrics HTTP/2.0\r\n\r\n", "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"] {
            let r = try await send(text)
            #expect(r.status == 400, "\(text.debugDescription): \(r.raw.debugDescription)")
            #expect(r.eof, "\(text.debugDescription) left open")
        }
        // A head over 8 KiB: 431, closed.
        let big = try await send("GET /metrics HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 9000) + "\r\n\r\n")
        #expect(big.status == 431, "\(big.raw.prefix(100))")
        #expect(big.eof)
        // HEAD: the Content-Length GET would have, and no body.
        let get = try await send("GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        let head = try await send("HEAD /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        #expect(get.status == 200 && head.status == 200)
        #expect(Int(head.headers["content-length"] ?? "") == get.body.utf8.count, "HEAD \(head.headers), GET body \(get.body.utf8.count)")
        #expect(head.body.isEmpty)
        // A body the listener does not read: answered, then closed.
        let post = try await send("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        #expect(post.status == 405 && post.headers["allow"] == "GET, HEAD" && post.eof)
        // HTTP/1.0 closes after its answer; other paths are 404.
        let old = try await send("GET /other HTTP/1.0\r\n\r\n")
        #expect(old.status == 404 && old.eof)
        // Two pipelined requests in one packet: two answers, in order, then closed.
        let two = try await send("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\nGET /nothing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        #expect(two.raw.components(separatedBy: "HTTP/1.1 200").count == 2 && two.raw.hasSuffix("metrics are at /metrics\n"), "\(two.raw.suffix(200))")
        #expect(two.eof)
    }

    /// The text file: 0644 under the unit's UMask=0077, and a symbolic link planted at its
    /// temporary name is removed, never written through.
    @Test func theTextFileIsReadableByOthersAndNeverFollowsALink() async throws {
        let fixture = try AgentFixture(label: "metrics-textfile")
        let unused = try ServerSocketProbe.freePort()
        try fixture.writeConfig(url: "http://127.0.0.1:\(unused)", extra: "metrics:\n  textfile: metrics/sioagent.prom\n  interval: 1s\n")
        try fixture.writeRules("rules:\n  - id: r\n    on: e\n    then:\n      - log: stdout\n")
        try FileManager.default.createDirectory(atPath: fixture.path("metrics"), withIntermediateDirectories: true)
        let agent = try ChildProcess(
            "/bin/sh", ["-c", #"umask 077 && exec "$0" run --config "$1""#, try TestPaths.sioagent, fixture.path("agent.yaml")],
            directory: fixture.directory, name: "sioagent")
        defer { Task { await agent.stop() } }
        try await agent.waitFor("the text file") { fixture.exists("metrics/sioagent.prom") }
        var info = stat()
        #expect(stat(fixture.path("metrics/sioagent.prom"), &info) == 0)
        #expect(info.st_mode & 0o777 == 0o644, "mode \(String(info.st_mode & 0o777, radix: 8))")

        let victim = fixture.path("victim")
        try "untouched".write(toFile: victim, atomically: false, encoding: .utf8)
        let temporary = fixture.path("metrics/sioagent.prom.tmp.\(agent.pid)")
        #expect(symlink(victim, temporary) == 0)
        // The next write removes the link (lstat finds nothing) and renames its own file.
        try await agent.waitFor("the planted link to be replaced") {
            var l = stat()
            return lstat(temporary, &l) != 0
        }
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched")
        #expect(lstat(fixture.path("metrics/sioagent.prom"), &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFREG && info.st_mode & 0o777 == 0o644)
    }

    @Test(arguments: [
        ("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", MetricsRequest(method: "GET", path: "/metrics", keepAlive: true, hasBody: false)),
        ("\r\nHEAD /metrics?x=1 HTTP/1.0\r\n\r\n", MetricsRequest(method: "HEAD", path: "/metrics", keepAlive: false, hasBody: false)),
        ("GET / HTTP/1.0\nConnection: keep-alive\n\n", MetricsRequest(method: "GET", path: "/", keepAlive: true, hasBody: false)),
        ("POST /m HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", MetricsRequest(method: "POST", path: "/m", keepAlive: false, hasBody: true)),
    ])
    func requestHeadsParse(text: String, expected: MetricsRequest) {
        guard case .request(let request, let consumed) = MetricsRequestParser.parse(Array(text.utf8)) else {
            Issue.record("not parsed: \(text.debugDescription)")
            return
        }
        #expect(request == expected)
        #expect(consumed == text.utf8.count)
    }

    /// At the limit with no idle connection, a connection whose answer has waited unread for
    /// `stalledAnswer` makes room (the longest waiting first); one that waits less does not.
    @Test func aStalledAnswerMakesRoomAtTheLimit() throws {
        let connections = MetricsConnections(limit: 3)
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        func connected() throws -> EmbeddedChannel {
            let channel = EmbeddedChannel()
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
            return channel
        }
        let channels = try (0..<3).map { _ in try connected() }
        #expect(channels.allSatisfy { $0.isActive })
        for channel in channels { #expect(connections.admit(channel, now: start)) }
        connections.writing(channels[0], since: start + .milliseconds(200))
        connections.writing(channels[1], since: start + .milliseconds(100))
        connections.busy(channels[2])
        let late = try connected()
        // Every answer has waited less than the bound: refused, nobody closed.
        #expect(!connections.admit(late, now: start + .milliseconds(900)))
        #expect(channels.allSatisfy { $0.isActive })
        // Past the bound: the answer waiting longest (channel 1) makes room.
        #expect(connections.admit(late, now: start + .milliseconds(1_150)))
        #expect(!channels[1].isActive)
        #expect(channels[0].isActive && channels[2].isActive)
        #expect(connections.count == 3)
        // A new connection counts as idle until its request comes.
        connections.busy(late)
        // An idle connection still goes first, however recent.
        connections.idle(channels[0], since: start + .seconds(5))
        #expect(connections.admit(try connected(), now: start + .seconds(5)))
        #expect(!channels[0].isActive)
        #expect(channels[2].isActive)
    }

    @Test func incompleteAndOversizedHeads() {
        #expect(MetricsRequestParser.parse(Array("GET /metrics HTTP/1.1\r\nHost: a\r\n".utf8)) == .incomplete)
        #expect(MetricsRequestParser.parse(Array(repeating: UInt8(ascii: "a"), count: 8 * 1024)) == .tooLarge)
        #expect(MetricsRequestParser.parse(Array(("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 8200) + "\r\n\r\n").utf8)) == .tooLarge)
        #expect(MetricsRequestParser.parse(Array("get / HTTP/1.1\r\n\r\n".utf8)) == .malformed)
        // Blank lines before a head count towards its bound: a stream of CRLF is too large, not
        // incomplete (which would buffer it all).
        #expect(MetricsRequestParser.parse(Array(repeating: 0x0A, count: 8 * 1024)) == .tooLarge)
        #expect(MetricsRequestParser.parse(Array(String(repeating: "\r\n", count: 4 * 1024 + 1).utf8)) == .tooLarge)
        #expect(MetricsRequestParser.parse(Array(String(repeating: "\r\n", count: 100).utf8)) == .incomplete)
    }
}

final class PeakSample: Sendable {
    let value = Mutex<Int>(0)
}
