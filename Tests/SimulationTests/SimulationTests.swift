import Agent
import SIOCore
import Simulation
import Testing

/// The deterministic simulation: seeds hold every invariant, a seed replays exactly, and each
/// known fault put back is caught by the seed recorded for it.
struct SimulationTests {
    @Test func seedsHoldTheInvariants() async {
        let outcome = await Simulator.run(seeds: Array(1...60), hours: 0.5, mutation: nil) { print($0) }
        #expect(outcome.violations == 0, "failing seeds: \(outcome.failingSeeds)")
        #expect(outcome.delivered > 1000)
    }

    @Test func aSeedReplaysExactly() {
        let a = Simulator.run(seed: 424_242, hours: 1)
        let b = Simulator.run(seed: 424_242, hours: 1)
        #expect(a.trace == b.trace)
        #expect(a.steps == b.steps)
        #expect(a.steps > 1000)
    }

    /// Each fault, put back alone, is caught by its recorded seed (and the same seed passes
    /// without it), so the simulation proves something.
    @Test(arguments: MutationSeeds.all)
    func aFaultPutBackIsCaught(_ mutation: Mutation, _ seed: UInt64) {
        let caught = Simulator.run(seed: seed, hours: MutationSeeds.hours, mutation: mutation)
        #expect(!caught.violations.isEmpty, "seed \(seed) no longer catches \(mutation.rawValue)")
        let clean = Simulator.run(seed: seed, hours: MutationSeeds.hours)
        #expect(clean.violations.isEmpty, "\(clean.violations)")
    }

    @Test func aRenameWithoutADirectoryFsyncMayBeUndoneAtACrash() throws {
        var undone = 0, kept = 0
        for seed in UInt64(1)...64 {
            let disk = SimulatedDisk(seed: seed)
            try disk.makeDirectories("/d")
            try disk.storeDurably(directory: "/d", name: "a", bytes: [1])
            try disk.syncDirectory("/d")
            try disk.storeDurably(directory: "/d", name: "b", bytes: [2])
            disk.crash()
            // Synced: always there, whole.
            #expect(try disk.read("/d/a", maxBytes: 10) == [1])
            if disk.exists("/d/b") {
                kept += 1
                #expect(try disk.read("/d/b", maxBytes: 10) == [2])
            } else {
                undone += 1
            }
        }
        #expect(undone > 0 && kept > 0)
    }

    @Test func unsyncedBytesMayVanishOrTearAtACrash() throws {
        var outcomes: Set<Int> = []
        for seed in UInt64(1)...64 {
            let disk = SimulatedDisk(seed: seed)
            try disk.makeDirectories("/d")
            disk.writeUnsynced("/d/log", Array(repeating: 7, count: 100))
            try disk.syncDirectory("/d")
            disk.crash()
            outcomes.insert(try disk.read("/d/log", maxBytes: 1000).count)
        }
        #expect(outcomes.contains(0))
        #expect(outcomes.contains(100))
        #expect(outcomes.contains { $0 > 0 && $0 < 100 })
    }

    @Test func aFullDiskRefusesWrites() throws {
        let disk = SimulatedDisk(seed: 1)
        disk.full = true
        #expect(throws: DiskError.self) { try disk.storeDurably(directory: "/d", name: "a", bytes: [1]) }
        #expect(!disk.exists("/d/a"))
    }
}

/// The seed that caught each fault when it was put back (scripts/simulate --seed S --mutation M
/// replays it).
enum MutationSeeds {
    static let hours = 1.0
    static let all: [(Mutation, UInt64)] = [
        (.stateInSpool, 1), (.batchRelease, 21), (.shutdownWaitsForAck, 5), (.backoffResetAtConnect, 3), (.dropAckAlerts, 1),
    ]
}
