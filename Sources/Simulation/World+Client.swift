import Agent
import NIOCore
import Rules
import SIOCore
import SocketIO

/// The client's shell: the simulation feeds the real ``ClientStateMachine`` and
/// ``EngineStateMachine`` their inputs (packets decoded with the client's own decoders, the
/// transport opened or lost, timers firing, emits) and carries out their actions after each
/// update, as `ClientCore` and `EngineSession` do on the event loop: a send goes over the
/// simulated ``Link``, a timer becomes an event on the simulated clock, a delivered event goes to
/// the rule engine, and an ack or a failure completes the outbox's send.
extension World {
    /// The simulated clock as the engine machine reads time.
    var deadline: NIODeadline { .uptimeNanoseconds(UInt64(max(0, now))) }

    // MARK: - The machine's actions

    func performClient(_ actions: [ClientStateMachine.Action], _ agent: AgentProcess) {
        for action in actions {
            guard !agent.exited else { return }
            switch action {
            case .openEngine(let generation, let revision):
                openEngine(agent, generation: generation, revision: revision)
            case .closeEngine:
                // A graceful close sends `1` first; the server forgets the session either way.
                dropSession(agent)
            case .schedule(let timer, let delay):
                agent.timerTokens += 1
                agent.timers[timer] = agent.timerTokens
                let due = now &+ nanoseconds(delay)
                schedule(.clientTimer(run: agent.run, timer: timer, token: agent.timerTokens, due: due), at: due)
            case .cancel(let timer):
                agent.timers[timer] = nil
            case .sendConnect(let i, let implicit):
                // Socket.IO v2 connects `/` by itself: the client only waits for its CONNECT.
                guard agent.session != nil, !implicit else { continue }
                let ns = agent.client.namespaces[i]
                clientSend(WireFormat.encodeConnect(namespace: ns.name, auth: ns.auth, revision: agent.client.revision), agent)
            case .sendDisconnect(let i):
                clientSend(WireFormat.encode(.init(.disconnect, namespace: agent.client.namespaces[i].name)), agent)
            case .deliver(let event):
                deliverClientEvent(event, agent)
            case .flushBuffer(let i):
                // The agent's emits are `.direct`: the offline buffer stays empty for them.
                while agent.session?.isOpen == true, let next = agent.client.nextBuffered(namespace: i) {
                    if let handle = agent.emits[next.seq] { writeEmit(next.seq, ackId: next.ackId, handle.item, agent) }
                }
            case .deliverEarlyEvents(let i):
                let early = agent.early[i]
                agent.early[i] = []
                for event in early where agent.client.status(i) == .connected { deliverRuleEvent(event, agent) }
            case .dropEarlyEvents(let i):
                agent.early[i] = []
            case .failEmits(let i, let error):
                for seq in agent.client.removeEmits(namespace: i) { settle(seq, "\(error)", agent) }
            case .requeueUnacknowledged:
                // A `.direct` emit is not kept for the next session: it fails, and the outbox
                // decides.
                for (seq, error) in agent.client.requeueUnacknowledged() { settle(seq, "\(error)", agent) }
            case .succeedWaiters, .failWaiters:
                break
            case .terminate(let error):
                for seq in agent.client.removeAllEmits() { settle(seq, "\(error)", agent) }
                checker.violation("the client stopped for good: \(error)")
            case .log(let level, let message, let metadata):
                if level >= .info { note("client \(level): \(message)\(metadata["detail"].map { " (\($0))" } ?? "")") }
            }
        }
    }

    private func deliverClientEvent(_ event: SocketIOClientEvent, _ agent: AgentProcess) {
        switch event {
        case .connect(let namespace):
            note("namespace \(namespace) connected")
            deliverRuleEvent(RuleEvent(namespace: namespace, name: "connect", args: []), agent)
            perform(agent.outbox.handle(.connected(namespace)), agent)
        case .disconnect(let namespace, let reason):
            note("namespace \(namespace) disconnected: \(reason.rawValue)")
            deliverRuleEvent(RuleEvent(namespace: namespace, name: "disconnect", args: []), agent)
            perform(agent.outbox.handle(.disconnected(namespace)), agent)
        case .event(let e):
            deliverRuleEvent(RuleEvent(namespace: e.namespace, name: e.name, args: e.args), agent)
        case .stopped(let error):
            checker.violation("the client stopped for good: \(error)")
        case .connectError, .reconnectAttempt, .reconnect, .reconnectFailed:
            break
        }
    }

