/// Runs seeds and reports: a failing seed prints its number, its faults and the last steps of
/// its trace; `--seed S` replays one seed exactly.
public struct Simulator {
    public struct Outcome: Sendable {
        public var seeds = 0
        public var hours = 0.0
        public var violations = 0
        public var failingSeeds: [UInt64] = []
        public var steps = 0
        public var delivered = 0
    }

    public struct SeedResult: Sendable {
        public var seed: UInt64
        public var violations: [String]
        public var faults: String
        public var trace: [String]
        public var steps: Int
        public var delivered: Int
        public var runs: Int
        /// A hash of the whole trace: two runs of one seed give the same.
        public var traceHash: UInt64
    }

    public init() {}

    /// One seed's world, run to its end.
    public static func run(seed: UInt64, hours: Double, mutation: Mutation? = nil, traceLines: Int = 64) -> SeedResult {
        let world = World(seed: seed, hours: hours, mutation: mutation)
        world.traceCapacity = max(1, traceLines)
        let violations = world.runToEnd()
        return SeedResult(
            seed: seed, violations: violations,
            faults: "\(world.faults); max_items \(world.settings.maxItems); shutdown.timeout \(world.settings.shutdownTimeout); ping \(world.settings.pingInterval / 1000)+\(world.settings.pingTimeout / 1000) s; in_flight \(world.settings.inFlight)"
                + (world.settings.policy.reconnectAfterServerDisconnect ? "; after_server_disconnect" : ""),
            trace: world.trace, steps: world.steps, delivered: world.checker.delivered, runs: world.runs,
            traceHash: world.traceHash)
    }

    /// Runs `seeds` on `workers` tasks; failures are printed in seed order, each with its faults
    /// and the last steps of its trace.
    public static func run(
        seeds: [UInt64], hours: Double, mutation: Mutation?, workers: Int = 1, traceLines: Int = 20, stopAtFirst: Bool = false,
        print output: (String) -> Void
    ) async -> Outcome {
        let workers = max(1, min(workers, seeds.count))
        let results = await withTaskGroup(of: [SeedResult].self) { group in
            for k in 0..<workers {
                group.addTask {
                    var mine: [SeedResult] = []
                    for i in stride(from: k, to: seeds.count, by: workers) {
                        let result = run(seed: seeds[i], hours: hours, mutation: mutation)
                        mine.append(result)
                        if stopAtFirst && !result.violations.isEmpty { break }
                    }
                    return mine
                }
            }
            var all: [SeedResult] = []
            for await part in group { all += part }
            return all
        }
        let order = Dictionary(uniqueKeysWithValues: seeds.enumerated().map { ($1, $0) })
        var outcome = Outcome()
        for result in results.sorted(by: { order[$0.seed, default: 0] < order[$1.seed, default: 0] }) {
            outcome.seeds += 1
            outcome.hours += hours
            outcome.steps += result.steps
            outcome.delivered += result.delivered
            guard !result.violations.isEmpty else { continue }
            outcome.violations += result.violations.count
            outcome.failingSeeds.append(result.seed)
            output("seed \(result.seed): \(result.violations.count) invariant violation(s) [faults: \(result.faults)]")
            for v in result.violations { output("  violation: \(v)") }
            if traceLines > 0 {
                output("  last steps:")
                for line in result.trace.suffix(traceLines) { output("    \(line)") }
            }
            output("  replay: scripts/simulate --seed \(result.seed)\(mutation.map { " --mutation \($0.rawValue)" } ?? "")")
        }
        return outcome
    }

    public static func summary(_ o: Outcome) -> String {
        let hours = o.hours.rounded() == o.hours ? String(Int(o.hours)) : String(o.hours)
        return "simulated \(o.seeds) seeds, \(hours) simulated hours, \(o.violations) invariant violations"
    }
}
