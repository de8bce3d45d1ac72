import NIOCore
import SIOCore

/// Receiving: Socket.IO packets decoded from the session's messages (binary attachments
/// assembled first), then handed to the machine (namespace answers) or delivered (events, acks).
extension ClientCore {
    func receive(_ packet: EngineIOPacket) {
        if packet.isBinary {
            do {
                if let complete = try assembler.add(packet.payload) { handle(complete) }
            } catch {
                logger.warning("ignoring binary data", metadata: ["error": "\(error)"])
            }
            return
        }
        let decoded: SocketIOPacket
        do {
            let payload = packet.payload
            decoded = try payload.withUnsafeBytes { bytes throws(SocketIOParseError) in try SocketIOCodec.decode(bytes, keeping: payload) }
        } catch {
            // Socket.IO v2 ERROR packets may carry a list or nothing.
            guard machine.revision == .eio3, let legacy = SocketIO2.decodeError(packet.payload) else {
                logger.warning("ignoring a malformed packet", metadata: ["error": "\(error)"])
                return
            }
            decoded = legacy
        }
        if assembler.isAssembling {
            logger.warning("a text packet arrived while binary attachments were expected; dropping the binary packet")
            assembler.reset()
        }
        if decoded.type == .binaryEvent || decoded.type == .binaryAck {
            do {
                if let complete = try assembler.start(decoded) { handle(complete) }
            } catch {
                logger.warning("ignoring a malformed binary packet", metadata: ["error": "\(error)"])
            }
            return
        }
        handle(decoded)
    }

    func handle(_ packet: SocketIOPacket) {
        guard let i = machine.index(of: packet.namespace) else {
            logger.debug("ignoring a packet for an unknown namespace", metadata: ["sio.namespace": "\(packet.namespace)"])
            return
        }
        let name = machine.namespaces[i].name
        switch packet.type {
        case .event, .binaryEvent:
            let eventName: String
            let arguments: JSONArguments
            if let text = packet.eventText, let first = text.element(0) {
                eventName = first.stringValue ?? first.description
                arguments = JSONArguments(text, from: 1)
            } else {
                guard case .array(let array) = packet.data, let first = array.first else { return }
                eventName = first.stringValue ?? first.description
                arguments = JSONArguments(Array(array.dropFirst()))
            }
            var ack: SocketIOAck?
            if let id = packet.id {
                ack = SocketIOAck(responder: AckResponder(core: NIOLoopBound(self, eventLoop: loop), namespace: name, id: id, generation: generation))
            }
            let event = SocketIOEvent(namespace: name, name: eventName, arguments: arguments, ack: ack)
            switch machine.status(i) {
            case .connected: deliver(.event(event))
            case .connecting: keepEarly(event, namespace: i)
            default: logger.debug("ignoring an event for a namespace that is not connected", metadata: ["sio.namespace": "\(name)"])
            }
        case .ack, .binaryAck:
            acknowledged(packet, namespace: i)
        case .connect:
            if machine.status(i) == .connecting {
                logger.info("namespace connected", metadata: ["sio.namespace": "\(name)", "sio.sid": "\(packet.data?["sid"]?.stringValue ?? "")"])
            }
            perform(machine.namespaceConnected(i))
        case .connectError:
            let (message, data) = SocketIO2.refusal(packet.data)
            perform(machine.namespaceRefused(i, message: message, data: data))
        case .disconnect:
            if machine.status(i) == .connected || machine.status(i) == .connecting {
                // `.direct` emits waiting for an ack here are not kept for the next CONNECT.
                for seq in machine.removeEmits(namespace: i, directOnly: true) { settle(seq, .disconnected) }
            }
            perform(machine.namespaceKicked(i))
        }
    }

    /// An event that came before the namespace's CONNECT answer, kept (bounded) until then.
    private func keepEarly(_ event: SocketIOEvent, namespace i: Int) {
        data[i].early.append(event)
        guard data[i].early.count > max(configuration.earlyEventLimit, 0) else { return }
        data[i].early.removeFirst()
        if data[i].earlyDropped == 0 {
            logger.warning("too many events before the namespace CONNECT reply; dropping the oldest", metadata: [
                "sio.namespace": "\(machine.namespaces[i].name)", "limit": "\(configuration.earlyEventLimit)",
            ])
        }
        data[i].earlyDropped &+= 1
    }
}