    func deliverRuleEvent(_ event: RuleEvent, _ agent: AgentProcess) {
        performRules(agent.engine.handle(event, at: wall), agent)
        afterRules(agent)
    }

    /// The emit `seq` failed: the outbox hears of it (as `ClientCore.settle` fails its promises).
    private func settle(_ seq: Int, _ reason: String, _ agent: AgentProcess) {
        agent.client.forgetEmit(seq)
        guard let handle = agent.emits.removeValue(forKey: seq) else { return }
        checker.mayRepeat(handle.item)
        perform(agent.outbox.handle(.sendCompleted(handle.send, .failed(reason, permanent: false))), agent)
    }

    // MARK: - Sessions

    private func openEngine(_ agent: AgentProcess, generation: Int, revision: EngineIORevision) {
        dropSession(agent)
        agent.session = EngineStateMachine(
            revision: revision, mode: faults.polling ? .polling : .websocket, upgradeTimeout: .seconds(10), payloadCeiling: 1 << 24,
            now: deadline)
        checker.handshake(self, agent)
        note("handshake #\(generation) (attempt \(agent.client.backoff.attempt), \(revision == .eio3 ? "EIO=3" : "EIO=4"), \(faults.polling ? "polling" : "websocket"))")
        let link = Link(run: agent.run, generation: generation, revision: revision, polling: faults.polling)
        self.link = link
        schedule(.handshakeAtServer(run: agent.run, generation: generation), at: link.arrival(&link.lastToServer, now + networkLatency()))
    }

    /// The session ends on the client's side: the transport closes, the server forgets it.
    func dropSession(_ agent: AgentProcess) {
        if agent.session != nil {
            _ = agent.session?.close()
            agent.session = nil
            agent.heartbeatToken += 1
        }
        if let link, link.run == agent.run { closeLink(link) }
    }

    /// The transport failed or the server closed the session: the machine hears of it.
    func sessionFailed(_ agent: AgentProcess, _ reason: DisconnectReason, _ detail: String, sessionGone: Bool = false) {
        guard agent.session != nil else { return }
        dropSession(agent)
        performClient(agent.client.engineClosed(reason: reason, detail: detail, sessionGone: sessionGone), agent)
    }

    /// Sends one Engine.IO message (a Socket.IO packet) on the current link.
    private func clientSend(_ payload: [UInt8], _ agent: AgentProcess) {
        sendToServer(.init(.message, payload), agent)
    }

    func sendToServer(_ packet: WireFormat.EnginePacket, _ agent: AgentProcess) {
        guard let link, link.run == agent.run, link.generation == agent.client.generation, !link.closed else { return }
        if link.polling {
            link.toServer.append(packet)
            guard !link.serverBatchScheduled else { return }
            link.serverBatchScheduled = true
            schedule(.atServer(run: link.run, generation: link.generation, frame: nil), at: link.arrival(&link.lastToServer, now + networkLatency()))
        } else {
            schedule(.atServer(run: link.run, generation: link.generation, frame: WireFormat.encodeFrame(packet)),
                     at: link.arrival(&link.lastToServer, now + networkLatency()))
        }
    }

    // MARK: - Receiving

    /// What one read of the transport brought (a polling body may hold several packets), as
    /// `EngineSession` hands it to its machine and `ClientCore` to its own.
    func clientReceive(_ packets: [WireFormat.EnginePacket], _ agent: AgentProcess) {
        let generation = agent.client.generation
        for packet in packets {
            guard !agent.exited, agent.client.generation == generation, let session = agent.session else { return }
            if session.phase == .opening {
                guard packet.type == .open, let (h, pingInterval) = try? WireFormat.handshake(packet.payload) else {
                    sessionFailed(agent, .parseError, "the handshake did not start with an open packet")
                    return
                }
                guard case .open = agent.session?.opened(h, websocket: !faults.polling, now: deadline) else { continue }
                armHeartbeat(agent)
                performClient(agent.client.engineOpened(pingInterval: pingInterval), agent)
                continue
            }
            switch agent.session?.received(packet.type, payloadCount: packet.payload.count, now: deadline) ?? .ignore {
            case .deliver:
                clientMessage(packet.payload, agent)
            case .pong(let echo):
                sendToServer(.init(.pong, echo ? packet.payload : []), agent)
            case .close:
                sessionFailed(agent, .transportClose, "the server closed the session")
            case .rescheduleHeartbeat:
                armHeartbeat(agent)
            case .ignore:
                break
            }
        }
    }

