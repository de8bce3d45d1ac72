@testable import Agent
import SocketIO
import Testing

/// The outbox's table of alerts handed to the client, and the reserved-name check that replaced a
/// set lookup per emit.
struct InFlightTests {
    @Test func valuesComeOutByIdInAnyOrder() {
        var table = InFlight<String>()
        let a = table.append("a"), b = table.append("b"), c = table.append("c")
        #expect(table.count == 3)
        #expect(table.remove(b) == "b")
        #expect(table.remove(b) == nil)  // taken already
        #expect(table.remove(a) == "a")
        #expect(table.count == 1)
        let d = table.append("d")
        #expect(d > c)
        #expect(table.remove(99) == nil)  // never handed out
        #expect(table.removeAll() == ["c", "d"])
        #expect(table.isEmpty)
        #expect(table.remove(c) == nil)
        let e = table.append("e")
        #expect(e > d)
        #expect(table.remove(e) == "e")
        #expect(table.isEmpty)
    }

    @Test func theWindowShrinksWhenTheOldestIsRemoved() {
        var table = InFlight<Int>()
        var ids: [UInt64] = []
        for i in 0..<1000 { ids.append(table.append(i)) }
        for id in ids.reversed() { _ = table.remove(id) }
        #expect(table.isEmpty)
        #expect(table.removeAll().isEmpty)
    }

    @Test func reservedNamesAreTheSetsNames() {
        for name in socketIOReservedEventNames { #expect(isSocketIOReservedEventName(name)) }
        for name in ["alert", "connectx", "Connect", "disconnected", "", "newListener2", "removeListeners"] {
            #expect(!isSocketIOReservedEventName(name))
        }
    }
}
