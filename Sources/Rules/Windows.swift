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

    /// Drops since the sum was last added up from scratch (so rounding errors cannot accumulate).
    private var drops: UInt16 = 0

    private mutating func dropOldest() {
        if hasValues { sum -= values[head] }
        head += 1
        if head == times.count { head = 0 }
        count -= 1
        if count == 0 { sum = 0; head = 0 }
        drops &+= 1
        if drops == 0, hasValues {
            sum = 0
            for i in 0..<count { sum += values[physical(i)] }
        }
    }

    /// Drops the samples at or before `cutoff`.
    mutating func drop(upTo cutoff: Double) {
        while count > 0 && times[head] <= cutoff { dropOldest() }
    }

    /// Drops what is at or before `cutoff`, then aggregates what is left (in place, no copy).
    mutating func value(_ f: WindowFunction, dropping cutoff: Double) -> JSONValue? {
        drop(upTo: cutoff)
        let n = count
        if f == .count { return .number(Double(n)) }
        guard n > 0 else { return nil }
        switch f {
        case .count: return .number(Double(n))
        case .sum: return .number(sum)
        case .avg: return .number(sum / Double(n))
        case .min, .max:
            var best = values[physical(0)]
            for i in 1..<n {
                let v = values[physical(i)]
                best = f == .min ? Swift.min(best, v) : Swift.max(best, v)
            }
            return .number(best)
        case .delta:
            return .number(values[physical(n - 1)] - values[physical(0)])
        case .rate:
            let t0 = times[physical(0)], t1 = times[physical(n - 1)]
            guard t1 > t0 else { return nil }
            return .number((values[physical(n - 1)] - values[physical(0)]) / (t1 - t0))
        }
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
    /// One ring per window slot. Behind a pointer so that appending to a ring is a plain write
    /// (an array property of a class would be copied-on-write checked and exclusivity-checked
    /// on every event).
    let rings: UnsafeMutablePointer<SampleRing>
    let count: Int
    let seconds: [Double]

    init(specs: [WindowSpec], capacity: Int) {
        count = specs.count
        rings = .allocate(capacity: max(1, specs.count))
        for (i, spec) in specs.enumerated() {
            (rings + i).initialize(to: SampleRing(capacity: capacity, hasValues: spec.argumentText != nil))
        }
        seconds = specs.map(\.seconds)
    }

    deinit {
        rings.deinitialize(count: count)
        rings.deallocate()
    }

    /// Drops what fell out of every window by `now`.
    func prune(_ now: Double) {
        for i in 0..<count { rings[i].drop(upTo: now - seconds[i]) }
    }

    /// The value of a window function at `now`; nil when no number is left (`count_over` gives 0).
    func value(_ w: WindowCall, at now: Double) -> JSONValue? {
        guard w.slot >= 0, w.slot < count else { return nil }
        return rings[w.slot].value(w.function, dropping: now - w.seconds)
    }

    var bytes: Int { (0..<count).reduce(0) { $0 + rings[$1].bytes + 48 } + 32 }
}
