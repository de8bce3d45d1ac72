import Foundation
import Synchronization
import Testing

/// A real tinyproxy (Debian's package) run as a child of the test, with its own configuration
/// on a free port. Its log (stdout, level Info) tells which requests went through it.
final class Tinyproxy: @unchecked Sendable {
    let process: Process
    let port: Int
    let directory: String
    private let output = LineStore()

    var url: String { "http://127.0.0.1:\(port)" }

    /// - Parameters:
    ///   - basicAuth: user and password the proxy demands (407 without them).
    ///   - connectPorts: the only ports CONNECT may reach (all when empty).
    init(basicAuth: (user: String, password: String)? = nil, connectPorts: [Int] = []) async throws {
        let executable = "/usr/bin/tinyproxy"
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw PeerError(description: "tinyproxy is not installed (apt-get install tinyproxy; .ci/run does)")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tinyproxy-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        port = try freeTCPPort()
        var config = """
            Port \(port)
            Listen 127.0.0.1
            Timeout 60
            MaxClients 50
            LogLevel Info
            Allow 127.0.0.1
            DisableViaHeader Yes

            """
        if let basicAuth { config += "BasicAuth \(basicAuth.user) \(basicAuth.password)\n" }
        for p in connectPorts { config += "ConnectPort \(p)\n" }
        let configPath = directory + "/tinyproxy.conf"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)

        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["-d", "-c", configPath]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            output.lines.withLock { $0 += lines }
        }
        try process.run()
        // Ready once it accepts connections.
        let deadline = ContinuousClock.now + .seconds(10)
        while !canConnect(port: port) {
            guard ContinuousClock.now < deadline, process.isRunning else {
                throw PeerError(description: "tinyproxy did not start: \(log.joined(separator: "\n"))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Every line tinyproxy logged.
    var log: [String] { output.lines.withLock { $0 } }

    /// The request lines it received ("CONNECT 127.0.0.1:1234 HTTP/1.1", "GET http://… HTTP/1.1").
    var requests: [String] {
        log.compactMap { line in
            guard let r = line.range(of: "): ") , line.contains("Request (file descriptor") else { return nil }
            return String(line[r.upperBound...])
        }
    }

    func stop() {
        // tinyproxy -d can take a long time to act on SIGTERM; it holds nothing worth a clean exit.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }
}

final class LineStore: Sendable {
    let lines = Mutex<[String]>([])
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freeTCPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    let bound = withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw PeerError(description: "cannot bind a probe socket") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}

func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}
