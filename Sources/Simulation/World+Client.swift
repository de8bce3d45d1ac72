import Agent
import Rules
import SIOCore
import SocketIO

/// The client and the server, as models: a connection that opens through a handshake, drops,
/// stalls, is refused; a server that acks after a delay or never, kicks namespaces, answers 400
/// after the handshake, and restarts losing its sessions. The reconnection delays are the
/// client's real ``ReconnectBackoff``. (The client's state machine plugs in here once it is a
/// value: its actions then replace this model.)
extension World {
    func handleClient(_ event: Event, _ agent: AgentProcess) {
        switch event {
        case .reconnect(let run):
            guard run == agent.run, agent.phase == .waiting, agent.shutdown == nil else { return }
            agent.connection += 1
            agent.phase = .handshaking
            checker.handshake(self, agent)
            note("handshake #\(agent.connection) (attempt \(agent.backoff.attempt), \(faults.v3 ? "EIO=3" : "EIO=4"))")
            if serverUp {
                agent.handshakeServerRun = serverRuns
                schedule(.handshakeReply(run: run, connection: agent.connection), after: networkLatency())
            } else {
                schedule(.connectionLost(run: run, connection: agent.connection, reason: "connection refused"), after: networkLatency())
            }
        case .handshakeReply(let run, let connection):
            guard run == agent.run, connection == agent.connection, agent.phase == .handshaking else { return }
            // The server restarted since it answered: the session is gone with it (else frames
            // would be lost while it is down and later ones of the same connection delivered).
            if agent.handshakeServerRun != serverRuns || !serverUp {
                schedule(.connectionLost(run: run, connection: connection, reason: "server restart"), after: 0)
                return
            }
            if faults.http400 && !healing && random.chance(0.3) {
                // python-socketio forgot the session: the first request after the handshake gets 400.
                schedule(.connectionLost(run: run, connection: connection, reason: "HTTP 400 after the handshake"), after: networkLatency())
                return
            }
            agent.phase = .open
            serverConnection = connection
            for namespace in settings.namespaces.sorted() {
                agent.connectedNamespaces.insert(namespace)
                performRules(agent.engine.handle(RuleEvent(namespace: namespace, name: "connect", args: []), at: wall), agent)
                perform(agent.outbox.handle(.connected(namespace)), agent)
            }
            afterRules(agent)
            if mutation == .backoffResetAtConnect { agent.backoff.stable() }
            let period = ReconnectBackoff.stabilityPeriod(pingInterval: settings.pingInterval)
            schedule(.stable(run: run, connection: connection), after: nanoseconds(period))
            if kickOnConnect {
                schedule(.connectionLost(run: run, connection: connection, reason: "namespace kicked"), after: networkLatency())
            }
        case .stable(let run, let connection):
            guard run == agent.run, connection == agent.connection, agent.phase == .open else { return }
            agent.backoff.stable()
        case .connectionLost(let run, let connection, let reason):
            guard run == agent.run, connection == agent.connection, agent.phase != .waiting else { return }
            lose(agent, reason)
        case .frameAtServer(let run, let connection, let send, let item):
            guard run == agent.run, connection == serverConnection, serverUp, agent.phase == .open else { return }
            checker.delivered(self, item)
            guard item.ackTimeout != nil else { return }
            if faults.lostAcks && !healing && random.chance(0.15) { return }
            let delay = faults.slowAcks && !healing && random.chance(0.3) ? random.seconds(1, 60) : networkLatency()
            schedule(.ackAtClient(run: run, connection: connection, send: send), after: delay)
        case .ackAtClient(let run, let connection, let send):
            guard run == agent.run, connection == agent.connection, agent.phase == .open,
                agent.awaitingAck.removeValue(forKey: send) != nil
            else { return }
            perform(agent.outbox.handle(.sendCompleted(send, .delivered)), agent)
        case .ackTimeout(let run, let send, let token):
            guard run == agent.run, let waiting = agent.awaitingAck[send], waiting.token == token else { return }
            agent.awaitingAck[send] = nil
            checker.mayRepeat(waiting.item)
            note("no ack in time for \(World.id(of: waiting.item) ?? "?")")
            perform(agent.outbox.handle(.sendCompleted(send, .failed("no acknowledgement in time", permanent: false))), agent)
        case .sendWritten(let run, let send):
            guard run == agent.run else { return }
            perform(agent.outbox.handle(.sendCompleted(send, .delivered)), agent)
        case .sendFailed(let run, let send, let reason):
            guard run == agent.run else { return }
            perform(agent.outbox.handle(.sendCompleted(send, .failed(reason, permanent: false))), agent)
        default:
            break
        }
    }

    /// The outbox hands an alert to the client.
    func clientSend(_ send: OutboxSend, _ item: SpoolItem, _ agent: AgentProcess) {
        guard agent.phase == .open || agent.phase == .stalled, agent.connectedNamespaces.contains(item.namespace) else {
            schedule(.sendFailed(run: agent.run, send: send, reason: "not connected"), after: 0)
            return
        }
        if agent.phase == .open {
            // One connection delivers its frames in the order they were written (TCP).
            agent.lastFrameAt = max(now &+ networkLatency(), agent.lastFrameAt)
            schedule(.frameAtServer(run: agent.run, connection: agent.connection, send: send, item: item), at: agent.lastFrameAt)
        }
        if let timeout = item.ackTimeout {
            agent.ackTokens += 1
            agent.awaitingAck[send] = (agent.ackTokens, item)
            schedule(.ackTimeout(run: agent.run, send: send, token: agent.ackTokens), after: nanoseconds(timeout))
        } else {
            schedule(.sendWritten(run: agent.run, send: send), after: 100_000)
        }
    }

    /// The connection is gone: namespaces down, awaited acks fail, the backoff decides when to
    /// try again.
    private func lose(_ agent: AgentProcess, _ reason: String) {
        note("connection lost: \(reason)")
        if serverConnection == agent.connection { serverConnection = -1 }
        agent.phase = .waiting
        for namespace in agent.connectedNamespaces.sorted() {
            performRules(agent.engine.handle(RuleEvent(namespace: namespace, name: "disconnect", args: []), at: wall), agent)
            perform(agent.outbox.handle(.disconnected(namespace)), agent)
        }
        agent.connectedNamespaces.removeAll()
        let waiting = agent.awaitingAck.sorted { $0.value.token < $1.value.token }
        agent.awaitingAck.removeAll()
        for (send, entry) in waiting {
            checker.mayRepeat(entry.item)
            perform(agent.outbox.handle(.sendCompleted(send, .failed("disconnected", permanent: false))), agent)
        }
        afterRules(agent)
        guard agent.shutdown == nil else { return }
        switch agent.backoff.next(immediate: false, random: random.unit()) {
        case .retry(_, let delay, _): schedule(.reconnect(run: agent.run), after: nanoseconds(delay))
        case .stop: checker.violation("the client stopped reconnecting")
        }
    }

    func networkLatency() -> Int64 { random.seconds(0.002, 0.3) }

    static func id(of item: SpoolItem) -> String? {
        guard case .object(let o)? = item.args.first, case .string(let id)? = o["id"] else { return nil }
        return id
    }
}
