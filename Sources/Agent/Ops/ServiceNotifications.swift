import NIOCore
import SIOCore
import SocketIO

/// What the agent tells systemd (`Type=notify`): `READY=1` once the rules are loaded and the
/// first connection attempt has ended (connected or failed; at the latest after
/// ``readyDeadline``), `STATUS=` on every change of the connection, `WATCHDOG=1` every half
/// `WATCHDOG_USEC` and `STOPPING=1` at shutdown.
///
/// The watchdog pings are sent by a task on the client's event loop: a wedged loop sends no
/// more pings, and systemd restarts the agent. Confined to that loop.
final class ServiceNotifications: Sendable {
    /// READY=1 is sent at the latest this long after the first connection attempt started.
    static let readyDeadline: TimeAmount = .seconds(30)
    /// How often STATUS is refreshed (the transport changes after an upgrade) without a watchdog.
    static let refreshInterval: TimeAmount = .seconds(5)

    private final class State {
        var ready = false
        var sentStatus = ""
        var connected: Set<String> = []
        var lastProblem: String?
        var ticker: RepeatedTask?
        var readyTimer: Scheduled<Void>?
    }

    private let notifier: SystemdNotifier
    private let loop: any EventLoop
    private let client: SocketIOClient
    /// The server URL without credentials or query (those may hold secrets).
    private let server: String
    private let state: NIOLoopBoundBox<State>

    init(notifier: SystemdNotifier, client: SocketIOClient, serverURL: String) {
        self.notifier = notifier
        self.loop = client.eventLoop
        self.client = client
        self.server = Self.displayURL(serverURL)
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: client.eventLoop)
    }

    /// `scheme://host:port/path` of `url`: no user info, query or fragment.
    static func displayURL(_ url: String) -> String {
        var s = Substring(url)
        if let cut = s.firstIndex(where: { $0 == "?" || $0 == "#" }) { s = s[..<cut] }
        if let scheme = s.firstRange(ofText: "://") {
            let rest = s[scheme.upperBound...]
            let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@") {
                s = s[..<scheme.upperBound] + rest[rest.index(after: at)...]
            }
        }
        return String(s)
    }

    /// Starts the watchdog and the status refresh; arms the READY deadline. On the loop.
    func start() {
        let state = self.state.value
        state.sentStatus = ""
        update(status: "connecting to \(server)")
        let period = notifier.watchdogInterval.map { TimeAmount($0) } ?? Self.refreshInterval
        let watchdog = notifier.watchdogInterval != nil
        state.ticker = loop.scheduleRepeatedTask(initialDelay: watchdog ? .zero : period, delay: period) { [self] _ in
            self.tick(watchdog: watchdog)
        }
        state.readyTimer = loop.assumeIsolated().scheduleTask(in: Self.readyDeadline) { [self] in
            self.markReady()
        }
    }

    /// Called from the agent's event hook, on the loop.
    func observe(_ event: SocketIOClientEvent) {
        let state = self.state.value
        switch event {
        case .connect(let namespace):
            state.connected.insert(namespace)
            state.lastProblem = nil
            markReady()
            update(status: connectedStatus())
        case .disconnect(let namespace, let reason):
            state.connected.remove(namespace)
            state.lastProblem = "\(reason)"
            update(status: state.connected.isEmpty ? "disconnected from \(server) (\(reason))" : connectedStatus())
        case .connectError(_, let error):
            markReady()
            state.lastProblem = "\(error)"
            if state.connected.isEmpty { update(status: "cannot connect to \(server): \(error)") }
        case .reconnectAttempt(let attempt):
            var text = "reconnecting to \(server), attempt \(attempt)"
            if let problem = state.lastProblem { text += " (last: \(problem))" }
            update(status: text)
        case .reconnectFailed:
            update(status: "gave up reconnecting to \(server)")
        case .stopped(let error):
            update(status: "stopped: \(error)")
        case .reconnect, .event:
            break
        }
    }

    /// STOPPING=1; ends the pings. On the loop.
    func stop() {
        let state = self.state.value
        state.ticker?.cancel()
        state.ticker = nil
        state.readyTimer?.cancel()
        notifier.send("STOPPING=1\nSTATUS=shutting down")
    }

    private func connectedStatus() -> String {
        let connected = state.value.connected.sorted()
        var text = "connected to \(server) (\(client.currentTransport ?? "connecting"))"
        if connected != ["/"] { text += ", namespaces " + connected.joined(separator: " ") }
        return text
    }

    private func markReady() {
        let state = self.state.value
        guard !state.ready else { return }
        state.ready = true
        state.readyTimer?.cancel()
        state.readyTimer = nil
        notifier.send("READY=1\nSTATUS=" + state.sentStatus)  // already a status line (sanitised once)
    }

    private func update(status: String) {
        let state = self.state.value
        let line = SystemdNotifier.statusLine(status)
        guard line != state.sentStatus else { return }
        state.sentStatus = line
        notifier.send("STATUS=" + line)
    }

    private func tick(watchdog: Bool) {
        if watchdog { notifier.send("WATCHDOG=1") }
        // The transport changes after an upgrade without an event.
        if !state.value.connected.isEmpty { update(status: connectedStatus()) }
    }
}

extension SocketIOClientEvent {
    /// True for an incoming event (not a lifecycle change).
    var isEvent: Bool {
        if case .event = self { return true }
        return false
    }
}
