@testable import Agent
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

/// The spool's index at start: every file is read and checked, but only the payloads of the
/// oldest alerts within the budget stay in memory; the rest are read back by file.
@Suite struct SpoolIndexTests {
    @Test func loadKeepsPayloadsWithinItsBudgetOldestFirst() throws {
        let dir = try TestPaths.temporaryDirectory("spool-index")
        let spool = try Spool(directory: dir, maxItems: 100)
        for n in 1...10 {
            _ = try spool.append(SpoolItem(namespace: "/", event: "e", args: [.string(String(repeating: "x", count: 1000)), .number(Double(n))], ackTimeout: nil, rule: "r"))
        }
        let reopened = try Spool(directory: dir, maxItems: 100)
        let (index, corrupt) = reopened.loadIndex(payloadBudget: 3_500)
        #expect(corrupt.isEmpty)
        #expect(index.map(\.item.sequence) == Array(1...10))
        #expect(index.map(\.hasPayload) == [true, true, true] + Array(repeating: false, count: 7))
        #expect(index.filter(\.hasPayload).reduce(0) { $0 + $1.bytes } <= 3_500)
        #expect(index[5].item.args.isEmpty)
        let back = try Spool.readPayloads(directory: dir, file: index[5].file)
        #expect(back[6]?.args.last == .number(6))
    }
}
