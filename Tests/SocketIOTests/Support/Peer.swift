import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing

@testable import SocketIO

/// The package root.
let packageRoot = URL(fileURLWithPath: TestPaths.packageRoot)

struct PeerError: Error, CustomStringConvertible {
    var description: String
}

/// A real python-socketio server (Tests/SocketIOTests/Peer/server.py) in a child process.
final class PeerServer: @unchecked Sendable {
    let process: Process
    let port: Int
    let scheme: String

    var url: String { "\(scheme)://127.0.0.1:\(port)" }

    private init(process: Process, port: Int, scheme: String) {
        self.process = process
        self.port = port
        self.scheme = scheme
    }

    /// pingTimeout defaults to 5 s so a loaded machine does not cause ping timeouts; tests of
    /// the heartbeat pass their own. `legacy`: the Socket.IO v2 / Engine.IO 3 peer
    /// (Peer/legacy_server.py, python-socketio 4.6.1).
    static func start(port: Int = 0, pingInterval: Int = 1, pingTimeout: Int = 5, tls: (cert: String, key: String)? = nil,
                      tlsMax: String? = nil, legacy: Bool = false) async throws -> PeerServer {
        var arguments = [
            packageRoot.appendingPathComponent(legacy ? "Tests/SocketIOTests/Peer/legacy_server.py" : "Tests/SocketIOTests/Peer/server.py").path,
            "--port", String(port), "--ping-interval", String(pingInterval), "--ping-timeout", String(pingTimeout),
        ]
        if let tls { arguments += ["--tls", tls.cert, tls.key] }
        if let tlsMax { arguments += ["--tls-max", tlsMax] }
        return try await launch(arguments, scheme: tls == nil ? "http" : "https", python: legacy ? try TestPaths.legacyPython : try TestPaths.python)
    }

    /// The raw Engine.IO server (Peer/rogue.py) that misbehaves in `mode`; timings in ms.
    static func rogue(_ mode: String, pingInterval: Int = 25_000, pingTimeout: Int = 20_000) async throws -> PeerServer {
        try await launch([
            packageRoot.appendingPathComponent("Tests/SocketIOTests/Peer/rogue.py").path,
            "--mode", mode, "--ping-interval", String(pingInterval), "--ping-timeout", String(pingTimeout),
        ], scheme: "http")
    }

    /// The rogue server's counters (GET /stats).
    func stats() async throws -> [String: Int] {
        let (data, _) = try await URLSession.shared.data(from: URL(string: "\(url)/stats")!)
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        return object.compactMapValues { ($0 as? NSNumber)?.intValue }
    }

    private static func launch(_ arguments: [String], scheme: String, python: String? = nil) async throws -> PeerServer {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try python ?? TestPaths.python)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        if let log = ProcessInfo.processInfo.environment["SIOAGENT_PEER_LOG"],
            FileManager.default.createFile(atPath: log, contents: nil), let h = FileHandle(forWritingAtPath: log) {
            process.standardError = h
        } else {
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        let handle = out.fileHandleForReading
        let line: String? = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var data = Data()
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    data.append(chunk)
                    if let text = String(data: data, encoding: .utf8), text.contains("\n") {
                        continuation.resume(returning: text)
                        return
                    }
                }
                continuation.resume(returning: nil)
            }
        }
        guard let line, line.hasPrefix("READY "), let p = Int(line.dropFirst(6).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw PeerError(description: "the python peer did not start (output: \(line ?? "none"))")
        }
        return PeerServer(process: process, port: p, scheme: scheme)
    }

    func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func pause() { Foundation.kill(process.processIdentifier, SIGSTOP) }
    func resume() { Foundation.kill(process.processIdentifier, SIGCONT) }

    deinit {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGCONT)
            Foundation.kill(process.processIdentifier, SIGKILL)
        }
    }
}

/// Records everything the client's hook sees.
final class Recorder: Sendable {
    let events = Mutex<[SocketIOClientEvent]>([])

