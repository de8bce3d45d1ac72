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

extension TimeAmount {
    /// The same span, saturated to what a TimeAmount holds (negative spans become zero).
    init(saturating duration: Duration) {
        let (s, atto) = duration.components
        if s < 0 {
            self = .zero
            return
        }
        // At most about 100 years, so a deadline `now + span` cannot overflow either.
        let limit: Int64 = 100 * 365 * 86_400
        self = s >= limit ? .seconds(limit) : .nanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
    }
}
