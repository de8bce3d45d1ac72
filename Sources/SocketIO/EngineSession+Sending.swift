import DequeModule
import Logging
import NIOCore
import NIOHTTP1

/// The write queue: bounded in units and bytes, written as the transport takes it.
extension EngineSession {
    /// Queues frames written together; `promise` completes when they were written (WebSocket) or
    /// the POST that carried them was accepted (polling), and fails if the session ends first or
    /// the write backlog is far beyond its bound (callers check `room` first for emits).
    func send(_ frames: [OutgoingFrame], promise: EventLoopPromise<Void>?) {
        loop.preconditionInEventLoop()
        guard machine.phase != .closed else {
            promise?.fail(SocketIOError.transport("session closed"))
            return
        }
        var bytes = 0
        for f in frames { bytes &+= f.bytes.count }
        if queue.count >= 4 * Self.backlogUnits || queuedBytes > 4 * payloadLimit {
            logger.warning("write backlog full; dropping a packet", metadata: ["queued": "\(queue.count)", "bytes": "\(queuedBytes)"])
            promise?.fail(SocketIOError.transport("write backlog full"))
            return
        }
        queue.append(Unit(frames: frames, promise: promise, bytes: bytes))
        queuedBytes &+= bytes
        flushQueue()
    }

    func dequeued(_ unit: Unit) {
        queuedBytes &-= unit.bytes
    }

    /// Reports `.drained` once the backlog that was full is down to half.
    func checkDrained() {
        guard backlogWasFull, queue.count <= Self.backlogUnits / 2, queuedBytes <= payloadLimit / 2 else { return }
        backlogWasFull = false
        onEvent?(.drained)
    }

    func flushQueue() {
        guard machine.isOpen, !queue.isEmpty else { return }
        switch transport {
        case .websocket(let ws):
            // Only while the channel is writable: the rest waits here, bounded, and goes out
            // when the channel reports it is writable again.
            var wrote = false
            while ws.isWritable, let unit = queue.popFirst() {
                dequeued(unit)
                for (i, frame) in unit.frames.enumerated() {
                    let promise = i == unit.frames.count - 1 ? unit.promise : nil
                    if frame.isBinary {
                        ws.sendBinary(isEIO3 ? EngineIO3Codec.webSocketBinaryFrame(frame.bytes) : frame.bytes, flush: false, promise: promise)
                    } else {
                        ws.sendText(frame.bytes, flush: false, promise: promise)
                    }
                }
                wrote = true
            }
            if wrote {
                ws.flush()
                checkDrained()
            }
        case .polling(_, let post):
            flushPost(on: post)
        case .upgrading, .none:
            return
        }
    }
}