    /// A Socket.IO packet, as `ClientCore.handle` takes it.
    private func clientMessage(_ payload: [UInt8], _ agent: AgentProcess) {
        let packet: WireFormat.Packet
        do {
            packet = try WireFormat.decode(payload, revision: agent.client.revision)
        } catch {
            checker.violation("the client cannot read what the server sent: \(String(decoding: payload, as: UTF8.self)): \(error)")
            return
        }
        guard let i = agent.client.index(of: packet.namespace) else { return }
        switch packet.kind {
        case .event:
            guard case .array(let array)? = packet.data, let first = array.first else { return }
            let event = RuleEvent(namespace: packet.namespace, name: first.stringValue ?? first.description, args: Array(array.dropFirst()))
            switch agent.client.status(i) {
            case .connected: deliverRuleEvent(event, agent)
            case .connecting:
                agent.early[i].append(event)
                if agent.early[i].count > 64 { agent.early[i].removeFirst() }
            default: break
            }
        case .ack:
            guard let id = packet.id, let seq = agent.client.acknowledged(id: id, namespace: i),
                let handle = agent.emits.removeValue(forKey: seq)
            else { return }
            perform(agent.outbox.handle(.sendCompleted(handle.send, .delivered)), agent)
        case .connect:
            performClient(agent.client.namespaceConnected(i), agent)
        case .connectError:
            let (message, data) = WireFormat.refusal(packet.data)
            performClient(agent.client.namespaceRefused(i, message: message, data: data), agent)
        case .disconnect:
            note("server disconnects namespace \(packet.namespace)")
            if agent.client.status(i) == .connected || agent.client.status(i) == .connecting {
                // `.direct` emits waiting for an ack here are not kept for the next CONNECT.
                for seq in agent.client.removeEmits(namespace: i, directOnly: true) { settle(seq, "disconnected", agent) }
            }
            performClient(agent.client.namespaceKicked(i), agent)
        }
    }

    // MARK: - Timers

    func clientTimerFired(_ agent: AgentProcess, _ timer: ClientStateMachine.Timer, token: Int, due: Int64) {
        guard agent.timers[timer] == token else { return }
        agent.timers[timer] = nil
        checkOnTime("client timer \(timer)", due: due)
        performClient(agent.client.timerFired(timer), agent)
    }

    /// Keeps the one heartbeat timer at the engine machine's deadline.
    func armHeartbeat(_ agent: AgentProcess) {
        agent.heartbeatToken += 1
        guard let due = agent.session?.heartbeatDeadline else { return }
        let at = Int64(clamping: due.uptimeNanoseconds)
        schedule(.heartbeat(run: agent.run, generation: agent.client.generation, token: agent.heartbeatToken, due: at), at: at)
    }

    func heartbeatFired(_ agent: AgentProcess, token: Int, due: Int64) {
        guard token == agent.heartbeatToken, agent.session != nil else { return }
        checkOnTime("the heartbeat timer", due: due)
        switch agent.session?.heartbeatFired(now: deadline) ?? .ignore {
        case .sendPing:
            armHeartbeat(agent)
            sendToServer(.init(.ping), agent)
        case .wait:
            if let next = agent.session?.heartbeatDeadline, Int64(clamping: next.uptimeNanoseconds) <= now {
                checker.violation("the heartbeat's next deadline does not move past now: the loop would spin")
            }
            armHeartbeat(agent)
        case .timeout(let detail):
            sessionFailed(agent, .pingTimeout, detail)
        case .ignore:
            break
        }
    }