    var hook: @Sendable (SocketIOClientEvent) -> Void {
        { [self] e in events.withLock { $0.append(e) } }
    }

    var all: [SocketIOClientEvent] { events.withLock { $0 } }

    func named(_ name: String) -> [SocketIOEvent] {
        all.compactMap { if case .event(let e) = $0, e.name == name { return e } else { return nil } }
    }

    func count(where predicate: (SocketIOClientEvent) -> Bool) -> Int {
        all.filter(predicate).count
    }

    /// Waits until `predicate` holds over the recorded events (polling), or fails the test.
    func wait(_ what: String, timeout: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation,
              until predicate: ([SocketIOClientEvent]) -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if predicate(all) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Once more after the deadline: a test task starved past it still sees what happened.
        if predicate(all) { return }
        Issue.record("timed out waiting for \(what); events: \(all.map(describe))", sourceLocation: sourceLocation)
        throw PeerError(description: "timed out waiting for \(what)")
    }
}

func describe(_ e: SocketIOClientEvent) -> String {
    switch e {
    case .event(let ev): return "event(\(ev.namespace) \(ev.name) \(ev.args))"
    case .connect(let ns): return "connect(\(ns))"
    case .disconnect(let ns, let r): return "disconnect(\(ns), \(r))"
    case .connectError(let ns, let err): return "connectError(\(ns), \(err))"
    case .reconnectAttempt(let n): return "reconnectAttempt(\(n))"
    case .reconnect(let n): return "reconnect(\(n))"
    case .reconnectFailed: return "reconnectFailed"
    case .stopped(let err): return "stopped(\(err))"
    }
}

func isConnect(_ ns: String) -> (SocketIOClientEvent) -> Bool {
    { if case .connect(let n) = $0 { return n == ns } else { return false } }
}

func isDisconnect(_ ns: String) -> (SocketIOClientEvent) -> Bool {
    { if case .disconnect(let n, _) = $0 { return n == ns } else { return false } }
}

let testLogger: Logger = {
    var logger = Logger(label: "socketio-test") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = ProcessInfo.processInfo.environment["SIOAGENT_TEST_LOG"] == nil ? .critical : .debug
    return logger
}()

/// Waits until `condition` holds (polling every 20 ms), or fails the test after `timeout`.
func waitFor(_ what: String, timeout: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation,
             _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    if try await condition() { return }
    Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
    throw PeerError(description: "timed out waiting for \(what)")
}

/// Fast reconnection for tests.
let fastReconnection = ReconnectionPolicy(delay: .milliseconds(200), maxDelay: .milliseconds(500))

func makeClient(_ server: PeerServer, transports: TransportMode = .websocket, namespaces: [String: JSONValue?] = ["/": nil],
                reconnection: ReconnectionPolicy = fastReconnection, recorder: Recorder,
                configure: (inout SocketIOClientConfiguration) -> Void = { _ in }) -> SocketIOClient {
    var c = SocketIOClientConfiguration(url: server.url, transports: transports, namespaces: namespaces,
                                        reconnection: reconnection, connectTimeout: .seconds(5))
    configure(&c)
    return SocketIOClient(configuration: c, logger: testLogger, onEvent: recorder.hook)
}

/// Runs the sioagent binary built next to the tests (off the cooperative pool).
func runCLI(_ arguments: [String], timeout: TimeInterval = 30) async throws -> (code: Int32, stdout: String, stderr: String) {
    let binary = try TestPaths.sioagent
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    return await withCheckedContinuation { continuation in
        let errData = Mutex(Data())
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            let d = err.fileHandleForReading.readDataToEndOfFile()
            errData.withLock { $0 = d }
            group.leave()
        }
        DispatchQueue.global().async {
            let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
            let outData = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            killer.cancel()
            group.wait()
            continuation.resume(returning: (process.terminationStatus,
                                            String(decoding: outData, as: UTF8.self),
                                            String(decoding: errData.withLock { $0 }, as: UTF8.self)))
        }
    }
}
