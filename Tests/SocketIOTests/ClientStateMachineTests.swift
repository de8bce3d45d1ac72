import Testing

@testable import SIOCore
@testable import SocketIO

/// `ClientStateMachine` driven by hand: inputs in, actions out, no sockets and no clock.
struct ClientStateMachineTests {
    typealias M = ClientStateMachine

    static func machine(_ namespaces: [String] = ["/"], policy: ReconnectionPolicy = ReconnectionPolicy(randomization: 0),
                        protocolVersion: ProtocolVersion = .v4) -> M {
        M(namespaces: namespaces.map { (name: $0, auth: nil) }, policy: policy, connectTimeout: .seconds(5),
          protocolVersion: protocolVersion, seed: 42)
    }

    static func scheduled(_ actions: [M.Action], _ timer: M.Timer) -> Duration? {
        for case .schedule(let t, let delay) in actions where t == timer { return delay }
        return nil
    }

    static func events(_ actions: [M.Action]) -> [String] {
        actions.compactMap {
            guard case .deliver(let e) = $0 else { return nil }
            switch e {
            case .connect(let ns): return "connect \(ns)"
            case .disconnect(let ns, let reason): return "disconnect \(ns) \(reason)"
            case .connectError(let ns, _): return "connectError \(ns)"
            case .reconnectAttempt(let n): return "reconnectAttempt \(n)"
            case .reconnect(let n): return "reconnect \(n)"
            case .reconnectFailed: return "reconnectFailed"
            case .stopped: return "stopped"
            case .event: return "event"
            }
        }
    }

    /// Opens a session and connects every namespace; returns the actions of the last CONNECT answer.
    @discardableResult
    static func connect(_ m: inout M, pingInterval: Int = 25_000) -> [M.Action] {
        if m.phase == .idle { _ = m.start() }
        if m.phase == .waiting { _ = m.timerFired(.reconnect) }
        _ = m.engineOpened(pingInterval: pingInterval)
        var last: [M.Action] = []
        for i in m.namespaces.indices { last = m.namespaceConnected(i) }
        return last
    }

    /// The connection is lost: the delay of the reconnect it schedules.
    static func lose(_ m: inout M) -> Duration? {
        scheduled(m.engineClosed(reason: .transportClose, detail: "gone", sessionGone: false), .reconnect)
    }

    @Test func handshakeThenNamespaceConnect() {
        var m = Self.machine(["/", "/admin"])
        let start = m.start()
        #expect(m.phase == .connecting)
        #expect(Self.scheduled(start, .connect) == .seconds(5))
        #expect(start.contains { if case .openEngine(1, .eio4) = $0 { true } else { false } })
        let opened = m.engineOpened(pingInterval: 2000)
        #expect(m.phase == .open)
        let connects = opened.compactMap { if case .sendConnect(let i, let implicit) = $0 { (i, implicit) } else { nil } }
        #expect(connects.map(\.0) == [0, 1] && connects.allSatisfy { !$0.1 })
        #expect(Self.scheduled(opened, .namespaceConnect(1)) == .seconds(5))
        let accepted = m.namespaceConnected(1)
        #expect(m.status(1) == .connected && m.status(0) == .connecting)
        #expect(Self.events(accepted) == ["connect /admin"])
        // The buffer is flushed before the hook hears of the connection.
        let flush = accepted.firstIndex { if case .flushBuffer(1) = $0 { true } else { false } }
        let deliver = accepted.firstIndex { if case .deliver = $0 { true } else { false } }
        #expect(flush != nil && deliver != nil && flush! < deliver!)
        #expect(Self.scheduled(accepted, .stable) == .seconds(2))
        // A second CONNECT answer changes nothing.
        #expect(m.namespaceConnected(1).isEmpty)
    }

    @Test func socketIOv2WaitsForTheServerToConnectTheMainNamespace() {
        var m = Self.machine(["/", "/admin"], protocolVersion: .v3)
        _ = m.start()
        let opened = m.engineOpened(pingInterval: 25_000)
        let connects = opened.compactMap { if case .sendConnect(let i, let implicit) = $0 { "\(i) \(implicit)" } else { nil } }
        #expect(connects == ["0 true", "1 false"])
    }

