@testable import Agent
import Foundation
import Logging
import Rules
import SIOCore
import TestSupport
import Testing

/// The shared-state file: written off the caller's thread, atomically, read back at start.
struct StatePersisterTests {
    let logger = Logger(label: "test")

    @Test func writesTheLatestSnapshotAndReadsItBack() async throws {
        let dir = try TestPaths.temporaryDirectory("state")
        let persister = StatePersister(directory: dir, logger: logger, batchDelay: .milliseconds(50))
        persister.submit(["charging": StateEntry(value: true)])
        persister.submit(["charging": StateEntry(value: false), "mode": StateEntry(value: "eco", expires: 2e9)])
        await persister.close()
        let text = try String(contentsOfFile: dir + "/state.json", encoding: .utf8)
        #expect(text == #"{"version":1,"state":{"charging":{"value":false},"mode":{"value":"eco","expires":2000000000}}}"# + "\n")
        var st = stat()
        #expect(stat(dir + "/state.json", &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(!FileManager.default.fileExists(atPath: dir + "/state.json.tmp"))

        let again = StatePersister(directory: dir, logger: logger)
        // Expired values are dropped when read.
        #expect(again.load(now: 1e9) == ["charging": StateEntry(value: false), "mode": StateEntry(value: "eco", expires: 2e9)])
        #expect(again.load(now: 3e9) == ["charging": StateEntry(value: false)])
        await again.close()
    }

    @Test func anUnreadableFileIsMovedAsideAndTheAgentStartsEmpty() async throws {
        let dir = try TestPaths.temporaryDirectory("state-corrupt")
        try "{\"state\": [1, 2".write(toFile: dir + "/state.json", atomically: false, encoding: .utf8)
        try "left by a crash".write(toFile: dir + "/state.json.tmp", atomically: false, encoding: .utf8)
        let persister = StatePersister(directory: dir, logger: logger, batchDelay: .zero)
        #expect(persister.load(now: 0).isEmpty)
        #expect(FileManager.default.fileExists(atPath: dir + "/state.json.corrupt"))
        // A temporary file left by a crash does not stop the next write.
        persister.submit(["a": StateEntry(value: 1)])
        await persister.close()
        #expect(persister.load(now: 0) == ["a": StateEntry(value: 1)])
    }
}
