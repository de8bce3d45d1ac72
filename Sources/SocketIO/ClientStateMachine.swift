import Logging
import SIOCore

/// The Socket.IO connection lifecycle as a value: sessions, namespaces, reconnection backoff, the
/// stable period, and the emits the client owns (the offline buffer and those waiting for an ack,
/// ClientStateMachine+Emits.swift). No I/O, no clock, no randomness of its own.
///
/// Each input (``start()``, ``engineOpened(pingInterval:)``, a namespace answer, ``engineClosed(reason:detail:sessionGone:refusal:)``,
/// ``timerFired(_:)``, ``shutdown(graceful:)``) updates the state, then returns the actions the
/// shell carries out, in order, after the update: open or close an Engine.IO session, send a
/// namespace CONNECT or DISCONNECT, schedule or cancel a timer, deliver an event, release or fail
/// emits and waiters. Timers are named (``Timer``): the shell keeps at most one of each and feeds
/// ``timerFired(_:)`` back when one fires. Jitter comes from ``random``, a seeded generator that is
/// part of the value, so a simulation that seeds it replays the same delays.
///
/// These inputs are rare (connections and namespace answers), so they return an array. The
/// per-emit inputs (``emit(namespace:delivery:wantsAck:room:)``, a write done or failed, an ack,
/// an ack timeout) return one small value each; the per-packet path only reads ``phase`` and
/// ``status(_:)``.
package struct ClientStateMachine {
    package enum Phase: Equatable, Sendable {
        /// Not started yet.
        case idle
        /// An Engine.IO session is being opened.
        case connecting
        /// The Engine.IO session is open (namespaces connect on it).
        case open
        /// Between sessions: a reconnect timer runs.
        case waiting
        /// Closed for good.
        case closed
    }

    package enum NamespaceStatus: Equatable, Sendable {
        case idle, connecting, connected, refused, kicked
    }

    package struct Namespace: Equatable, Sendable {
        package let name: String
        package let auth: JSONValue?
        package var status = NamespaceStatus.idle
        /// Failed CONNECTs (refused, unanswered, kicked) since it last proved stable.
        package var refusals = 0
    }

    /// The timers the shell keeps for the machine, at most one of each.
    package enum Timer: Hashable, Sendable {
        /// The Engine.IO session must open within `connectTimeout`.
        case connect
        /// The next session attempt.
        case reconnect
        /// The stable period: once it passes with a namespace connected, the backoff starts over.
        case stable
        /// Every namespace was kicked: they are connected again on the slow path.
        case slow
        /// The namespace (by index) must answer its CONNECT within `connectTimeout`.
        case namespaceConnect(Int)
        /// The namespace (by index) sends CONNECT again.
        case namespaceRetry(Int)
    }

    package enum Action: Sendable {
        /// Open a new Engine.IO session in `revision`; its events carry `generation`.
        case openEngine(generation: Int, revision: EngineIORevision)
        /// Close the current session: `graceful` sends the close packet after what is queued.
        case closeEngine(graceful: Bool)
        case schedule(Timer, Duration)
        case cancel(Timer)
        /// Send the namespace CONNECT (`implicit`: the server connects it by itself, only wait).
        case sendConnect(namespace: Int, implicit: Bool)
        case sendDisconnect(namespace: Int)
        case deliver(SocketIOClientEvent)
        /// The namespace connected: write what waits for it in the offline buffer (taken with
        /// ``nextBuffered(namespace:)`` while the session has room), then (after
        /// `.deliver(.connect)`) the events that arrived before the CONNECT answer.
        case flushBuffer(namespace: Int)
        case deliverEarlyEvents(namespace: Int)
        /// Forget the events that arrived before a CONNECT answer that will not come.
        case dropEarlyEvents(namespace: Int)
        /// Fail the namespace's buffered emits and those waiting for an ack
        /// (``removeEmits(namespace:directOnly:)`` takes them out).
        case failEmits(namespace: Int, SocketIOError)
        /// The session is gone: emits written on it and still waiting for an ack are buffered
        /// again (`.direct` ones fail): ``requeueUnacknowledged()`` does it at this point.
        case requeueUnacknowledged
        case succeedWaiters(namespace: Int)
        /// Fail waiters (of one namespace, or all); `onlyFailFast`: only those that asked.
        case failWaiters(SocketIOError, namespace: Int?, onlyFailFast: Bool)
        /// Closed for good: fail every emit and waiter, end the event streams.
        case terminate(SocketIOError)
        case log(Logger.Level, String, Logger.Metadata)
    }

    /// The jitter of the backoff delays: a seeded ``SplitMix64``.
    package struct Random: Equatable, Sendable {
        package var generator: SplitMix64
        package init(seed: UInt64) { generator = SplitMix64(seed: seed) }

        /// The next value in 0..<1.
        package mutating func next() -> Double { generator.unit() }
    }

    package let policy: ReconnectionPolicy
    package let connectTimeout: Duration
    /// The configured protocol: `auto` may switch revisions after an "unsupported version" answer.
    package let protocolVersion: ProtocolVersion
    package private(set) var phase = Phase.idle
    /// Counts sessions; an event of an older session is ignored by the shell.
    package private(set) var generation = 0
    /// Sorted by name (the order of every CONNECT and event they cause).
    package internal(set) var namespaces: [Namespace]
    package internal(set) var backoff: ReconnectBackoff
    package var random: Random
    /// The Engine.IO revision of the next session: `auto` starts with 4 and keeps whatever the
    /// server last accepted.
    package private(set) var revision: EngineIORevision
    /// Whether `auto` already switched revisions since the last open session.
    private var revisionSwitched = false
    /// The stable timer is scheduled.
    var stableArmed = false
    /// The session's pingInterval (ms): the stable period.
    var pingInterval = 25_000
    package internal(set) var lastError: SocketIOError?
    /// What a connect timeout reports, in words (the shell sets it from the server's address).
    package var connectTimeoutDetail = "timed out while connecting"
    /// The emits the client owns: the offline buffer and those waiting for an ack
    /// (ClientStateMachine+Emits.swift).
    package internal(set) var emits: EmitLedger
    /// A known fault put back on purpose, for the simulation to show that it catches it; nil
    /// (always) in the client. Read only when a namespace connects.
    package var mutation: ClientMutation?

    package init(namespaces: [(name: String, auth: JSONValue?)], policy: ReconnectionPolicy, connectTimeout: Duration,
                 protocolVersion: ProtocolVersion, seed: UInt64, offlineBufferLimit: Int = 1000) {
        var list: [Namespace] = []
        for (name, auth) in namespaces {
            let name = ClientStateMachine.normalize(name)
            if !list.contains(where: { $0.name == name }) { list.append(Namespace(name: name, auth: auth)) }
        }
        if list.isEmpty { list.append(Namespace(name: "/", auth: nil)) }
        self.namespaces = list.sorted { $0.name < $1.name }
        self.policy = policy
        self.connectTimeout = connectTimeout
        self.protocolVersion = protocolVersion
        self.backoff = ReconnectBackoff(policy: policy)
        self.random = Random(seed: seed)
        self.revision = protocolVersion == .v3 ? .eio3 : .eio4
        self.emits = EmitLedger(limit: offlineBufferLimit)
    }

    package static func normalize(_ namespace: String) -> String {
        namespace.hasPrefix("/") ? namespace : "/" + namespace
    }

    /// The index of the namespace named `name` (one namespace, the common case, costs one compare).
    package func index(of name: String) -> Int? {
        if namespaces.count == 1 { return namespaces[0].name == name ? 0 : nil }
        return namespaces.firstIndex { $0.name == name }
    }

    package func status(_ index: Int) -> NamespaceStatus { namespaces[index].status }

    /// Whether an emit to a kicked namespace may still wait for it.
    package var kickedNamespacesComeBack: Bool { policy.enabled && policy.reconnectAfterServerDisconnect }

    var anyConnected: Bool { namespaces.contains { $0.status == .connected } }

    // MARK: Sessions

    /// Starts connecting (once).
    package mutating func start() -> [Action] {
        guard phase == .idle else { return [] }
        var actions: [Action] = []
        openEngine(&actions)
        return actions
    }

    /// The configuration cannot be used (bad URL, TLS setup): reported, then closed for good.
    package mutating func configurationFailed(_ error: SocketIOError) -> [Action] {
        guard phase == .idle else { return [] }
        lastError = error
        var actions = namespaces.map { Action.deliver(.connectError(namespace: $0.name, error: error)) }
        actions.append(.failWaiters(error, namespace: nil, onlyFailFast: false))
        terminate(error, &actions)
        return actions
    }

    private mutating func openEngine(_ actions: inout [Action]) {
        guard phase != .closed else { return }
        generation &+= 1
        phase = .connecting
        actions.append(.schedule(.connect, connectTimeout))
        actions.append(.openEngine(generation: generation, revision: revision))
    }

    /// The Engine.IO handshake completed: every namespace not kicked sends its CONNECT.
    package mutating func engineOpened(pingInterval: Int) -> [Action] {
        guard phase == .connecting else { return [] }
        phase = .open
        self.pingInterval = pingInterval
        var actions: [Action] = [.cancel(.connect)]
        if backoff.attempt > 0 { actions.append(.deliver(.reconnect(attempt: backoff.attempt))) }
        lastError = nil
        revisionSwitched = false
        for i in namespaces.indices where namespaces[i].status != .kicked {
            // Socket.IO v2: the server connects `/` by itself and sends its CONNECT.
            sendConnect(i, implicit: revision == .eio3 && namespaces[i].name == "/", &actions)
        }
        return actions
    }

    mutating func sendConnect(_ i: Int, implicit: Bool, _ actions: inout [Action]) {
        guard phase == .open else { return }
        namespaces[i].status = .connecting
        actions.append(.dropEarlyEvents(namespace: i))
        actions.append(.schedule(.namespaceConnect(i), connectTimeout))
        actions.append(.sendConnect(namespace: i, implicit: implicit))
    }

    /// The handshake got an HTTP error. With `protocol: auto`, the server's "unsupported version"
    /// answer switches to the other Engine.IO revision at once (once); python-socketio 4.x refuses
    /// `/` with a 401 whose body is the refusal; anything else is a failed attempt.
    package mutating func handshakeRefused(_ refusal: HandshakeRefusal) -> [Action] {
        guard phase == .connecting else { return [] }
        if protocolVersion == .auto, !revisionSwitched,
            EngineIO3Codec.isUnsupportedVersionAnswer(status: refusal.status, body: refusal.body) {
            let refused = revision
            revision = refused.other
            revisionSwitched = true
            var actions: [Action] = [
                .log(.info, "the server does not speak \(refused); trying \(revision)", ["answer": "\(refusal.shortBody)"]),
                .cancel(.connect),
            ]
            openEngine(&actions)
            return actions
        }
        if refusal.status == 401, revision == .eio3 {
            let answer = (try? JSONValue(parsing: Array(refusal.body.utf8))) ?? .string(refusal.body)
            let (message, data) = SocketIO2.refusal(answer)
            return engineClosed(reason: .transportError, detail: refusal.description, sessionGone: false,
                                refusal: .connectionRefused(namespace: "/", message: message, data: data))
        }
        return engineClosed(reason: .transportError, detail: refusal.description, sessionGone: false)
    }

    /// The session ended or could not open. `refusal`: the server refused the connection
    /// (reported instead of a transport error, and to every waiter at once).
    package mutating func engineClosed(reason: DisconnectReason, detail: String, sessionGone: Bool,
                                       refusal: SocketIOError? = nil) -> [Action] {
        guard phase == .connecting || phase == .open else { return [] }
        let wasOpen = phase == .open
        phase = .waiting
        var actions: [Action] = [.cancel(.connect), .cancel(.stable)]
        stableArmed = false
        if wasOpen {
            actions.append(.log(.info, "connection lost", ["reason": "\(reason)", "detail": "\(detail)"]))
        } else {
            actions.append(.log(.info, "connection attempt failed", ["detail": "\(detail)"]))
        }
        let error = refusal ?? SocketIOError.transport(detail)
        for i in namespaces.indices {
            actions.append(.cancel(.namespaceRetry(i)))
            actions.append(.cancel(.namespaceConnect(i)))
            actions.append(.dropEarlyEvents(namespace: i))
            let name = namespaces[i].name
            if namespaces[i].status == .connected { actions.append(.deliver(.disconnect(namespace: name, reason: reason))) }
            // A kicked namespace that comes back is connected with the next session: the lost
            // session cancelled its CONNECT retry (python-socketio 4 closes the session when it
            // kicks `/`).
            if namespaces[i].status == .kicked && kickedNamespacesComeBack { namespaces[i].status = .idle }
            if namespaces[i].status != .kicked {
                namespaces[i].status = .idle
                if !wasOpen { actions.append(.deliver(.connectError(namespace: name, error: error))) }
            }
        }
        if !wasOpen {
            lastError = error
            actions.append(.failWaiters(error, namespace: nil, onlyFailFast: refusal == nil))
        }
        actions.append(.requeueUnacknowledged)
        scheduleReconnect(immediate: sessionGone && wasOpen, &actions)
        return actions
    }

    private mutating func scheduleReconnect(immediate: Bool, _ actions: inout [Action]) {
        guard policy.enabled else {
            terminate(lastError ?? .disconnected, &actions)
            return
        }
        let wasExhausted = backoff.exhausted
        switch backoff.next(immediate: immediate, random: random.next()) {
        case .stop:
            actions.append(.log(.error, "giving up reconnecting; stopping", ["attempts": "\(policy.attempts)"]))
            actions.append(.deliver(.reconnectFailed))
            stop(lastError ?? .disconnected, &actions)
        case .retry(let attempt, let delay, let slow):
            if slow && !wasExhausted {
                actions.append(.log(.warning, "reconnection attempts used up; retrying on the slow path", [
                    "attempts": "\(policy.attempts)", "delay": "\(delay)",
                ]))
                actions.append(.deliver(.reconnectFailed))
            }
            actions.append(.log(.debug, "reconnecting", ["attempt": "\(attempt)", "delay": "\(delay)"]))
            actions.append(.schedule(.reconnect, delay))
        }
    }

    // MARK: Timers

    /// A timer the machine scheduled fired (and was not cancelled since).
    package mutating func timerFired(_ timer: Timer) -> [Action] {
        var actions: [Action] = []
        switch timer {
        case .connect:
            guard phase == .connecting else { return [] }
            actions.append(.closeEngine(graceful: false))
            actions += engineClosed(reason: .transportError, detail: connectTimeoutDetail, sessionGone: false)
        case .reconnect:
            guard phase == .waiting else { return [] }
            actions.append(.deliver(.reconnectAttempt(backoff.attempt)))
            openEngine(&actions)
        case .stable:
            stableArmed = false
            guard phase == .open, anyConnected else { return [] }
            backoff.stable()
            // A namespace that stayed connected starts its CONNECT retries over too (a server
            // that accepts and kicks at once keeps seeing them slow down).
            for i in namespaces.indices where namespaces[i].status == .connected { namespaces[i].refusals = 0 }
        case .slow:
            guard phase != .closed else { return [] }
            for i in namespaces.indices where namespaces[i].status == .kicked {
                namespaces[i].status = .idle
                if phase == .open { sendConnect(i, implicit: false, &actions) }
            }
        case .namespaceConnect(let i):
            guard phase == .open, namespaces.indices.contains(i), namespaces[i].status == .connecting else { return [] }
            connectFailed(i, error: .connectTimeout, message: "no answer to the namespace CONNECT", refused: false, &actions)
        case .namespaceRetry(let i):
            guard phase == .open, namespaces.indices.contains(i),
                namespaces[i].status == .refused || namespaces[i].status == .kicked else { return [] }
            sendConnect(i, implicit: false, &actions)
        }
        return actions
    }

    // MARK: Closing

    /// Stops for good on the client's own decision (``SocketIOClientEvent/stopped(_:)``).
    mutating func stop(_ error: SocketIOError, _ actions: inout [Action]) {
        guard phase != .closed else { return }
        actions.append(.deliver(.stopped(error)))
        close(graceful: true, &actions)
    }

    /// Closes for good: `graceful` sends DISCONNECT for each connected namespace and closes the
    /// session cleanly; otherwise the session is dropped.
    package mutating func shutdown(graceful: Bool) -> [Action] {
        var actions: [Action] = []
        close(graceful: graceful, &actions)
        return actions
    }

    private mutating func close(graceful: Bool, _ actions: inout [Action]) {
        guard phase != .closed else { return }
        if graceful && phase == .open {
            for i in namespaces.indices where namespaces[i].status == .connected {
                actions.append(.sendDisconnect(namespace: i))
                namespaces[i].status = .idle
                actions.append(.deliver(.disconnect(namespace: namespaces[i].name, reason: .clientDisconnect)))
            }
        }
        if phase == .open || phase == .connecting { actions.append(.closeEngine(graceful: graceful && phase == .open)) }
        terminate(.disconnected, &actions)
    }

    private mutating func terminate(_ error: SocketIOError, _ actions: inout [Action]) {
        guard phase != .closed else { return }
        phase = .closed
        stableArmed = false
        actions.append(.cancel(.connect))
        actions.append(.cancel(.reconnect))
        actions.append(.cancel(.stable))
        actions.append(.cancel(.slow))
        for i in namespaces.indices {
            actions.append(.cancel(.namespaceRetry(i)))
            actions.append(.cancel(.namespaceConnect(i)))
        }
        actions.append(.terminate(error))
    }
}

/// Known faults the simulation can put back into ``ClientStateMachine`` (never set by the client).
package enum ClientMutation: String, Sendable, CaseIterable {
    /// The backoff starts over as soon as a namespace connects, not after the stable period.
    case backoffResetAtConnect = "backoff-reset-at-connect"
}
