import SIOCore

/// The simulation's one source of randomness is ``SplitMix64`` (SIOCore): a run replays exactly
/// from its seed.
extension SplitMix64 {
    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { p > 0 && unit() < p }

    /// An integer in `range` (no modulo bias worth caring about at these sizes).
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        let span = UInt64(range.upperBound - range.lowerBound) + 1
        return range.lowerBound + Int(next() % span)
    }

    /// Nanoseconds in `lower...upper` seconds, exponentially biased towards `lower`.
    mutating func seconds(_ lower: Double, _ upper: Double) -> Int64 {
        let u = unit()
        return Int64((lower + (upper - lower) * u * u) * 1e9)
    }
}

/// A binary min-heap of `(time, sequence)`-ordered entries: events at one instant run in the
/// order they were scheduled.
struct EventQueue<Event> {
    private struct Entry {
        var time: Int64
        var sequence: UInt64
        var event: Event
    }

    private var heap: [Entry] = []
    private var nextSequence: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    mutating func push(_ event: Event, at time: Int64) {
        heap.append(Entry(time: time, sequence: nextSequence, event: event))
        nextSequence &+= 1
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (time: Int64, event: Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, less(heap[l], heap[m]) { m = l }
            if r < heap.count, less(heap[r], heap[m]) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return (top.time, top.event)
    }

    private func less(_ a: Entry, _ b: Entry) -> Bool {
        a.time != b.time ? a.time < b.time : a.sequence < b.sequence
    }
}
