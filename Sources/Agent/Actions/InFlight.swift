import DequeModule

/// Values in flight under increasing ids, mostly completed in order: a window over a deque
/// (no hashing per value). Its size is bounded by the oldest value not yet removed.
struct InFlight<Value> {
    private var base: UInt64 = 0
    private var slots: Deque<Value?> = []
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Adds `value`; returns its id.
    mutating func append(_ value: Value) -> UInt64 {
        slots.append(value)
        count += 1
        return base &+ UInt64(slots.count - 1)
    }

    /// Takes out the value of `id` (nil if it is not there, or was taken already).
    mutating func remove(_ id: UInt64) -> Value? {
        guard id >= base, id - base < UInt64(slots.count) else { return nil }
        let i = Int(id - base)
        guard let value = slots[i] else { return nil }
        slots[i] = nil
        count -= 1
        while let first = slots.first, first == nil {
            slots.removeFirst()
            base &+= 1
        }
        return value
    }

    /// Takes out every value, oldest first.
    mutating func removeAll() -> [Value] {
        let values = slots.compactMap { $0 }
        base &+= UInt64(slots.count)
        slots.removeAll()
        count = 0
        return values
    }
}
