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

/// The samples that can still become the minimum (or maximum) of a sliding window, oldest
/// first, by sample number: a monotonic queue. Each sample enters and leaves it at most once, so
/// `min_over`/`max_over` cost amortised O(1) per sample instead of a scan of the window.
struct MonotonicQueue: Sendable {
    private var ids: [Int] = []
    private var values: [Double] = []
    private var start = 0
    /// true: keeps the minimum at the front; false: the maximum.
    let minimum: Bool

    init(minimum: Bool) { self.minimum = minimum }

    var front: Double? { start < ids.count ? values[start] : nil }

    /// Sample `id` (numbers increase) with value `v` enters: samples it outlives and beats go.
    mutating func push(_ id: Int, _ v: Double) {
        while ids.count > start, let last = values.last, minimum ? last >= v : last <= v {
            ids.removeLast()
            values.removeLast()
        }
        ids.append(id)
        values.append(v)
    }

    /// Sample `id`, the oldest of the window, leaves it.
    mutating func leave(_ id: Int) {
        guard start < ids.count, ids[start] == id else { return }
        start += 1
        if start == ids.count {
            ids.removeAll(keepingCapacity: true)
            values.removeAll(keepingCapacity: true)
            start = 0
        } else if start >= 32, start * 2 >= ids.count {
            ids.removeFirst(start)
            values.removeFirst(start)
            start = 0
        }
    }

    mutating func removeAll() {
        ids.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        start = 0
    }

    var bytes: Int { (ids.capacity + values.capacity) * 8 }
}

/// The samples of one window for one key: times (and values), oldest first, in a ring bounded by
/// `capacity` (the rule's `window_samples`); the oldest sample is dropped when full.
struct SampleRing: Sendable {
    /// The number of the oldest sample held, and of the next one.
    private var firstId = 0
    private var nextId = 0
    private var lows = MonotonicQueue(minimum: true)
    private var highs = MonotonicQueue(minimum: false)
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
            lows.push(nextId, value)
            highs.push(nextId, value)
        }
        nextId &+= 1
        count += 1
    }

    /// Drops since the sum was last added up from scratch (so rounding errors cannot accumulate).
    private var drops: UInt16 = 0

    mutating func dropOldest() {
        if hasValues {
            sum -= values[head]
            lows.leave(firstId)
            highs.leave(firstId)
        }
        firstId &+= 1
        head += 1
        if head == times.count { head = 0 }
        count -= 1
        if count == 0 {
            sum = 0
            head = 0
            lows.removeAll()
            highs.removeAll()
        }
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
        case .min: return lows.front.map { .number($0) }
        case .max: return highs.front.map { .number($0) }
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
    var bytes: Int { (times.capacity + values.capacity) * 8 + lows.bytes + highs.bytes }
}

/// The one bound on window samples across every rule and key of an engine (`limits.window_samples`).
///
/// A class shared by the engine's ``KeyWindows``.
///
/// `@unchecked Sendable`, safe by this invariant: it is reachable only from one `RuleEngine`
/// (its ``KeyWindows`` and copies of that engine value), and that engine is driven by one
/// thread at a time. The agent's engine lives in a `NIOLoopBoundBox` on its event loop (access
/// from another thread traps); `replay`, `test`, the simulation and the tests each drive theirs
/// from one task. Sharing one engine's copies between threads at once would break it.
final class WindowBudget: @unchecked Sendable {
    let limit: Int
    /// Samples held now by every ring of the engine.
    fileprivate(set) var held = 0
    /// Samples dropped to stay within ``limit`` (not counting those a window let go of).
    fileprivate(set) var dropped: UInt64 = 0

    init(limit: Int) { self.limit = max(1, limit) }

    var isOver: Bool { held > limit }
}

/// The window samples of one key of one rule.
///
/// A class so that evaluating a condition reads (and prunes) the samples in place without copying
/// them.
///
/// `@unchecked Sendable`, safe by the invariant of ``WindowBudget``: reachable only from one
/// engine (and its copies), which one thread at a time drives (the agent's: its event loop,
/// checked by `NIOLoopBoundBox`). `rings` is allocated in `init` and freed in `deinit` only.
final class KeyWindows: @unchecked Sendable {
    /// One ring per window slot. Behind a pointer so that appending to a ring is a plain write
    /// (an array property of a class would be copied-on-write checked and exclusivity-checked
    /// on every event).
    let rings: UnsafeMutablePointer<SampleRing>
    let count: Int
    let seconds: [Double]
    let budget: WindowBudget

    init(specs: [WindowSpec], capacity: Int, budget: WindowBudget) {
        self.budget = budget
        count = specs.count
        rings = .allocate(capacity: max(1, specs.count))
        for (i, spec) in specs.enumerated() {
            (rings + i).initialize(to: SampleRing(capacity: capacity, hasValues: spec.argumentText != nil))
        }
        seconds = specs.map(\.seconds)
    }

    deinit {
        budget.held -= samples
        rings.deinitialize(count: count)
        rings.deallocate()
    }

    /// Samples held by every ring.
    var samples: Int { (0..<count).reduce(0) { $0 + rings[$1].count } }

    /// Adds a sample to ring `slot`. When the engine's budget is spent, the ring's own oldest
    /// sample makes room; a ring with none goes over it, and the engine then drops the windows
    /// of the keys seen longest ago (``WindowBudget/isOver``).
    @inline(__always)
    func append(_ slot: Int, _ time: Double, _ value: Double) {
        let ring = rings + slot
        if ring.pointee.count < ring.pointee.capacity {
            if budget.held >= budget.limit && ring.pointee.count > 0 {
                ring.pointee.dropOldest()
                budget.dropped &+= 1
            } else {
                budget.held += 1
            }
        }
        ring.pointee.append(time, value)
    }

    /// Where the window of `seconds` that ends at `now` starts (exclusive). Never `now` itself:
    /// at wall-clock times (about 1.8e9 s) a Double is only precise to about 2.4e-7 s, so a
    /// window shorter than that would make `now - seconds == now` and drop the event being
    /// evaluated, which a window always includes (`test`, whose times start at 0, did not show it).
    @inline(__always)
    static func cutoff(_ now: Double, _ seconds: Double) -> Double {
        let c = now - seconds
        return c < now ? c : now.nextDown
    }

    /// Drops what fell out of every window by `now`.
    func prune(_ now: Double) {
        for i in 0..<count {
            let before = rings[i].count
            rings[i].drop(upTo: Self.cutoff(now, seconds[i]))
            budget.held -= before - rings[i].count
        }
    }

    /// The value of a window function at `now`; nil when no number is left (`count_over` gives 0).
    func value(_ w: WindowCall, at now: Double) -> JSONValue? {
        guard w.slot >= 0, w.slot < count else { return nil }
        let before = rings[w.slot].count
        defer { budget.held -= before - rings[w.slot].count }
        return rings[w.slot].value(w.function, dropping: Self.cutoff(now, w.seconds))
    }

    var bytes: Int { (0..<count).reduce(0) { $0 + rings[$1].bytes + 48 } + 32 }
}
