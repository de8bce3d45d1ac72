import NIOCore

/// Emits: written at once when their namespace is connected and the transport has room, else
/// kept in the offline buffer (`.buffered`) or failed (`.direct`); acks matched by id.
extension ClientCore {
    func frames(_ encoded: EncodedSocketIOPacket) -> [OutgoingFrame] {
        var frames = [OutgoingFrame(bytes: encoded.text, isBinary: false)]
        for a in encoded.attachments { frames.append(OutgoingFrame(bytes: a, isBinary: true)) }
        return frames
    }

    func queueEmit(name: String, args: [JSONValue], namespace: String, written: EventLoopPromise<Void>,
                   ack: EventLoopPromise<[JSONValue]>?, ackTimeout: Duration?, delivery: EmitDelivery) {
        func refuse(_ error: SocketIOError) {
            written.fail(error)
            ack?.fail(error)
        }
        guard !isSocketIOReservedEventName(name) else { return refuse(.reservedEventName(name)) }
        guard let i = machine.index(of: ClientStateMachine.normalize(namespace)) else { return refuse(.unknownNamespace(namespace)) }
        guard machine.phase != .closed else { return refuse(.disconnected) }
        let status = machine.status(i)
        if status == .kicked && !machine.kickedNamespacesComeBack { return refuse(.disconnected) }
        let nsName = machine.namespaces[i].name
        let writable = status == .connected && machine.phase == .open && engine?.hasRoom == true
        if delivery == .direct && !writable { return refuse(.notConnected(namespace: nsName)) }
        let e = Emit(seq: nextSeq, namespace: nsName, name: name, args: args, written: written, delivery: delivery)
        nextSeq &+= 1
        if let ack, let ackTimeout {
            let id = acks.register(e)
            e.ackId = id
            e.ack = ack
            e.ackTimer = loop.assumeIsolated().scheduleTask(in: TimeAmount(saturating: ackTimeout)) { [self] in
                guard acks[id] === e else { return }
                acks.resolve(id)
                e.finished = true
                if e.inBuffer { removeFromBuffer(e) }
                if !e.writtenDone {
                    e.writtenDone = true
                    e.written.fail(SocketIOError.ackTimeout)
                }
                e.ack?.fail(SocketIOError.ackTimeout)
            }
        }
        if delivery == .direct || (writable && (buffer.isEmpty || !buffer.contains(namespace: nsName))) {
            write(e)
        } else {
            enqueue(e)
        }
    }

    private func write(_ e: Emit) {
        guard let engine else { return enqueue(e) }
        var data: [JSONValue] = [.string(e.name)]
        data.append(contentsOf: e.args)
        let encoded = SocketIOCodec.encode(
            SocketIOPacket(.event, namespace: e.namespace, id: e.ackId, data: .array(data)),
            prefix: UInt8(ascii: "4")
        )
        let promise = loop.makePromise(of: Void.self)
        engine.send(frames(encoded), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success:
                if !e.writtenDone {
                    e.writtenDone = true
                    e.written.succeed()
                }
            case .failure:
                // The session ended before the packet was written: keep it for the next one.
                if !e.finished && !e.inBuffer {
                    if machine.phase == .closed {
                        finish(e, .disconnected)
                    } else {
                        enqueue(e)
                    }
                }
            }
        }
    }

    /// Puts an emit into the offline buffer, in emit order; drops the oldest beyond the limit.
    /// A `.direct` emit fails instead: the client does not keep it.
    func enqueue(_ e: Emit) {
        if e.delivery == .direct { return finish(e, .disconnected) }
        e.inBuffer = true
        if let dropped = buffer.insert(e, seq: e.seq, namespace: e.namespace) {
            dropped.inBuffer = false
            logger.warning("offline buffer full; dropping the oldest emit", metadata: [
                "sio.namespace": "\(dropped.namespace)", "event": "\(dropped.name)",
                "limit": "\(configuration.offlineBufferLimit)",
            ])
            finish(dropped, .bufferOverflow)
        }
    }

    private func removeFromBuffer(_ e: Emit) {
        buffer.remove(seq: e.seq)
        e.inBuffer = false
    }

    func finish(_ e: Emit, _ error: SocketIOError) {
        e.finished = true
        e.ackTimer?.cancel()
        if let id = e.ackId, acks[id] === e { acks.resolve(id) }
        if !e.writtenDone {
            e.writtenDone = true
            e.written.fail(error)
        }
        e.ack?.fail(error)
    }

    /// Writes the buffered emits of `namespace`, in order, as far as the transport takes them;
    /// the rest goes when the engine reports `.drained`.
    func flushBuffer(namespace: String) {
        guard let engine, buffer.contains(namespace: namespace) else { return }
        let send = buffer.take(namespace: namespace)
        logger.debug("sending buffered emits", metadata: ["sio.namespace": "\(namespace)", "count": "\(send.count)"])
        for e in send {
            e.inBuffer = false
            if engine.hasRoom {
                write(e)
            } else {
                enqueue(e)
            }
        }
    }

    func failEmits(namespace: String, error: SocketIOError) {
        for e in buffer.take(namespace: namespace) {
            e.inBuffer = false
            finish(e, error)
        }
        for e in acks.elements where e.namespace == namespace { finish(e, error) }
    }

    /// The server acknowledged an emit.
    func acknowledged(_ packet: SocketIOPacket, namespace: String) {
        guard let id = packet.id, let e = acks[id], e.namespace == namespace else {
            logger.debug("ignoring an unknown ack", metadata: ["sio.namespace": "\(namespace)", "id": "\(packet.id ?? -1)"])
            return
        }
        acks.resolve(id)
        e.ackTimer?.cancel()
        e.finished = true
        if e.inBuffer { removeFromBuffer(e) }
        if !e.writtenDone {
            e.writtenDone = true
            e.written.succeed()
        }
        e.ack?.succeed(packet.data?.arrayValue ?? [])
    }
}
