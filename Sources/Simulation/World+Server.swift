import Agent
import Rules
import SIOCore
import SocketIO

/// One client session's connection to the server: it keeps order each way (a later send never
/// arrives first), loses everything once closed, and passes nothing while stalled. On
/// long-polling, the packets sent while a request is on its way travel together as one body
/// (several packets in one read); on WebSocket, each packet is a frame of its own.
final class Link {
    let run: Int
    let generation: Int
    let revision: EngineIORevision
    let polling: Bool
    var closed = false
    var stalled = false
    var lastToServer: Int64 = 0
    var lastToClient: Int64 = 0
    var toServer: [WireFormat.EnginePacket] = []
    var toClient: [WireFormat.EnginePacket] = []
    var serverBatchScheduled = false
    var clientBatchScheduled = false
    /// The server's session on it (nil until the handshake, and once the server forgot it).
    var sid: String?
    var namespaces: Set<String> = []
    var lastHeard: Int64 = 0
    /// The server sent its close packet: it sends nothing more.
    var serverClosed = false

    init(run: Int, generation: Int, revision: EngineIORevision, polling: Bool) {
        self.run = run
        self.generation = generation
        self.revision = revision
        self.polling = polling
    }

    /// When a send made now arrives: after `at`, and never before the previous one.
    func arrival(_ last: inout Int64, _ at: Int64) -> Int64 {
        last = max(last, at)
        return last
    }
}

/// The server, with python-socketio's observable behaviour: the handshake (with the `/` CONNECT
/// of Socket.IO v2 in the same read), pings (Engine.IO 4: the server pings; 3: it answers the
/// client's), namespace CONNECTs, events to the client, acks after a delay or never, namespace
/// kicks (python-socketio 4 closes the session with `/`), HTTP 400 after the handshake on
/// long-polling, connections closed just after a namespace connects, and restarts that lose every
/// session. Everything it sends is encoded, and everything it reads decoded, with the client's
/// own codecs.
extension World {
    func handleServer(_ event: Event, _ agent: AgentProcess) {
        switch event {
        case .handshakeAtServer(let run, let generation):
            guard let link = liveLink(run, generation) else { return }
            guard serverUp else {
                closeLink(link)
                schedule(.transportLost(run: run, generation: generation, reason: .transportError, detail: "connection refused", sessionGone: false),
                         after: networkLatency())
                return
            }
            serverSessions += 1
            let sid = "s\(serverSessions)"
            link.sid = sid
            link.lastHeard = now
            let open = "{\"sid\":\"\(sid)\",\"upgrades\":[],\"pingInterval\":\(settings.pingInterval),\"pingTimeout\":\(settings.pingTimeout),\"maxPayload\":1000000}"
            serverSend(.init(.open, Array(open.utf8)), link)
            // python-socketio 4 connects `/` by itself, in the handshake's answer.
            if link.revision == .eio3 { acceptNamespace("/", link) }
            schedule(.serverTick(run: run, generation: generation), after: Int64(settings.pingInterval) * 1_000_000)
            if link.polling, faults.http400, !healing, random.chance(0.3) {
                // python-engineio forgot the session: the next request gets 400.
                link.sid = nil
                closeLink(link)
                schedule(.transportLost(run: run, generation: generation, reason: .transportError,
                                        detail: "poll answered 400: the server does not know the session", sessionGone: true),
                         at: link.arrival(&link.lastToClient, now + networkLatency()))
            }
        case .atServer(let run, let generation, let frame):
            guard let link = liveLink(run, generation) else { return }
            var packets: [WireFormat.EnginePacket]
            do {
                if let frame {
                    packets = [try WireFormat.decodeFrame(frame)]
                } else {
                    link.serverBatchScheduled = false
                    let body = WireFormat.encodePayload(link.toServer, revision: link.revision)
                    link.toServer = []
                    packets = try WireFormat.decodePayload(body, revision: link.revision)
                }
            } catch {
                checker.violation("the server cannot read what the client sent: \(error)")
                return
            }
            guard !link.stalled else { return }
            serverReceive(packets, link)
        case .atClient(let run, let generation, let frame):
            guard let link = liveLink(run, generation), agent.run == run else { return }
            var packets: [WireFormat.EnginePacket]
            do {
                if let frame {
                    packets = [try WireFormat.decodeFrame(frame)]
                } else {
                    link.clientBatchScheduled = false
                    let body = WireFormat.encodePayload(link.toClient, revision: link.revision)
                    link.toClient = []
                    packets = try WireFormat.decodePayload(body, revision: link.revision)
                }
            } catch {
                checker.violation("the client cannot read what the server sent: \(error)")
                return
            }
            guard !link.stalled else { return }
            clientReceive(packets, agent)
        case .transportLost(let run, let generation, let reason, let detail, let sessionGone):
            guard run == agent.run, generation == agent.client.generation else { return }
            sessionFailed(agent, reason, detail, sessionGone: sessionGone)
        case .serverTick(let run, let generation):
            guard let link = liveLink(run, generation), link.sid != nil, !link.serverClosed else { return }
            if now - link.lastHeard > Int64(settings.pingInterval + settings.pingTimeout) * 1_000_000 {
                note("server: no word from \(link.sid ?? "?") in time; closing it")
                serverDrop(link, "the server closed the connection (ping timeout)")
                return
            }
            if link.revision == .eio4 { serverSend(.init(.ping), link) }
            schedule(.serverTick(run: run, generation: generation), after: Int64(settings.pingInterval) * 1_000_000)
        case .serverAck(let run, let generation, let namespace, let id):
            guard let link = liveLink(run, generation), link.namespaces.contains(namespace) else { return }
            serverSend(.init(.message, WireFormat.encode(.init(.ack, namespace: namespace, id: id, data: .array([])))), link)
        case .serverKick(let run, let generation, let namespace):
            guard let link = liveLink(run, generation) else { return }
            kick(namespace, link)
        case .serverDrop(let run, let generation, let reason):
            guard let link = liveLink(run, generation) else { return }
            serverDrop(link, reason)
        default:
            break
        }
    }

