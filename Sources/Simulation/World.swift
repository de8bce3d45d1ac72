import Agent
import Rules
import SIOCore
import SocketIO

/// One seed's world: a priority queue of `(time, sequence, event)`, a simulated clock
/// (monotonic, and a wall clock that may jump), a server model with python-socketio's observable
/// behaviour, a disk with crash semantics, and the agent's real cores. Every random choice comes
/// from the seed, so a run replays exactly.
final class World {
    enum Event {
        case inject(name: String, namespace: String)
        case burst
        case engineTimer(run: Int, token: Int)
        case writerDone(run: Int)
        case lineWriterDone(run: Int)
        case statePersist(run: Int)
        case outboxRetry(run: Int)
        case outboxPersistRetry(run: Int)
        // The client's shell.
        case clientTimer(run: Int, timer: ClientStateMachine.Timer, token: Int, due: Int64)
        case heartbeat(run: Int, generation: Int, token: Int, due: Int64)
        case transportLost(run: Int, generation: Int, reason: DisconnectReason, detail: String, sessionGone: Bool)
        case ackTimeout(run: Int, seq: Int, token: Int)
        case sendWritten(run: Int, generation: Int, seq: Int)
        case sendFailed(run: Int, send: OutboxSend, reason: String)
        // The link: one read (a frame, or with nil the polling body of what waits).
        case atServer(run: Int, generation: Int, frame: [UInt8]?)
        case atClient(run: Int, generation: Int, frame: [UInt8]?)
        // The server.
        case handshakeAtServer(run: Int, generation: Int)
        case serverTick(run: Int, generation: Int)
        case serverAck(run: Int, generation: Int, namespace: String, id: Int)
        case serverKick(run: Int, generation: Int, namespace: String)
        case serverDrop(run: Int, generation: Int, reason: String)
        case shutdownSave(run: Int)
        case shutdownDeadline(run: Int)
        case startAgent
        case fault(Fault)
        case heal
    }

    enum Fault {
        case drop, stall, kickStorm, flapStorm, serverRestart, serverBack, crash, crashOnce, sigterm, reload, wallJump, diskFull, diskFree
        case logStuck, logFree
    }

    let seed: UInt64
    var random: SplitMix64
    let faults: Faults
    /// The line writer's own random stream (its fault, latencies), apart from `random` so that
    /// modelling it leaves every other draw of a seed as it was.
    var lineRandom: SplitMix64
    /// The `log` target hangs now: a line batch started or running does not complete.
    var logStuck = false
    let mutation: Mutation?
    let settings: AgentSettings
    let disk: SimulatedDisk
    var queue = EventQueue<Event>()
    /// Monotonic nanoseconds since the world began.
    private(set) var now: Int64 = 0
    /// Wall clock = monotonic + this (jumps change it).
    var wallOffset: Int64 = 1_800_000_000 * 1_000_000_000
    let end: Int64
    var healing = false
    var agent: AgentProcess?
    var runs = 0
    var ruleVariant = 0
    var checker: Checker
    var trace: [String] = []
    var traceCapacity = 64
    var steps = 0
    var sameInstant = 0
    var lastInstant: Int64 = -1
    var nextID = 0
    var wallJumps = 0
    /// The server: up or restarting, the connection it serves, its sessions, and its fault
    /// switches.
    var serverUp = true
    var link: Link?
    var serverSessions = 0
    var kickOnConnect = false
    var flapOnConnect = false
    /// A hash of every trace line (FNV-1a), to compare two runs of a seed.
    var traceHash: UInt64 = 0xcbf2_9ce4_8422_2325

    var wall: Double { Double(now &+ wallOffset) / 1e9 }

