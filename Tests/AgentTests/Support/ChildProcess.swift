import Foundation
import Synchronization
import TestSupport

/// A child process for end-to-end tests: its stdout and stderr collected as lines, its stdin
/// writable, and waits with deadlines (never a fixed sleep standing in for a condition).
final class ChildProcess: Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let process: Process
    private let input: Pipe
    private let out = LineCollector()
    private let err = LineCollector()
    let name: String

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], directory: String? = nil, name: String) throws {
        self.name = name
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        input = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = input
        process.standardOutput = stdout
        process.standardError = stderr
        Self.collect(stdout, into: out)
        Self.collect(stderr, into: err)
        try process.run()
    }

    private static func collect(_ pipe: Pipe, into store: LineCollector) {
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            store.append(data)
        }
    }

    var stdoutLines: [String] { out.lines }
    var stderrLines: [String] { err.lines }
    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// stdout lines parsed as JSON objects (other lines skipped).
    var jsonLines: [[String: Any]] {
        stdoutLines.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    func send(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits until `condition` holds, checking every 50 ms, for at most `timeout`.
    func waitFor(_ what: String, timeout: Duration = .seconds(20), until condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            if ContinuousClock.now > deadline {
                throw Failure(description: "\(name): timed out waiting for \(what)\n--- stdout:\n\(stdoutLines.suffix(40).joined(separator: "\n"))\n--- stderr:\n\(stderrLines.suffix(40).joined(separator: "\n"))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits for the process to exit; returns its status, or nil if it is still running.
    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline { return nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return process.terminationStatus
    }

    /// Kills the process (SIGKILL) if it still runs, and waits for it.
    func stop() async {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        _ = await waitForExit(timeout: .seconds(10))
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Splits a byte stream into lines as it arrives.
final class LineCollector: Sendable {
    private let state = Mutex<(lines: [String], partial: Data)>(([], Data()))

    func append(_ data: Data) {
        state.withLock { state in
            state.partial.append(data)
            while let nl = state.partial.firstIndex(of: 0x0A) {
                state.lines.append(String(decoding: state.partial[state.partial.startIndex..<nl], as: UTF8.self))
                state.partial.removeSubrange(state.partial.startIndex...nl)
            }
        }
    }

    var lines: [String] { state.withLock { $0.lines } }
}

extension TestPaths {
    static func temporaryDirectory(_ label: String) throws -> String {
        let path = NSTemporaryDirectory() + "sioagent-\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
