import Agent
import Foundation
import TestSupport
import Testing

struct LogFileWriterTests {
    @Test func createsDirectoriesAndRotatesBySizeKeepingNFiles() throws {
        let dir = try TestPaths.temporaryDirectory("logs")
        let path = dir + "/a/b/out.log"
        let writer = LogFileWriter(maxBytes: 20, keep: 2)
        for i in 0..<7 {
            try writer.append("line \(i) .....", to: path)  // 15 bytes with the newline: one per file
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "line 6 .....\n")
        #expect(try String(contentsOfFile: path + ".1", encoding: .utf8) == "line 5 .....\n")
        #expect(try String(contentsOfFile: path + ".2", encoding: .utf8) == "line 4 .....\n")
        #expect(!FileManager.default.fileExists(atPath: path + ".3"))
    }

    @Test func concurrentWritersNeverTearOrLoseALine() async throws {
        let dir = try TestPaths.temporaryDirectory("logs-race")
        let path = dir + "/shared.log"
        let writer = LogFileWriter(maxBytes: 1 << 30, keep: 1)
        let line = String(repeating: "x", count: 3000)
        await withTaskGroup(of: Void.self) { group in
            for w in 0..<4 {
                group.addTask {
                    for i in 0..<250 { try? writer.append("\(w)-\(i) \(line)", to: path) }
                }
            }
        }
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1000)
        #expect(lines.allSatisfy { $0.hasSuffix(line) && $0.split(separator: " ").count == 2 })
        #expect(Set(lines.map { $0.split(separator: " ")[0] }).count == 1000)
    }
}
