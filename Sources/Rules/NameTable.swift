/// An immutable open-addressing hash table from names to ranges, with a value for names it does
/// not hold. Hashes are FNV-1a over the UTF-8 bytes: far cheaper than `Hasher` for short names.
struct NameTable: Sendable {
    private struct Slot: Sendable {
        /// 0: empty.
        var hash: UInt64 = 0
        var name = ""
        var range: Range<Int32> = 0..<0
        /// Position in the entries given to `init`.
        var ordinal: Int32 = -1
    }

    private let slots: [Slot]
    private let mask: Int
    private let fallback: Range<Int32>

    init(_ entries: [(String, Range<Int32>)], fallback: Range<Int32>) {
        var capacity = 4
        while capacity < entries.count * 2 { capacity *= 2 }
        var slots = [Slot](repeating: Slot(), count: capacity)
        for (ordinal, (name, range)) in entries.enumerated() {
            let h = NameTable.hash(name)
            var i = Int(truncatingIfNeeded: h) & (capacity - 1)
            while slots[i].hash != 0 { i = (i + 1) & (capacity - 1) }
            slots[i] = Slot(hash: h, name: name, range: range, ordinal: Int32(ordinal))
        }
        self.slots = slots
        self.mask = capacity - 1
        self.fallback = fallback
    }

    @inline(__always)
    static func hash(_ name: String) -> UInt64 {
        @inline(__always)
        func fnv(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
            return h
        }
        var name = name
        let h = name.withUTF8(fnv)
        return (h ^ (h >> 29)) | 1
    }

    @inline(__always)
    func lookup(_ name: String) -> Range<Int32> {
        let h = NameTable.hash(name)
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let slotHash = slots[i].hash
            if slotHash == 0 { return fallback }
            if slotHash == h && slots[i].name == name { return slots[i].range }
            i = (i + 1) & mask
        }
    }

    /// Like `lookup`, with the entry's position in `init`'s list (-1 for the fallback).
    @inline(__always)
    func lookupEntry(_ name: String) -> (Range<Int32>, Int32) {
        let h = NameTable.hash(name)
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let slotHash = slots[i].hash
            if slotHash == 0 { return (fallback, -1) }
            if slotHash == h && slots[i].name == name { return (slots[i].range, slots[i].ordinal) }
            i = (i + 1) & mask
        }
    }
}
