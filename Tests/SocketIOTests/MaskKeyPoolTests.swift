import NIOWebSocket
import Testing

@testable import SocketIO

/// Mask keys from the buffered CSPRNG pool.
struct MaskKeyPoolTests {
    private func value(_ key: WebSocketMaskingKey) -> UInt32 {
        key.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// 10,000 keys: the pool refills every 1,024 keys, and the keys look like uniform random
    /// 32-bit values (a broken pool, all zeros or repeating its 4 KiB, fails each check).
    @Test func tenThousandKeysAreDistinctAndThePoolRefills() {
        var pool = MaskKeyPool()
        #expect(pool.refills == 0)
        var keys: [UInt32] = []
        for _ in 0..<10_000 { keys.append(value(pool.key())) }
        #expect(pool.refills == 10)  // ceil(10_000 / 1_024)
        // Among 10,000 uniform 32-bit values, a repeat has a chance of about 1 %; allow a few.
        #expect(Set(keys).count >= 9_995)
        // Each of the 32 bits set in about half the keys (±500, ten standard deviations).
        for bit in 0..<32 {
            let ones = keys.filter { $0 >> UInt32(bit) & 1 == 1 }.count
            #expect((4_500...5_500).contains(ones), "bit \(bit) set in \(ones) of 10,000 keys")
        }
        // Consecutive pool fills differ: the first key of each fill is not the same.
        let firsts = stride(from: 0, to: 10_000, by: 1_024).map { keys[$0] }
        #expect(Set(firsts).count == firsts.count)
    }
}
