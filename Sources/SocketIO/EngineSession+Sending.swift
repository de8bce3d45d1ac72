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
    func send(_ first: OutgoingFrame, rest: [OutgoingFrame] = [], promise: EventLoopPromise<Void>?) {
        loop.preconditionInEventLoop()
        switch machine.enqueue(OutgoingUnit(first, rest: rest, promise: promise)) {
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

    /// `frames` written together (none: nothing to write, `promise` succeeds).
    func send(_ frames: [OutgoingFrame], promise: EventLoopPromise<Void>?) {
        guard let first = frames.first else { promise?.succeed(); return }
        send(first, rest: Array(frames.dropFirst()), promise: promise)
    }

    /// A Socket.IO packet (its text, with the Engine.IO type, then its attachments).
    func send(_ packet: EncodedSocketIOPacket, promise: EventLoopPromise<Void>?) {
        send(OutgoingFrame(bytes: packet.text, isBinary: false), rest: packet.attachments.map { OutgoingFrame(bytes: $0, isBinary: true) }, promise: promise)
    }

    /// Hands the transport what the backlog holds, while it is writable (the rest waits in the
    /// machine, bounded, and goes when the transport reports it is writable again); reports
    /// `.drained` once a backlog that was full is down to half.
    func flushQueue() {
        guard let transport, machine.canWrite, !machine.backlog.isEmpty else { return }
        let wrapBinary = isEIO3 && transport.kind == .websocket
        var wrote = false
        func write(_ frame: OutgoingFrame, _ promise: EventLoopPromise<Void>?) {
            if frame.isBinary {
                transport.sendBinary(wrapBinary ? EngineIO3Codec.webSocketBinaryFrame(frame.bytes) : frame.bytes, flush: false, promise: promise)
            } else {
                transport.sendText(frame.bytes, flush: false, promise: promise)
            }
        }
        while transport.isWritable, let unit = machine.nextUnit() {
            // The promise goes with the last frame.
            write(unit.first, unit.rest.isEmpty ? unit.promise : nil)
            for (i, frame) in unit.rest.enumerated() { write(frame, i == unit.rest.count - 1 ? unit.promise : nil) }
            wrote = true
        }
        guard wrote else { return }
        transport.flush()
        if machine.drained() { onEvent?(.drained) }
    }
}
