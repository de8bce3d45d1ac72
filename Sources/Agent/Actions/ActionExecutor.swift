import Rules
import SocketIO

/// Performs the actions that the rules plan.
///
/// The agent calls every method on the client's event loop, in event order; an implementation
/// must not block there: anything slow goes to a task or another thread. Dry-run is a different
/// executor, not a flag inside each action, so what it cannot do it has no means to do.
public protocol ActionExecutor: Sendable {
    /// Performs (or, for dry-run, reports) `action`. `ack` is the triggering event's pending
    /// acknowledgement, when the server asked for one (for `reply`).
    func execute(_ action: PlannedAction, ack: SocketIOAck?)

    /// The connection to `namespace` came up (true) or went down (false).
    func connectionChanged(namespace: String, connected: Bool)

    /// The server refused `namespace` (CONNECT_ERROR) with `message`.
    func connectionRefused(namespace: String, message: String)

    /// Lets running actions finish, for at most `timeout`, and keeps whatever is undelivered.
    func shutdown(timeout: Duration) async
}

extension ActionExecutor {
    public func connectionRefused(namespace: String, message: String) {}
}

/// Prints each planned action as the JSON line `sioagent replay` prints, and does nothing else:
/// no emit, no process, no file.
public struct DryRunExecutor: ActionExecutor {
    private let write: @Sendable (String) -> Void

    /// - Parameter write: where the lines go (standard output by default).
    public init(write: (@Sendable (String) -> Void)? = nil) {
        self.write = write ?? { line in _ = writeAll(1, Array((line + "\n").utf8)) }
    }

    public func execute(_ action: PlannedAction, ack: SocketIOAck?) {
        var line: [UInt8] = []
        action.replayJSON().write(into: &line)
        write(String(decoding: line, as: UTF8.self))
    }

    public func connectionChanged(namespace: String, connected: Bool) {}

    public func shutdown(timeout: Duration) async {}
}