    init(seed: UInt64, hours: Double, mutation: Mutation?) {
        self.seed = seed
        self.mutation = mutation
        var r = SplitMix64(seed: seed)
        var faults = Faults(&r)
        var lineRandom = SplitMix64(seed: seed ^ 0x6c69_6e65_7772_6974)
        faults.stuckLog = lineRandom.chance(0.3)
        self.faults = faults
        self.lineRandom = lineRandom
        var settings = AgentSettings(maxItems: r.chance(0.5) ? r.int(2...8) : r.int(20...200), shutdownTimeout: .seconds(r.int(1...5)))
        if r.chance(0.3) { settings.maxBytes = r.int(300...3000) }
        if r.chance(0.4) { settings.maxMemory = r.int(0...1500) }
        settings.policy.reconnectAfterServerDisconnect = r.chance(0.5)
        // python-socketio's defaults (25 s, 20 s), or short ones that make the heartbeats busy.
        settings.pingInterval = r.chance(0.5) ? 5_000 : 25_000
        settings.pingTimeout = r.chance(0.5) ? 5_000 : 20_000
        if mutation == .stateInSpool { settings.stateDirectory = settings.spoolDirectory }
        // `spool.in_flight` from the seed, not drawn (the draws stay as they were).
        settings.inFlight = [32, 32, 8, 1][Int(seed % 4)]
        self.settings = settings
        disk = SimulatedDisk(seed: r.next())
        disk.ioErrorRate = faults.ioErrors ? 0.05 : 0
        random = r
        end = Int64(hours * 3600e9)
        checker = Checker(settings: settings)
    }

    // MARK: - The loop

    /// Runs the world to its end; returns the violations found (the first stops the run).
    func runToEnd() -> [String] {
        schedule(.startAgent, after: 0)
        scheduleTraffic()
        scheduleFaults()
        schedule(.heal, at: end)
        let stop = end + 20 * 60 * 1_000_000_000
        while let (time, event) = queue.pop(), time <= stop {
            if time < now { checker.violation("time went backwards: \(time) < \(now)") }
            if time == lastInstant {
                sameInstant += 1
                if sameInstant > 100_000 { checker.violation("the loop spins at one instant (\(sameInstant) events at t=\(seconds(time)))") }
            } else {
                sameInstant = 0
                lastInstant = time
            }
            now = time
            steps += 1
            handle(event)
            if let agent { checker.afterStep(self, agent) }
            if !checker.violations.isEmpty { return checker.violations }
        }
        checker.atEnd(self)
        return checker.violations
    }

    func schedule(_ event: Event, after delay: Int64) { queue.push(event, at: now &+ max(0, delay)) }
    func schedule(_ event: Event, at time: Int64) { queue.push(event, at: max(now, time)) }

