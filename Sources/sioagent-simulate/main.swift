import Simulation

#if canImport(Glibc)
import Glibc
#endif

/// scripts/simulate --seeds N [--seed S] [--hours H] [--first F] [--mutation NAME]
let usage = """
    usage: sioagent-simulate [--seeds N] [--seed S] [--first F] [--hours H] [--mutation NAME] [--jobs J] [--stop-at-first]
      --seeds N      run seeds F ..< F+N (default 100; F = --first, default 1)
      --seed S       replay seed S alone, with the last steps of its trace (--trace N: N steps, default 64)
      --hours H      simulated hours of faults per seed, before 20 healed minutes (default 1)
      --jobs J       seeds run side by side (default 2)
      --mutation M   put a known fault back: \(Mutation.allCases.map(\.rawValue).joined(separator: ", "))
    """

struct Options {
    var seeds = 100
    var first: UInt64 = 1
    var single: UInt64?
    var hours = 1.0
    var mutation: Mutation?
    var stopAtFirst = false
    /// Steps of a replayed seed's trace printed.
    var traceLines = 64
    /// Seeds run side by side (each seed alone is single-threaded and deterministic).
    var workers = 2
}

func fail(_ message: String) -> Never {
    let text = Array("sioagent-simulate: \(message)\n\(usage)\n".utf8)
    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

func parse(_ arguments: [String]) -> Options {
    var o = Options()
    var rest = arguments[...]
    func value<T>(_ name: String, _ parse: (String) -> T?) -> T {
        guard let text = rest.popFirst(), let v = parse(text) else { fail("\(name) needs a valid value") }
        return v
    }
    while let argument = rest.popFirst() {
        switch argument {
        case "--seeds": o.seeds = value(argument) { Int($0).flatMap { $0 >= 0 && $0 <= 10_000_000 ? $0 : nil } }
        case "--seed": o.single = value(argument) { UInt64($0) }
        case "--first": o.first = value(argument) { UInt64($0) }
        case "--hours": o.hours = value(argument) { Double($0).flatMap { $0 > 0 && $0 <= 10_000 ? $0 : nil } }
        case "--mutation": o.mutation = value(argument) { Mutation(rawValue: $0) }
        case "--stop-at-first": o.stopAtFirst = true
        case "--trace": o.traceLines = value(argument) { Int($0).flatMap { $0 >= 1 && $0 <= 10_000_000 ? $0 : nil } }
        case "--jobs": o.workers = value(argument) { Int($0).flatMap { $0 >= 1 && $0 <= 64 ? $0 : nil } }
        case "-h", "--help":
            print(usage)
            exit(0)
        default: fail("unknown argument \(argument)")
        }
    }
    return o
}

let options = parse(Array(CommandLine.arguments.dropFirst()))
let seeds: [UInt64]
if let single = options.single {
    seeds = [single]
    let result = Simulator.run(seed: single, hours: options.hours, mutation: options.mutation, traceLines: options.traceLines)
    print("seed \(single) [faults: \(result.faults)]: \(result.steps) steps, \(result.runs) agent runs, \(result.delivered) alerts delivered, trace hash \(String(result.traceHash, radix: 16))")
    print("  last steps:")
    for line in result.trace { print("    \(line)") }
} else {
    seeds = (0..<UInt64(options.seeds)).map { options.first &+ $0 }
}
let outcome = await Simulator.run(
    seeds: seeds, hours: options.hours, mutation: options.mutation, workers: options.workers,
    traceLines: options.single == nil ? 20 : 0, stopAtFirst: options.stopAtFirst
) { print($0) }
print(Simulator.summary(outcome))
exit(outcome.violations == 0 ? 0 : 1)
