import NIOCore
import SIOCore

/// Emits: the machine decides (write now, keep in the offline buffer, fail) and keeps the
/// bookkeeping (ClientStateMachine+Emits.swift); the shell keeps each emit's data, promises and
/// ack timer in `handles`, by sequence number, and does the writing.
extension ClientCore {
    func queueEmit(name: String, args: [JSONValue], namespace: String, written: EventLoopPromise<Void>,
                   ack: EventLoopPromise<[JSONValue]>?, ackTimeout: Duration?, delivery: EmitDelivery) {
        guard !isSocketIOReservedEventName(name) else {
            written.fail(SocketIOError.reservedEventName(name))
            ack?.fail(SocketIOError.reservedEventName(name))
            return
        }
        let wantsAck = ack != nil && ackTimeout != nil
        let room = machine.phase == .open && engine?.hasRoom == true
        let seq: Int
        let ackId: Int?
        let write: Bool
        var dropped: Int?
        switch machine.emit(namespace: namespace, delivery: delivery, wantsAck: wantsAck, room: room) {
        case .refuse(let error):
            written.fail(error)
            ack?.fail(error)
            return
        case .writeOnce(let i):
            return writeOnce(name: name, args: args, namespace: machine.namespaces[i].name) { result in
                switch result {
                case .success: written.succeed()
                case .failure(let error): written.fail(error)
                }
            }
        case .write(let s, let id):
            (seq, ackId, write) = (s, id, true)
        case .buffer(let s, let id, let d):
            (seq, ackId, write, dropped) = (s, id, false, d)
        }
        let nsName = machine.index(of: ClientStateMachine.normalize(namespace)).map { machine.namespaces[$0].name } ?? namespace
        let e = Emit(seq: seq, namespace: nsName, name: name, args: args,
                     ackId: ackId, written: written, ack: wantsAck ? ack : nil)
        handles[seq] = e
        if wantsAck, let ackTimeout {
            e.ackTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(saturating: ackTimeout)) { [self] in
                guard machine.ackTimedOut(seq) else { return }
                settle(seq, .ackTimeout)
            }
        }
        if let dropped { droppedFromBuffer(dropped) }
        if write { self.write(e) }
    }

    /// ``SocketIOClient/sendDirect(_:_:namespace:written:)``: a `.direct` emit without an ack,
    /// decided as ``queueEmit(name:args:namespace:written:ack:ackTimeout:delivery:)`` decides it.
    func emitOnce(name: String, args: [JSONValue], namespace: String, written: @escaping @Sendable (Result<Void, SocketIOError>) -> Void) {
        guard !isSocketIOReservedEventName(name) else { return written(.failure(.reservedEventName(name))) }
        let room = machine.phase == .open && engine?.hasRoom == true
        switch machine.emit(namespace: namespace, delivery: .direct, wantsAck: false, room: room) {
        case .refuse(let error):
            written(.failure(error))
        case .writeOnce(let i):
            writeOnce(name: name, args: args, namespace: machine.namespaces[i].name, written: written)
        case .write(let seq, _), .buffer(let seq, _, _):
            // Not an answer for a direct emit without an ack; nothing is left recorded.
            machine.forgetEmit(seq)
            written(.failure(.disconnected))
        }
    }

    /// A `.direct` emit without an ack: nothing is kept of it but its write, whose outcome goes
    /// to `written` (a failed write: `.disconnected`, as ``writeFailed(_:)`` would answer).
    private func writeOnce(name: String, args: [JSONValue], namespace: String, written: @escaping @Sendable (Result<Void, SocketIOError>) -> Void) {
        guard let engine else { return written(.failure(.disconnected)) }
        let promise = loop.makePromise(of: Void.self)
        engine.send(SocketIOCodec.encodeEvent(name, args, namespace: namespace, id: nil, prefix: UInt8(ascii: "4")), promise: promise)
        promise.futureResult.whenComplete { result in
            written(result.mapError { _ in SocketIOError.disconnected })
        }
    }

    private func write(_ e: Emit) {
        guard let engine else { return writeFailed(e.seq) }
        let encoded = SocketIOCodec.encodeEvent(e.name, e.args, namespace: e.namespace, id: e.ackId, prefix: UInt8(ascii: "4"))
        let promise = loop.makePromise(of: Void.self)
        engine.send(encoded, promise: promise)
        let seq = e.seq
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success:
                guard let e = handles[seq] else { return }
                e.succeedWritten()
                if machine.emitWritten(seq) { handles[seq] = nil }
            case .failure:
                writeFailed(seq)
            }
        }
    }

    /// The session ended before the packet was written: the machine keeps it for the next one,
    /// or it fails.
    private func writeFailed(_ seq: Int) {
        switch machine.emitWriteFailed(seq) {
        case .ignore: break
        case .fail(let error): settle(seq, error)
        case .buffered(let dropped): if let dropped { droppedFromBuffer(dropped) }
        }
    }

    func droppedFromBuffer(_ seq: Int) {
        if let e = handles[seq] {
            logger.warning("offline buffer full; dropping the oldest emit", metadata: [
                "sio.namespace": "\(e.namespace)", "event": "\(e.name)",
                "limit": "\(configuration.offlineBufferLimit)",
            ])
        }
        settle(seq, .bufferOverflow)
    }

    /// Fails the emit's promises (those not completed yet) and forgets it.
    func settle(_ seq: Int, _ error: SocketIOError) {
        machine.forgetEmit(seq)
        guard let e = handles.removeValue(forKey: seq) else { return }
        e.ackTimer?.cancel()
        if !e.writtenDone {
            e.writtenDone = true
            e.written.fail(error)
        }
        e.ack?.fail(error)
    }

    /// Writes the buffered emits of namespace `i`, in order, as far as the session takes them;
    /// the rest goes when the engine reports `.drained`.
    func flushBuffer(namespace i: Int) {
        guard let engine, machine.hasBuffered(namespace: i) else { return }
        var count = 0
        while engine.hasRoom, let next = machine.nextBuffered(namespace: i) {
            count += 1
            if let e = handles[next.seq] { write(e) }
        }
        logger.debug("sent buffered emits", metadata: ["sio.namespace": "\(machine.namespaces[i].name)", "count": "\(count)"])
    }

    func failEmits(namespace i: Int, error: SocketIOError) {
        for seq in machine.removeEmits(namespace: i) { settle(seq, error) }
    }

    /// The server acknowledged an emit.
    func acknowledged(_ packet: SocketIOPacket, namespace i: Int) {
        guard let id = packet.id, let seq = machine.acknowledged(id: id, namespace: i), let e = handles.removeValue(forKey: seq) else {
            logger.debug("ignoring an unknown ack", metadata: ["sio.namespace": "\(machine.namespaces[i].name)", "id": "\(packet.id ?? -1)"])
            return
        }
        e.ackTimer?.cancel()
        e.succeedWritten()
        e.ack?.succeed(packet.data?.arrayValue ?? [])
    }
}