    /// A timer fires at its deadline: later by more than a tick (1 ms) is a violation.
    func checkOnTime(_ what: String, due: Int64) {
        if now - due > 1_000_000 { checker.violation("\(what) due at \(seconds(due)) fired at \(seconds(now))") }
    }

    // MARK: - Emits

    /// The outbox hands an alert to the client, `.direct` as the agent's outbox does: the
    /// machine decides (write now, or fail), as for `ClientCore.queueEmit`.
    func emitAlert(_ send: OutboxSend, _ item: SpoolItem, _ agent: AgentProcess) {
        let room = agent.client.phase == .open && agent.session?.isOpen == true
        switch agent.client.emit(namespace: item.namespace, delivery: .direct, wantsAck: item.ackTimeout != nil, room: room) {
        case .refuse(let error):
            schedule(.sendFailed(run: agent.run, send: send, reason: "\(error)"), after: 0)
        case .buffer(let seq, _, _):
            checker.violation("the client buffered a .direct emit")
            agent.client.forgetEmit(seq)
            schedule(.sendFailed(run: agent.run, send: send, reason: "buffered"), after: 0)
        case .writeOnce:
            // Nothing in the machine: the write's outcome is the alert's (ids below zero).
            agent.timerTokens += 1
            let seq = -agent.timerTokens
            agent.emits[seq] = (send, item, agent.timerTokens)
            writeEmit(seq, ackId: nil, item, agent)
        case .write(let seq, let ackId):
            agent.timerTokens += 1
            agent.emits[seq] = (send, item, agent.timerTokens)
            if let timeout = item.ackTimeout {
                schedule(.ackTimeout(run: agent.run, seq: seq, token: agent.timerTokens), after: nanoseconds(timeout))
            }
            writeEmit(seq, ackId: ackId, item, agent)
        }
    }

    private func writeEmit(_ seq: Int, ackId: Int?, _ item: SpoolItem, _ agent: AgentProcess) {
        var data: [JSONValue] = [.string(item.event)]
        data.append(contentsOf: item.args)
        clientSend(WireFormat.encode(.init(.event, namespace: item.namespace, id: ackId, data: .array(data))), agent)
        // The write completes a moment later, if the session still stands.
        schedule(.sendWritten(run: agent.run, generation: agent.client.generation, seq: seq), after: 100_000)
    }

    func ackTimedOut(_ agent: AgentProcess, seq: Int, token: Int) {
        guard let handle = agent.emits[seq], handle.token == token, agent.client.ackTimedOut(seq) else { return }
        agent.emits[seq] = nil
        checker.mayRepeat(handle.item)
        note("no ack in time for \(World.id(of: handle.item) ?? "?")")
        perform(agent.outbox.handle(.sendCompleted(handle.send, .failed("no acknowledgement in time", permanent: false))), agent)
    }

    /// The write of `seq` completed, or failed with its session.
    func emitWritten(_ agent: AgentProcess, generation: Int, seq: Int) {
        if seq < 0 {
            // Written once (`.writeOnce`): delivered if its session still stands, failed otherwise.
            guard let handle = agent.emits.removeValue(forKey: seq) else { return }
            if generation == agent.client.generation && agent.session?.isOpen == true {
                perform(agent.outbox.handle(.sendCompleted(handle.send, .delivered)), agent)
            } else {
                checker.mayRepeat(handle.item)
                perform(agent.outbox.handle(.sendCompleted(handle.send, .failed("\(SocketIOError.disconnected)", permanent: false))), agent)
            }
            return
        }
        if generation == agent.client.generation && agent.session?.isOpen == true {
            guard agent.client.emitWritten(seq), let handle = agent.emits.removeValue(forKey: seq) else { return }
            perform(agent.outbox.handle(.sendCompleted(handle.send, .delivered)), agent)
            return
        }
        switch agent.client.emitWriteFailed(seq) {
        case .ignore: break
        case .fail(let error): settle(seq, "\(error)", agent)
        case .buffered: checker.violation("the client buffered a .direct emit whose write failed")
        }
    }

    func networkLatency() -> Int64 { random.seconds(0.002, 0.3) }

    static func id(of item: SpoolItem) -> String? {
        guard case .object(let o)? = item.args.first, case .string(let id)? = o["id"] else { return nil }
        return id
    }
}
