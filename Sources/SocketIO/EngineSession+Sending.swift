import Logging
import NIOCore

/// The write backlog (kept in the machine): bounded in units and bytes, written as the
/// transport takes it.
extension EngineSession {
    /// How many more units the write backlog takes before it is full (then `.drained` follows).
    var room: Int { machine.room() }

    var hasRoom: Bool { room > 0 }

    /// Queues frames written together; `promise` completes when they were written (WebSocket) or
    /// the POST that carried them was accepted (polling), and fails if the session ends first or
    /// the write backlog is far beyond its bound (callers check `room` first for emits).
    func send(_ frames: [OutgoingFrame], promise: EventLoopPromise<Void>?) {
        loop.preconditionInEventLoop()
        switch machine.enqueue(OutgoingUnit(frames: frames, promise: promise)) {
        case .queued:
            flushQueue()
        case .closed:
            promise?.fail(SocketIOError.transport("session closed"))
        case .full:
            logger.warning("write backlog full; dropping a packet", metadata: [
                "queued": "\(machine.backlog.count)", "bytes": "\(machine.backlogBytes)",
            ])
            promise?.fail(SocketIOError.transport("write backlog full"))
        }
    }

    /// Hands the transport what the backlog holds, while it is writable (the rest waits in the
    /// machine, bounded, and goes when the transport reports it is writable again); reports
    /// `.drained` once a backlog that was full is down to half.
    func flushQueue() {
        guard let transport, machine.canWrite, !machine.backlog.isEmpty else { return }
        let wrapBinary = isEIO3 && transport.kind == .websocket
        var wrote = false
        while transport.isWritable, let unit = machine.nextUnit() {
            for (i, frame) in unit.frames.enumerated() {
                let promise = i == unit.frames.count - 1 ? unit.promise : nil
                if frame.isBinary {
                    transport.sendBinary(wrapBinary ? EngineIO3Codec.webSocketBinaryFrame(frame.bytes) : frame.bytes, flush: false, promise: promise)
                } else {
                    transport.sendText(frame.bytes, flush: false, promise: promise)
                }
            }
            wrote = true
        }
        guard wrote else { return }
        transport.flush()
        if machine.drained() { onEvent?(.drained) }
    }
}
