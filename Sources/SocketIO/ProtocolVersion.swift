/// Which protocol generation the client speaks.
public enum ProtocolVersion: String, Sendable, CaseIterable {
    /// Socket.IO v5 / Engine.IO 4 first; Socket.IO v2 / Engine.IO 3 when the server refuses the
    /// version with its "unsupported version" 400. The answer is kept for the client's reconnects.
    case auto
    /// Socket.IO v5 over Engine.IO 4 (socket.io 3.x and 4.x, python-socketio 5.x).
    case v4 = "4"
    /// Socket.IO v2 over Engine.IO 3 (socket.io 2.x, python-socketio 4.x with python-engineio 3.x).
    case v3 = "3"
}

/// The Engine.IO revision one session speaks (the resolved form of ``ProtocolVersion``).
package enum EngineIORevision: Int, Sendable, Equatable, CustomStringConvertible {
    case eio3 = 3
    case eio4 = 4

    package var description: String { self == .eio3 ? "Engine.IO 3 / Socket.IO v2" : "Engine.IO 4 / Socket.IO v5" }

    /// The other revision (what `auto` falls back to).
    var other: EngineIORevision { self == .eio3 ? .eio4 : .eio3 }
}
