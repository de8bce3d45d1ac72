import Rules
import SocketIO

/// Everything `sioagent run` needs, read from the configuration file, the environment and the
/// command line (in that order of increasing precedence) over the defaults below.
public struct AgentConfiguration: Sendable {
    /// The Socket.IO server and how to reach it.
    public var server: Server
    /// Reconnection back-off (socket.io-client's defaults: 1 s doubling to 5 s, jitter 0.5, forever).
    public var reconnection: ReconnectionPolicy
    /// The rule files: a file or a directory of `*.yaml` / `*.yml`.
    public var rules: String
    /// Where alerts that could not be delivered wait, and how many may wait.
    public var spool: Spool
    /// `state.file`: where the rules' shared state (`set:`) is kept; nil: ``defaultStateFile``.
    public var stateFile: String?
    /// `limits.window_samples`: window samples held across every rule and key.
    public var maxWindowSamples: Int = defaultMaxWindowSamples
    /// `limits.key_bytes`: bytes held by rule keys (their values and what the rules read of
    /// their last event), all rules together.
    public var maxKeyBytes: Int = defaultMaxKeyBytes
    /// How `run` and `shell` actions execute.
    public var commands: Commands
    /// The agent's own log output.
    public var log: Log
    /// Files written by `log` actions: rotation by size.
    public var logFiles: LogFiles
    /// How long shutdown waits for running actions before it gives up on them (default 10 s).
    public var shutdownTimeout: Duration
    /// Evaluate rules for real but execute nothing; print each planned action as a JSON line.
    public var dryRun: Bool
    /// Append every incoming event to this file, in the format `sioagent replay` reads.
    public var recordPath: String?
    /// Watch the rules path and reload when a file changes (default true). SIGHUP always reloads.
    public var watchRules: Bool
    /// The environment that `${NAME}` and the rules' `env.NAME` read.
    public var environment: [String: String]
    /// Prometheus metrics (`metrics:`); off by default.
    public var metrics = Metrics()

    public struct Server: Sendable {
        public var url: String
        public var path: String = "/socket.io/"
        public var transports: TransportMode = .auto
        /// Namespace → auth payload.
        public var namespaces: [String: JSONValue?] = ["/": nil]
        public var headers: [(name: String, value: String)] = []
        public var tls: TLSOptions = TLSOptions()
        /// `server.protocol`: auto (default), 4 or 3 (Socket.IO v2 / Engine.IO 3 servers).
        public var protocolVersion: ProtocolVersion = .auto
        /// `server.proxy`; by default the `https_proxy`/`http_proxy`/`no_proxy` environment.
        public var proxy: ProxySetting = .environment

        public init(url: String) { self.url = url }
    }

    public struct Spool: Sendable {
        public var dir: String
        public var maxItems: Int = 10_000
        /// `spool.max_bytes`: the alerts on disk, in bytes (the oldest go beyond it).
        public var maxBytes: Int = 64 << 20
        /// `spool.max_memory`: payloads of waiting alerts held in memory; the rest is read back
        /// from disk when its turn comes.
        public var maxMemory: Int = 4 << 20
        /// `spool.in_flight`: spooled alerts per namespace on the wire at once, waiting for
        /// their acks (1…1024).
        public var inFlight: Int = 32

        public init(dir: String, maxItems: Int = 10_000) {
            self.dir = dir
            self.maxItems = maxItems
        }
    }

    public struct Commands: Sendable {
        public var timeout: Duration = .seconds(30)
        public var maxConcurrent: Int = 4
        /// Commands waiting for a slot; beyond this the oldest waiting one is dropped.
        public var maxQueued: Int = 100
        public var allowShell: Bool = true
        /// Default: the agent's current directory.
        public var cwd: String = "."
        /// Names of the agent's environment variables passed on to commands.
        public var passEnv: [String] = ["PATH", "LANG"]
        /// Between SIGTERM and SIGKILL when a command overruns its timeout.
        public var killGrace: Duration = .seconds(5)

        public init() {}
    }

    public struct Log: Sendable {
        public var format: LogFormat = .json
        public var level: String = "info"

        public init() {}
    }

    public enum LogFormat: String, Sendable {
        case json, text
    }

    public struct LogFiles: Sendable {
        /// Rotate when a file would grow past this many bytes (default 10 MiB).
        public var maxBytes: Int = 10 * 1024 * 1024
        /// Rotated files kept: `file.1` … `file.N` (default 5).
        public var keep: Int = 5

        public init() {}
    }

    public init(
        server: Server,
        reconnection: ReconnectionPolicy = ReconnectionPolicy(),
        rules: String,
        spool: Spool,
        commands: Commands = Commands(),
        log: Log = Log(),
        logFiles: LogFiles = LogFiles(),
        shutdownTimeout: Duration = .seconds(10),
        dryRun: Bool = false,
        recordPath: String? = nil,
        watchRules: Bool = true,
        environment: [String: String] = [:]
    ) {
        self.server = server
        self.reconnection = reconnection
        self.rules = rules
        self.spool = spool
        self.commands = commands
        self.log = log
        self.logFiles = logFiles
        self.shutdownTimeout = shutdownTimeout
        self.dryRun = dryRun
        self.recordPath = recordPath
        self.watchRules = watchRules
        self.environment = environment
    }

    /// The state file in use: `state.file`, else `state.json` beside (not inside) the spool
    /// directory: `/var/lib/sioagent/state.json` for the default spool `/var/lib/sioagent/spool`.
    public var stateFilePath: String { stateFile ?? Self.defaultStateFile(spoolDir: spool.dir) }

    static func defaultStateFile(spoolDir: String) -> String {
        var dir = Substring(spoolDir)
        while dir.count > 1, dir.hasSuffix("/") { dir = dir.dropLast() }
        let parent = directoryOf(String(dir))
        return parent == "/" ? "/state.json" : parent + "/state.json"
    }

    /// The Socket.IO client's configuration for this agent.
    public var clientConfiguration: SocketIOClientConfiguration {
        var c = SocketIOClientConfiguration(url: server.url)
        c.path = server.path
        c.transports = server.transports
        c.namespaces = server.namespaces
        c.headers = server.headers
        c.tls = server.tls
        c.protocolVersion = server.protocolVersion
        c.reconnection = reconnection
        c.proxy = server.proxy
        c.environment = environment
        return c
    }
}