    /// The link of `run`'s session `generation`, while it is open.
    func liveLink(_ run: Int, _ generation: Int) -> Link? {
        guard let link, link.run == run, link.generation == generation, !link.closed else { return nil }
        return link
    }

    func closeLink(_ link: Link) {
        link.closed = true
        link.sid = nil
        if self.link === link { self.link = nil }
    }

    /// The server closes the transport: the client hears of it after the network's delay
    /// (unless the connection stalled: then its heartbeat finds out).
    func serverDrop(_ link: Link, _ reason: String) {
        let stalled = link.stalled
        closeLink(link)
        guard !stalled else { return }
        schedule(.transportLost(run: link.run, generation: link.generation, reason: .transportClose, detail: reason, sessionGone: false),
                 at: link.arrival(&link.lastToClient, now + networkLatency()))
    }

    func serverSend(_ packet: WireFormat.EnginePacket, _ link: Link) {
        guard !link.closed, !link.serverClosed else { return }
        if packet.type == .close { link.serverClosed = true }
        if link.polling {
            link.toClient.append(packet)
            guard !link.clientBatchScheduled else { return }
            link.clientBatchScheduled = true
            schedule(.atClient(run: link.run, generation: link.generation, frame: nil), at: link.arrival(&link.lastToClient, now + networkLatency()))
        } else {
            schedule(.atClient(run: link.run, generation: link.generation, frame: WireFormat.encodeFrame(packet)),
                     at: link.arrival(&link.lastToClient, now + networkLatency()))
        }
    }

    private func serverReceive(_ packets: [WireFormat.EnginePacket], _ link: Link) {
        guard link.sid != nil, !link.serverClosed else { return }
        link.lastHeard = now
        for packet in packets {
            guard !link.closed, link.sid != nil else { return }
            switch packet.type {
            case .ping:
                serverSend(.init(.pong, packet.payload), link)
            case .close:
                note("server: the client closed \(link.sid ?? "?")")
                closeLink(link)
            case .message:
                let p: WireFormat.Packet
                do {
                    p = try WireFormat.decode(packet.payload, revision: link.revision)
                } catch {
                    checker.violation("the server cannot read a packet of the client: \(String(decoding: packet.payload, as: UTF8.self))")
                    continue
                }
                switch p.kind {
                case .connect: acceptNamespace(p.namespace, link)
                case .disconnect: link.namespaces.remove(p.namespace)
                case .event: serverEvent(p, link)
                case .ack, .connectError: break
                }
            case .open, .pong, .upgrade, .noop:
                break
            }
        }
    }

    private func acceptNamespace(_ namespace: String, _ link: Link) {
        link.namespaces.insert(namespace)
        serverSessions += 1
        let data: JSONValue? = link.revision == .eio4 ? .object(["sid": .string("n\(serverSessions)")]) : nil
        serverSend(.init(.message, WireFormat.encode(.init(.connect, namespace: namespace, data: data))), link)
        if kickOnConnect { schedule(.serverKick(run: link.run, generation: link.generation, namespace: namespace), after: networkLatency()) }
        if flapOnConnect {
            schedule(.serverDrop(run: link.run, generation: link.generation, reason: "the server closed the connection"), after: random.seconds(0.05, 2))
        }
    }

    /// The server disconnects `namespace`; python-socketio 4 closes the whole session with `/`.
    func kick(_ namespace: String, _ link: Link) {
        guard link.namespaces.remove(namespace) != nil else { return }
        note("server kicks \(namespace)")
        serverSend(.init(.message, WireFormat.encode(.init(.disconnect, namespace: namespace))), link)
        if link.revision == .eio3, namespace == "/" {
            serverSend(.init(.close), link)
            link.sid = nil
        }
    }

    /// An event of the client: the alert reached the server; its ack comes after a delay, late,
    /// or never.
    private func serverEvent(_ p: WireFormat.Packet, _ link: Link) {
        guard link.namespaces.contains(p.namespace) else { return }
        if case .array(let a)? = p.data, a.count > 1, case .object(let o) = a[1], case .string(let id)? = o["id"] {
            checker.delivered(self, id: id)
        }
        guard let id = p.id else { return }
        if faults.lostAcks && !healing && random.chance(0.15) { return }
        let delay = faults.slowAcks && !healing && random.chance(0.3) ? random.seconds(1, 60) : networkLatency()
        schedule(.serverAck(run: link.run, generation: link.generation, namespace: p.namespace, id: id), after: delay)
    }

    /// The server emits an event to the client on a namespace it connected.
    func serverEmit(_ name: String, _ namespace: String) {
        guard let agent, !agent.exited, agent.shutdown == nil, let link, link.run == agent.run, !link.closed, link.sid != nil,
            !link.serverClosed, link.namespaces.contains(namespace)
        else { return }
        nextID += 1
        let id = (name == "mark" ? "m" : name == "ping" ? "p" : "a") + String(nextID)
        note("server emits \(name) \(namespace) id=\(id)")
        let data: JSONValue = .array([.string(name), .object(["id": .string(id)])])
        serverSend(.init(.message, WireFormat.encode(.init(.event, namespace: namespace, data: data))), link)
    }
}
