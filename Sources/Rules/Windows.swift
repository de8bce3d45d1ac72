import SIOCore

/// A shared state value set by a `set:` action. `expires` is infinity without `ttl`.
public struct StateEntry: Sendable, Equatable {
    public var value: JSONValue
    public var expires: Double

    public init(value: JSONValue, expires: Double = .infinity) {
        self.value = value
        self.expires = expires
    }
}

/// What one window of a rule samples: every event (`count_over`) or the numbers an expression
/// gives, over the last `seconds`. Calls with the same expression text and duration share one.
struct WindowSpec: Sendable, Equatable {
    /// nil for `count_over`.
    var argumentText: String?
    var seconds: Double
}

/// The samples of one window for one key: times (and values), oldest first, in a ring bounded by
/// `capacity` (the rule's `window_samples`); the oldest sample is dropped when full.
struct SampleRing: Sendable {
    private(set) var times: [Double] = []
    private(set) var values: [Double] = []
    private var head = 0
    private(set) var count = 0
    let capacity: Int
    let hasValues: Bool
    /// Sum of the values held (kept as samples come and go).
    private(set) var sum = 0.0

    init(capacity: Int, hasValues: Bool) {
        self.capacity = max(1, capacity)
        self.hasValues = hasValues
    }

    @inline(__always)
    private func physical(_ i: Int) -> Int {
        let j = head + i
        return j >= times.count ? j - times.count : j
    }

    mutating func append(_ time: Double, _ value: Double) {
        if count == capacity {
            dropOldest()
        }
        if count == times.count {
            // Grow (doubling, up to capacity), unrolling the ring so it starts at 0.
            let newSize = min(capacity, max(4, times.count * 2))
            var t = [Double](); t.reserveCapacity(newSize)
            var v = [Double](); if hasValues { v.reserveCapacity(newSize) }
            for i in 0..<count {
                let p = physical(i)
                t.append(times[p])
                if hasValues { v.append(values[p]) }
            }
            t += [Double](repeating: 0, count: newSize - count)
            if hasValues { v += [Double](repeating: 0, count: newSize - count) }
            times = t
            values = v
            head = 0
        }
        let p = physical(count)
        times[p] = time
        if hasValues {
            values[p] = value
            sum += value
        }
        count += 1
    }

    private mutating func dropOldest() {
        if hasValues { sum -= values[head] }
        head += 1
        if head == times.count { head = 0 }
        count -= 1
        if count == 0 { sum = 0; head = 0 }
    }

    /// Drops the samples at or before `cutoff`.
    mutating func drop(upTo cutoff: Double) {
        while count > 0 && times[head] <= cutoff { dropOldest() }
    }

    /// The i-th sample, oldest first.
    func sample(_ i: Int) -> (time: Double, value: Double) {
        let p = physical(i)
        return (times[p], hasValues ? values[p] : 0)
    }

    /// Bytes held by the buffers.
    var bytes: Int { (times.capacity + values.capacity) * 8 }
}

/// The window samples of one key of one rule.
///
/// A class so that evaluating a condition reads (and prunes) the samples in place without copying
/// them: it is owned by one `RuleEngine` and only touched by it, on the thread that drives it (the
/// agent's event loop), which is why the unchecked `Sendable` holds.
final class KeyWindows: @unchecked Sendable {
    var rings: [SampleRing]
    let seconds: [Double]

    init(specs: [WindowSpec], capacity: Int) {
        rings = specs.map { SampleRing(capacity: capacity, hasValues: $0.argumentText != nil) }
        seconds = specs.map(\.seconds)
    }

    /// Drops what fell out of every window by `now`.
    func prune(_ now: Double) {
        for i in rings.indices { rings[i].drop(upTo: now - seconds[i]) }
    }

    /// The value of a window function at `now`; nil when no number is left (`count_over` gives 0).
    func value(_ w: WindowCall, at now: Double) -> JSONValue? {
        guard w.slot >= 0, w.slot < rings.count else { return nil }
        rings[w.slot].drop(upTo: now - w.seconds)
        let ring = rings[w.slot]
        let n = ring.count
        if w.function == .count { return .number(Double(n)) }
        guard n > 0 else { return nil }
        switch w.function {
        case .count: return .number(Double(n))
        case .sum: return .number(ring.sum)
        case .avg: return .number(ring.sum / Double(n))
        case .min, .max:
            var best = ring.sample(0).value
            for i in 1..<n {
                let v = ring.sample(i).value
                best = w.function == .min ? Swift.min(best, v) : Swift.max(best, v)
            }
            return .number(best)
        case .delta:
            return .number(ring.sample(n - 1).value - ring.sample(0).value)
        case .rate:
            let first = ring.sample(0), last = ring.sample(n - 1)
            guard last.time > first.time else { return nil }
            return .number((last.value - first.value) / (last.time - first.time))
        }
    }

    var bytes: Int { rings.reduce(0) { $0 + $1.bytes + 48 } + 32 }
}
