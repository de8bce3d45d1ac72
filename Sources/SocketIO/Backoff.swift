/// The reconnection schedule as a value: which delay comes next, when attempts run out, and when
/// the count starts again. No I/O and no clock: the client asks it for a decision after each
/// failure and tells it when a connection proved stable.
///
/// Rules it keeps:
/// - The count of attempts goes back to zero only after a namespace stayed connected for the
///   stability period (``stable()``), never because a handshake succeeded: a server that completes
///   the handshake and then fails every request still sees the delays grow.
/// - A retry at once (the server forgot the session) is allowed for the first attempt only, and
///   never twice in a row.
/// - Once `policy.attempts` is used up, either every further retry waits `policy.slowDelay`
///   (`.retrySlowly`), or the decision is to stop (`.stop`).
package struct ReconnectBackoff: Equatable {
    package enum Decision: Equatable {
        /// Try again after `delay`; `slow` when the attempts ran out and this is the slow path.
        case retry(attempt: Int, delay: Duration, slow: Bool)
        /// Attempts ran out and the policy says stop.
        case stop
    }

    /// The smallest delay after a retry at once.
    static let minimumRepeatDelay: Duration = .milliseconds(100)

    let policy: ReconnectionPolicy
    /// Attempts since the last stable connection.
    package private(set) var attempt = 0
    private(set) var lastDelayWasZero = false
    /// Whether the attempts ran out (reported once, with the first slow retry).
    private(set) var exhausted = false

    package init(policy: ReconnectionPolicy) {
        self.policy = policy
    }

    /// The decision after a failed or lost connection. `immediate`: the server no longer knows the
    /// session, so a retry at once is allowed (once). `random` in 0..<1 spreads the delay.
    package mutating func next(immediate: Bool, random: Double) -> Decision {
        if attempt < Int.max { attempt += 1 }
        if policy.attempts > 0 && attempt > policy.attempts {
            exhausted = true
            switch policy.whenExhausted {
            case .stop: return .stop
            case .retrySlowly:
                lastDelayWasZero = false
                return .retry(attempt: attempt, delay: max(policy.slowDelay, Self.minimumRepeatDelay), slow: true)
            }
        }
        var delay = immediate && attempt == 1 && !lastDelayWasZero ? .zero : policy.delay(forAttempt: attempt, random: random)
        if lastDelayWasZero && delay < Self.minimumRepeatDelay { delay = Self.minimumRepeatDelay }
        lastDelayWasZero = delay == .zero
        return .retry(attempt: attempt, delay: delay, slow: false)
    }

    /// A namespace stayed connected for the stability period: the next failure starts over.
    package mutating func stable() {
        attempt = 0
        exhausted = false
        lastDelayWasZero = false
    }

    /// How long a namespace must stay connected before the count starts over: one pingInterval,
    /// between 1 s and 60 s.
    package static func stabilityPeriod(pingInterval milliseconds: Int) -> Duration {
        .milliseconds(min(max(milliseconds, 1000), 60_000))
    }
}
