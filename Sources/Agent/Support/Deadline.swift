import Synchronization

/// Starts `work`, which calls the closure it is given once done (from any thread), and waits
/// for that or for `deadline`, whichever comes first: a future or a thread that never completes
/// cannot hold the caller past it. Nothing is cancelled; work still running is left to finish
/// (at shutdown, the process exits).
/// - Returns: true when the work finished before the deadline.
func finishes(before deadline: ContinuousClock.Instant, _ work: (@escaping @Sendable () -> Void) -> Void) async -> Bool {
    let once = OneShot()
    return await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
        once.set(c)
        let timer = Task {
            try? await Task.sleep(until: deadline)
            once.resume(false)
        }
        work {
            once.resume(true)
            timer.cancel()
        }
    }
}

/// ``finishes(before:_:)`` for async work (run in a task of its own, never awaited past the deadline).
func finishes(before deadline: ContinuousClock.Instant, _ work: @escaping @Sendable () async -> Void) async -> Bool {
    await finishes(before: deadline) { done in
        Task {
            await work()
            done()
        }
    }
}

/// A continuation resumed once, with the value of whichever ``resume(_:)`` comes first.
final class OneShot: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<Bool, Never>)
        /// Resumed before the continuation was set.
        case early(Bool)
        case done
    }

    private let state = Mutex(State.empty)

    func set(_ c: CheckedContinuation<Bool, Never>) {
        let early = state.withLock { state -> Bool? in
            if case .early(let value) = state {
                state = .done
                return value
            }
            state = .waiting(c)
            return nil
        }
        if let early { c.resume(returning: early) }
    }

    func resume(_ value: Bool) {
        let c = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            switch state {
            case .empty:
                state = .early(value)
                return nil
            case .waiting(let c):
                state = .done
                return c
            case .early, .done:
                return nil
            }
        }
        c?.resume(returning: value)
    }
}
