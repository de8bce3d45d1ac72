import Foundation
import TestSupport
import Testing

/// examples/cluster for real: nginx (ip_hash, WebSocket upgrade) in front of two python-socketio
/// nodes sharing redis-server. The agent gets a broadcast through whichever node it landed on,
/// and when that node is killed it is back on the other one and its alert arrives there.
@Suite(.timeLimit(.minutes(3)))
struct ClusterExampleTests {
    @Test func agentFollowsTheClusterThroughANodeFailure() async throws {
        for tool in ["/usr/sbin/nginx", "/usr/bin/redis-server"] {
            try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing (apt-get install nginx redis-server; .ci/run does)")
        }
        let ports = try (0..<4).map { _ in try ServerSocketProbe.freePort() }
        let script = TestPaths.packageRoot + "/examples/cluster/run.sh"
        // The test process may ignore SIGTERM, and children inherit that: env restores it, so that
        // run.sh's trap and its children's SIGTERM handling work as they do from a terminal.
        let cluster = try ChildProcess(
            "/usr/bin/env", ["--default-signal=TERM,INT", "/bin/bash", script],
            environment: [
                "PORT": "\(ports[0])", "NODE_A": "\(ports[1])", "NODE_B": "\(ports[2])", "REDIS_PORT": "\(ports[3])",
                "SIOAGENT_PYTHON": try TestPaths.python,
            ], name: "cluster")
        defer {
            // run.sh stops its children on SIGTERM (SIGKILL after 5 s).
            if cluster.isRunning { cluster.signal(SIGTERM) }
        }
        // A node says "listening on" once Redis has its subscription: a broadcast from then on
        // reaches its clients (examples/cluster/node.py).
        try await cluster.waitFor("both nodes") { cluster.stdoutLines.filter { $0.contains("listening on") }.count == 2 }
        // nginx is up once it accepts connections.
        let deadline = ContinuousClock.now + .seconds(10)
        while !canConnectTCP(ports[0]), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }

        let fixture = try AgentFixture(label: "cluster")
        try fixture.writeConfig(url: "http://127.0.0.1:\(ports[0])", transports: "[polling, websocket]")
        try fixture.writeRules(
            """
            rules:
              - id: battery-low
                on: batery
                when: payload < 20
                clear_when: payload >= 25
                then:
                  - emit: alert
                    args: ["low {{ payload }}"]
            """)
        let agent = try fixture.startAgent()
        defer { agent.signal(SIGKILL) }
        try await cluster.waitFor("the agent on a node") { cluster.stdoutLines.contains { $0.contains("] connect ") } }
        let first = cluster.stdoutLines.first { $0.contains("] connect ") }!
        let firstNode = first.contains("[node-a]") ? "node-a" : "node-b"
        let otherNode = firstNode == "node-a" ? "node-b" : "node-a"
        // Connected (the node has the agent's sid in its room once the agent has the CONNECT
        // answer) and on its final transport before broadcasting.
        try await agent.waitFor("the connection") { !agent.logged("connected").isEmpty && agent.upgradesEnded >= 1 }

        func broadcast(_ value: Int) async throws {
            let child = try ChildProcess(
                try TestPaths.python,
                [TestPaths.packageRoot + "/examples/cluster/broadcast.py", "--redis", "redis://127.0.0.1:\(ports[3])/0", "batery", "\(value)"],
                name: "broadcast")
            #expect(await child.waitForExit(timeout: .seconds(20)) == 0)
        }
        try await broadcast(12)
        try await cluster.waitFor("the alert on \(firstNode)") {
            cluster.stdoutLines.contains { $0.hasPrefix("[\(firstNode)] event alert") && $0.contains("low 12") }
        }

        // Kill the agent's node: it reconnects through nginx to the other one.
        let pidLine = try #require(cluster.stdoutLines.first { $0.hasPrefix("[\(firstNode)] listening on") })
        let pid = try #require(pidLine.split(separator: " ").last.flatMap { Int32($0) })
        kill(pid, SIGKILL)
        try await cluster.waitFor("the agent on \(otherNode)", timeout: .seconds(30)) {
            cluster.stdoutLines.contains { $0.hasPrefix("[\(otherNode)] connect ") }
        }
        try await agent.waitFor("the reconnection") { agent.logged("connected").count >= 2 && agent.upgradesEnded >= 2 }
        try await broadcast(30)
        try await broadcast(11)
        try await cluster.waitFor("the alert on \(otherNode)") {
            cluster.stdoutLines.contains { $0.hasPrefix("[\(otherNode)] event alert") && $0.contains("low 11") }
        }
        agent.signal(SIGTERM)
        #expect(await agent.waitForExit(timeout: .seconds(10)) == 0)
        cluster.signal(SIGTERM)
        #expect(await cluster.waitForExit(timeout: .seconds(20)) != nil)
    }
}

extension ChildProcess {
    /// WebSocket upgrades done or given up (the session stays on long-polling then).
    var upgradesEnded: Int { logged("upgraded to websocket").count + logged("upgrade to websocket failed, staying on polling").count }
}

func canConnectTCP(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}