    @Test func autoSwitchesRevisionOnceOnAnUnsupportedVersionAnswer() {
        var m = Self.machine(protocolVersion: .auto)
        _ = m.start()
        let unsupported = HandshakeRefusal(status: 400, body: #"{"code":5,"message":"Unsupported protocol version"}"#)
        let first = m.handshakeRefused(unsupported)
        #expect(first.contains { if case .openEngine(2, .eio3) = $0 { true } else { false } })
        #expect(m.phase == .connecting)
        // Not twice in a row: the second answer is a failed attempt.
        let second = m.handshakeRefused(unsupported)
        #expect(m.phase == .waiting)
        #expect(Self.scheduled(second, .reconnect) == .seconds(1))
    }

    @Test func refusedNamespaceIsReportedAndRetriedNoSoonerThanASecond() {
        var m = Self.machine(["/", "/admin"], policy: ReconnectionPolicy(delay: .milliseconds(10), maxDelay: .milliseconds(10)))
        _ = m.start()
        _ = m.engineOpened(pingInterval: 25_000)
        let refused = m.namespaceRefused(0, message: "Not authorized", data: nil)
        #expect(m.status(0) == .refused)
        #expect(Self.events(refused) == ["connectError /"])
        #expect(refused.contains { if case .failWaiters(_, 0, false) = $0 { true } else { false } })
        #expect(Self.scheduled(refused, .namespaceRetry(0)) == .seconds(1))
        let retry = m.timerFired(.namespaceRetry(0))
        #expect(retry.contains { if case .sendConnect(0, false) = $0 { true } else { false } })
        #expect(m.status(0) == .connecting)
        // No answer in time: a timeout fails only the waiters that asked to fail fast.
        let timeout = m.timerFired(.namespaceConnect(0))
        #expect(m.status(0) == .refused)
        #expect(timeout.contains { if case .failWaiters(.connectTimeout, 0, true) = $0 { true } else { false } })
    }

    @Test func kickedNamespaceComesBackOnlyWhenThePolicySaysSo() {
        var policy = ReconnectionPolicy(randomization: 0)
        policy.reconnectAfterServerDisconnect = true
        var back = Self.machine(policy: policy)
        Self.connect(&back)
        let kicked = back.namespaceKicked(0)
        #expect(Self.events(kicked) == ["disconnect / io server disconnect"])
        #expect(back.status(0) == .kicked && back.kickedNamespacesComeBack)
        // No namespace connected: the stable period stops counting.
        #expect(kicked.contains { if case .cancel(.stable) = $0 { true } else { false } })
        #expect(Self.scheduled(kicked, .namespaceRetry(0)) != nil)

        policy.reconnectAfterServerDisconnect = false
        policy.whenExhausted = .stop
        var gone = Self.machine(policy: policy)
        Self.connect(&gone)
        let stopped = gone.namespaceKicked(0)
        #expect(stopped.contains { if case .failEmits(0, .disconnected) = $0 { true } else { false } })
        #expect(Self.events(stopped) == ["disconnect / io server disconnect", "stopped"])
        #expect(gone.phase == .closed)
        #expect(stopped.contains { if case .closeEngine(graceful: true) = $0 { true } else { false } })
    }

    /// A kicked namespace whose CONNECT retry a lost session cancelled comes back with the next
    /// session when the policy says so (found by the simulation: python-socketio 4 closes the
    /// session when it kicks `/`, and `/` stayed disconnected for good).
    @Test func kickedNamespaceComesBackWithTheNextSession() {
        var policy = ReconnectionPolicy(randomization: 0)
        policy.reconnectAfterServerDisconnect = true
        var back = Self.machine(["/", "/devices"], policy: policy)
        Self.connect(&back)
        _ = back.namespaceKicked(0)
        _ = back.engineClosed(reason: .transportClose, detail: "closed", sessionGone: false)
        _ = back.timerFired(.reconnect)
        let opened = back.engineOpened(pingInterval: 25_000)
        #expect(opened.contains { if case .sendConnect(0, _) = $0 { true } else { false } })
        #expect(back.status(0) == .connecting)

        policy.reconnectAfterServerDisconnect = false
        var gone = Self.machine(["/", "/devices"], policy: policy)
        Self.connect(&gone)
        _ = gone.namespaceKicked(0)
        _ = gone.engineClosed(reason: .transportClose, detail: "closed", sessionGone: false)
        _ = gone.timerFired(.reconnect)
        let reopened = gone.engineOpened(pingInterval: 25_000)
        #expect(!reopened.contains { if case .sendConnect(0, _) = $0 { true } else { false } })
        #expect(gone.status(0) == .kicked)
    }

    /// The backoff starts over only after a namespace stayed connected for the stable period: a
    /// server that accepts the CONNECT and drops the connection at once keeps seeing the delays grow.
    @Test func backoffStartsOverOnlyAfterTheStablePeriod() {
        var m = Self.machine()
        _ = m.start()
        #expect(Self.lose(&m) == .seconds(1))
        let connected = Self.connect(&m, pingInterval: 3000)
        #expect(Self.scheduled(connected, .stable) == .seconds(3))
        // Lost before the stable period passed: the next delay is the second attempt's.
        #expect(Self.lose(&m) == .seconds(2))
        #expect(m.backoff.attempt == 2)
        Self.connect(&m, pingInterval: 3000)
        #expect(Self.lose(&m) == .seconds(4))
        // This time the stable period passes first: the count starts over.
        Self.connect(&m, pingInterval: 3000)
        #expect(m.timerFired(.stable).isEmpty)
        #expect(m.backoff.attempt == 0)
        #expect(Self.lose(&m) == .seconds(1))
    }

    @Test func theStableTimerDoesNothingOnceNoNamespaceIsConnected() {
        var m = Self.machine()
        _ = m.start()
        _ = Self.lose(&m)
        Self.connect(&m)
        _ = Self.lose(&m)
        // A stale firing (the shell cancels it, but a simulation may deliver it late).
        _ = m.timerFired(.stable)
        #expect(m.backoff.attempt == 2)
    }

    @Test func backoffDelaysStayWithinTheirBounds() {
        let policy = ReconnectionPolicy(delay: .milliseconds(500), maxDelay: .seconds(8), randomization: 0.5)
        var m = Self.machine(policy: policy)
        _ = m.start()
        for attempt in 1...200 {
            let actions = m.engineClosed(reason: .transportError, detail: "refused", sessionGone: attempt == 1)
            guard let delay = Self.scheduled(actions, .reconnect) else {
                Issue.record("no reconnect scheduled")
                return
            }
            #expect(delay >= .zero && delay <= .seconds(8) + .seconds(4), "attempt \(attempt): \(delay)")
            if attempt > 1 { #expect(delay >= ReconnectBackoff.minimumRepeatDelay) }
            let retry = m.timerFired(.reconnect)
            #expect(Self.events(retry) == ["reconnectAttempt \(attempt)"])
        }
    }

    @Test func exhaustedAttemptsStopOrGoSlow() {
        var stop = Self.machine(policy: ReconnectionPolicy(randomization: 0, attempts: 2, whenExhausted: .stop))
        _ = stop.start()
        _ = Self.lose(&stop)
        _ = stop.timerFired(.reconnect)
        _ = Self.lose(&stop)
        _ = stop.timerFired(.reconnect)
        let last = stop.engineClosed(reason: .transportError, detail: "refused", sessionGone: false)
        #expect(Self.events(last).suffix(2) == ["reconnectFailed", "stopped"])
        #expect(stop.phase == .closed)
        #expect(last.contains { if case .terminate = $0 { true } else { false } })

        var slow = Self.machine(policy: ReconnectionPolicy(randomization: 0, attempts: 1, slowDelay: .seconds(60)))
        _ = slow.start()
        _ = Self.lose(&slow)
        _ = slow.timerFired(.reconnect)
        let first = slow.engineClosed(reason: .transportError, detail: "refused", sessionGone: false)
        #expect(Self.scheduled(first, .reconnect) == .seconds(60))
        #expect(Self.events(first) == ["connectError /", "reconnectFailed"])
        _ = slow.timerFired(.reconnect)
        let second = slow.engineClosed(reason: .transportError, detail: "refused", sessionGone: false)
        // Reported once.
        #expect(Self.events(second) == ["connectError /"])
    }

    @Test func connectTimeoutDropsTheSessionAndSchedulesTheNextAttempt() {
        var m = Self.machine()
        _ = m.start()
        let timeout = m.timerFired(.connect)
        #expect(timeout.first.map { if case .closeEngine(graceful: false) = $0 { true } else { false } } == true)
        #expect(m.phase == .waiting)
        #expect(Self.scheduled(timeout, .reconnect) == .seconds(1))
        // A late firing of an old timer changes nothing.
        #expect(m.timerFired(.connect).isEmpty)
        #expect(m.timerFired(.namespaceConnect(0)).isEmpty)
    }

    @Test func shutdownDisconnectsEachConnectedNamespaceThenCloses() {
        var m = Self.machine(["/", "/admin"])
        Self.connect(&m)
        let actions = m.shutdown(graceful: true)
        let disconnects = actions.compactMap { if case .sendDisconnect(let i) = $0 { i } else { nil } }
        #expect(disconnects == [0, 1])
        #expect(Self.events(actions) == ["disconnect / io client disconnect", "disconnect /admin io client disconnect"])
        let close = actions.firstIndex { if case .closeEngine(graceful: true) = $0 { true } else { false } }
        let lastDisconnect = actions.lastIndex { if case .sendDisconnect = $0 { true } else { false } }
        #expect(close != nil && lastDisconnect != nil && lastDisconnect! < close!)
        #expect(m.phase == .closed)
        #expect(m.shutdown(graceful: true).isEmpty)
        #expect(m.start().isEmpty)
    }

    @Test func theSameSeedGivesTheSameDelays() {
        let policy = ReconnectionPolicy(randomization: 0.5)
        func delays() -> [Duration] {
            var m = Self.machine(policy: policy)
            _ = m.start()
            return (0..<10).compactMap { _ in
                let d = Self.lose(&m)
                _ = m.timerFired(.reconnect)
                return d
            }
        }
        #expect(delays() == delays())
    }
}
