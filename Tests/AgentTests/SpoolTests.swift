import Agent
import Foundation
import TestSupport
import Testing

struct SpoolTests {
    @Test func keepsAlertsInOrderAcrossReopening() throws {
        let dir = try TestPaths.temporaryDirectory("spool") + "/spool"
        do {
            let spool = try Spool(directory: dir, maxItems: 10)
            _ = spool.load()
            for i in 0..<3 {
                _ = try spool.append(SpoolItem(namespace: "/", event: "alert", args: [.number(Double(i)), .binary([1, 2])], ackTimeout: i == 1 ? .seconds(5) : nil, rule: "r"))
            }
        }
        let reopened = try Spool(directory: dir, maxItems: 10)
        let (items, corrupt) = reopened.load()
        #expect(corrupt.isEmpty)
        #expect(items.map { $0.args[0] } == [0, 1, 2])
        #expect(items[0].args[1] == .binary([1, 2]))
        #expect(items.map(\.ackTimeout) == [nil, .seconds(5), nil])
        reopened.remove(items[0].sequence)
        let next = try reopened.append(SpoolItem(namespace: "/", event: "alert", args: [3], ackTimeout: nil, rule: "r"))
        #expect(next.stored.sequence > items[2].sequence)
        #expect(try Spool(directory: dir, maxItems: 10).load().items.map { $0.args[0] } == [1, 2, 3])
    }

    @Test func dropsTheOldestBeyondItsBound() throws {
        let dir = try TestPaths.temporaryDirectory("spool-bound")
        let spool = try Spool(directory: dir, maxItems: 2)
        _ = spool.load()
        var dropped: [UInt64] = []
        for i in 0..<4 {
            dropped += try spool.append(SpoolItem(namespace: "/", event: "e", args: [.number(Double(i))], ackTimeout: nil, rule: "r")).dropped
        }
        #expect(dropped.count == 2)
        #expect(try Spool(directory: dir, maxItems: 2).load().items.map { $0.args[0] } == [2, 3])
    }

    @Test func movesUnreadableFilesToCorruptAndReportsThem() throws {
        let dir = try TestPaths.temporaryDirectory("spool-bad")
        try "not json".write(toFile: dir + "/0000000000000007.alert", atomically: true, encoding: .utf8)
        let spool = try Spool(directory: dir, maxItems: 5)
        let (items, corrupt) = spool.load()
        #expect(items.isEmpty)
        #expect(corrupt.map(\.name) == ["0000000000000007.alert"])
        #expect(FileManager.default.fileExists(atPath: dir + "/corrupt/0000000000000007.alert"))
        // New alerts never overwrite it.
        #expect(try spool.append(SpoolItem(namespace: "/", event: "e", args: [], ackTimeout: nil, rule: "r")).stored.sequence == 8)
    }
}