    func note(_ text: String) {
        if trace.count >= traceCapacity { trace.removeFirst(trace.count - traceCapacity + 1) }
        let line = "t=\(seconds(now)) \(text)"
        for byte in line.utf8 { traceHash = (traceHash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        traceHash = (traceHash ^ 0x0a) &* 0x100_0000_01b3
        trace.append(line)
    }

    func seconds(_ t: Int64) -> String {
        let ms = t / 1_000_000
        return "\(ms / 1000).\(String(ms % 1000 + 1000).dropFirst())s"
    }

    private func handle(_ event: Event) {
        switch event {
        case .startAgent: startAgent()
        case .inject(let name, let namespace):
            // The last 10 healed minutes bring no new traffic: what was kept must get through.
            guard now < end + 10 * 60 * 1_000_000_000 else { return }
            inject(name, namespace)
            if !healing {
                let gap: (Double, Double) = name == "mark" ? (10, 600) : name == "ping" ? (5, 60) : (1, 40)
                schedule(.inject(name: name, namespace: namespace), after: random.seconds(gap.0, gap.1))
            }
        case .burst:
            guard now < end + 10 * 60 * 1_000_000_000 else { return }
            for _ in 0..<random.int(10...40) { inject("reading", random.chance(0.5) ? "/" : "/devices") }
            if faults.burst && !healing { schedule(.burst, after: random.seconds(300, 1800)) }
        case .fault(let fault):
            // Once healed, only the faults' own ends still happen.
            if !healing || fault == .serverBack || fault == .diskFree || fault == .logFree { apply(fault) }
        case .heal: heal()
        default:
            guard let agent, !agent.exited else { return }
            handleAgent(event, agent)
        }
    }

    // MARK: - Traffic and faults

    private func scheduleTraffic() {
        schedule(.inject(name: "reading", namespace: "/"), after: random.seconds(1, 20))
        schedule(.inject(name: "reading", namespace: "/devices"), after: random.seconds(1, 20))
        schedule(.inject(name: "ping", namespace: "/"), after: random.seconds(1, 30))
        schedule(.inject(name: "mark", namespace: "/"), after: random.seconds(10, 300))
        if faults.burst { schedule(.burst, after: random.seconds(30, 900)) }
    }

    private func scheduleFaults() {
        let f = faults
        let pairs: [(Bool, Fault, Double, Double)] = [
            (f.drops, .drop, 30, 900), (f.stalls, .stall, 60, 1800), (f.kicks, .kickStorm, 120, 1800), (f.flaps, .flapStorm, 60, 1200),
            (f.serverRestarts, .serverRestart, 300, 3600), (f.crashes, .crash, 60, 1800), (f.sigterms, .sigterm, 120, 2400),
            (f.reloads, .reload, 60, 1200), (f.wallJumps, .wallJump, 300, 3600), (f.fullDisk, .diskFull, 120, 1800),
        ]
        for (on, fault, lower, upper) in pairs where on { schedule(.fault(fault), after: random.seconds(lower, upper)) }
        if f.stuckLog { schedule(.fault(.logStuck), after: lineRandom.seconds(30, 900)) }
    }

    private func reschedule(_ fault: Fault, _ lower: Double, _ upper: Double) {
        if !healing { schedule(.fault(fault), after: random.seconds(lower, upper)) }
    }

    private func inject(_ name: String, _ namespace: String) {
        serverEmit(name, namespace)
    }

    private func apply(_ fault: Fault) {
        switch fault {
        case .drop:
            if let link, link.sid != nil {
                note("the connection drops")
                serverDrop(link, "transport closed")
            }
            reschedule(.drop, 30, 900)
        case .stall:
            if let link, link.sid != nil, !link.stalled {
                link.stalled = true
                note("connection stalls")
            }
            reschedule(.stall, 60, 1800)
        case .kickStorm:
            kickOnConnect.toggle()
            note(kickOnConnect ? "server kicks every namespace at connect" : "server stops kicking")
            if let link, kickOnConnect, link.sid != nil {
                for namespace in link.namespaces.sorted() { kick(namespace, link) }
            }
            if kickOnConnect { schedule(.fault(.kickStorm), after: random.seconds(20, 120)) } else { reschedule(.kickStorm, 120, 1800) }
        case .flapStorm:
            flapOnConnect.toggle()
            note(flapOnConnect ? "server closes each connection just after a namespace connects" : "server stops closing connections")
            if flapOnConnect { schedule(.fault(.flapStorm), after: random.seconds(20, 120)) } else { reschedule(.flapStorm, 120, 1800) }
        case .serverRestart:
            serverUp = false
            note("server restarts (sessions lost)")
            if let link, link.sid != nil { serverDrop(link, "connection reset (server restart)") }
            schedule(.fault(.serverBack), after: random.seconds(1, 30))
        case .serverBack:
            serverUp = true
            note("server back")
            reschedule(.serverRestart, 300, 3600)
        case .crash:
            if let agent, !agent.exited { crash(agent) }
            reschedule(.crash, 60, 1800)
        case .crashOnce:
            if let agent, !agent.exited { crash(agent) }
        case .sigterm:
            if let agent, !agent.exited, agent.shutdown == nil { sigterm(agent) }
            reschedule(.sigterm, 120, 2400)
        case .reload:
            ruleVariant = 1 - ruleVariant
            if let agent, !agent.exited {
                note("rules reloaded (variant \(ruleVariant))")
                _ = agent.engine.reload(SimulationRules.load(variant: ruleVariant), at: wall)
                afterRules(agent)
            }
            reschedule(.reload, 60, 1200)
        case .wallJump:
            let jump = random.chance(0.5) ? random.seconds(1, 7200) : -random.seconds(1, 7200)
            wallOffset &+= jump
            wallJumps += 1
            note("wall clock jumps \(jump / 1_000_000_000) s")
            if let agent, !agent.exited { afterRules(agent) }
            reschedule(.wallJump, 300, 3600)
        case .diskFull:
            disk.full = true
            note("disk full")
            schedule(.fault(.diskFree), after: random.seconds(5, 300))
        case .diskFree:
            disk.full = false
            note("disk has room again")
            reschedule(.diskFull, 120, 1800)
        case .logStuck:
            logStuck = true
            note("the log target hangs")
            schedule(.fault(.logFree), after: lineRandom.seconds(30, 600))
        case .logFree:
            logFree()
            if !healing { schedule(.fault(.logStuck), after: lineRandom.seconds(120, 1800)) }
        }
    }

    /// The faults stop: the server answers and acks, the disk takes writes; what was kept must
    /// now be delivered.
    private func heal() {
        healing = true
        note("heal: faults off")
        serverUp = true
        kickOnConnect = false
        flapOnConnect = false
        disk.full = false
        disk.ioErrorRate = 0
        if logStuck { logFree() }
        if agent == nil || agent!.exited { schedule(.startAgent, after: 0) }
    }
}
