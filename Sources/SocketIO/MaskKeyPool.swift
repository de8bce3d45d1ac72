import NIOWebSocket

#if canImport(Glibc)
import Glibc
#endif

/// WebSocket mask keys (RFC 6455 §5.3: unpredictable, one per client frame) taken from a buffer
/// of CSPRNG bytes: `getrandom` fills 4 KiB at a time, 1,024 keys, instead of one system call per
/// frame. A value owned by a loop-confined connection: no lock.
struct MaskKeyPool {
    static let poolBytes = 4096
    private var bytes: [UInt8]
    private var next: Int
    /// How many times the pool was filled (for tests).
    private(set) var refills = 0

    init() {
        bytes = [UInt8](repeating: 0, count: Self.poolBytes)
        next = Self.poolBytes
    }

    /// The next unused key; fills the pool when it is empty.
    mutating func key() -> WebSocketMaskingKey {
        // The key's four bytes in network order, through NIO's inlinable `random(using:)`: the
        // public Collection initializer is generic and not inlinable, ~2,000 instructions a key.
        var four = FourBytes(value: nextKey())
        return WebSocketMaskingKey.random(using: &four)
    }

    /// The next unused key as its four bytes in network order (the first byte in the high
    /// bits), for frames this package encodes itself (``WebSocketWire``).
    mutating func nextKey() -> UInt32 {
        if next + 4 > bytes.count { refill() }
        defer { next += 4 }
        return UInt32(bytes[next]) << 24 | UInt32(bytes[next + 1]) << 16 | UInt32(bytes[next + 2]) << 8 | UInt32(bytes[next + 3])
    }

    /// A "generator" that gives one given value: `UInt32.random(in: .min ... .max)` takes the
    /// low 32 bits of one `next()`.
    private struct FourBytes: RandomNumberGenerator {
        let value: UInt32
        mutating func next() -> UInt64 { UInt64(value) }
    }

    /// glibc's `getrandom(3)` (2.25 and later), looked up once: the Glibc module does not
    /// export `<sys/random.h>`. Called with the C convention.
    private static let getrandom: (@convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> Int)? = {
        // RTLD_DEFAULT: the global symbol, wherever it is.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "getrandom") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> Int).self)
    }()

    private mutating func refill() {
        refills += 1
        let poolBytes = Self.poolBytes
        bytes.withUnsafeMutableBytes { buffer in
            var filled = 0
            while filled < poolBytes {
                guard let getrandom = Self.getrandom else { break }
                let n = getrandom(buffer.baseAddress! + filled, poolBytes - filled, 0)
                if n > 0 {
                    filled += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            // Without getrandom (an old glibc or kernel): the standard library's generator, the
            // same kernel source another way.
            var generator = SystemRandomNumberGenerator()
            while filled < poolBytes {
                buffer[filled] = UInt8.random(in: .min ... .max, using: &generator)
                filled += 1
            }
        }
        next = 0
    }
}
