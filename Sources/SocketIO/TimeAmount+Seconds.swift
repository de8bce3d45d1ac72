import NIOCore

// `TimeAmount(_: Duration)` comes from NIOCore and clamps to what 64-bit nanoseconds hold.

extension TimeAmount {
    /// `seconds` in NIO's 64-bit nanoseconds, clamped like NIOCore's `TimeAmount(_: Duration)`:
    /// beyond ±292 years it gives the longest `TimeAmount` of that sign; NaN gives zero.
    public init(seconds: Double) {
        let nanoseconds = seconds * 1e9
        if nanoseconds.isNaN {
            self = .zero
        } else if nanoseconds >= 9_223_372_036_854_775_807.0 {
            self = .nanoseconds(.max)
        } else if nanoseconds <= -9_223_372_036_854_775_808.0 {
            self = .nanoseconds(.min)
        } else {
            self = .nanoseconds(Int64(nanoseconds))
        }
    }
}
