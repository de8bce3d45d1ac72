import Rules
import SIOYAML
import SocketIO

#if canImport(Glibc)
import Glibc
#endif

/// Settings given on the command line or through `SIOAGENT_*` environment variables; each one
/// set here wins over the configuration file.
public struct AgentOverrides: Sendable {
    public var url: String?
    public var rules: String?
    public var namespaces: [String] = []
    public var dryRun: Bool?
    public var logFormat: AgentConfiguration.LogFormat?
    public var logLevel: String?
    public var spoolDir: String?
    public var recordPath: String?

    public init() {}

    /// The overrides that `SIOAGENT_URL`, `SIOAGENT_RULES`, `SIOAGENT_NAMESPACES` (comma-separated),
    /// `SIOAGENT_DRY_RUN`, `SIOAGENT_LOG_FORMAT`, `SIOAGENT_LOG_LEVEL`, `SIOAGENT_SPOOL_DIR` and
    /// `SIOAGENT_RECORD` set.
    public static func fromEnvironment(_ environment: [String: String]) throws(ConfigErrors) -> AgentOverrides {
        var o = AgentOverrides()
        var errors: [Diagnostic] = []
        func fail(_ name: String, _ message: String) {
            errors.append(Diagnostic(file: "environment", line: 0, column: 0, message: "\(name): \(message)"))
        }
        o.url = environment["SIOAGENT_URL"].flatMap { $0.isEmpty ? nil : $0 }
        o.rules = environment["SIOAGENT_RULES"].flatMap { $0.isEmpty ? nil : $0 }
        if let ns = environment["SIOAGENT_NAMESPACES"], !ns.isEmpty {
            o.namespaces = ns.split(separator: ",").map { String($0).trimmingSpaces() }
        }
        if let d = environment["SIOAGENT_DRY_RUN"], !d.isEmpty {
            switch d.lowercased() {
            case "1", "true", "yes", "on": o.dryRun = true
            case "0", "false", "no", "off": o.dryRun = false
            default: fail("SIOAGENT_DRY_RUN", "must be true or false, not '\(d)'")
            }
        }
        if let f = environment["SIOAGENT_LOG_FORMAT"], !f.isEmpty {
            if let format = AgentConfiguration.LogFormat(rawValue: f) {
                o.logFormat = format
            } else {
                fail("SIOAGENT_LOG_FORMAT", "must be json or text, not '\(f)'")
            }
        }
        if let l = environment["SIOAGENT_LOG_LEVEL"], !l.isEmpty {
            if AgentConfiguration.logLevels.contains(l) {
                o.logLevel = l
            } else {
                fail("SIOAGENT_LOG_LEVEL", "must be one of \(AgentConfiguration.logLevels.joined(separator: ", "))")
            }
        }
        o.spoolDir = environment["SIOAGENT_SPOOL_DIR"].flatMap { $0.isEmpty ? nil : $0 }
        o.recordPath = environment["SIOAGENT_RECORD"].flatMap { $0.isEmpty ? nil : $0 }
        if !errors.isEmpty { throw ConfigErrors(errors: errors) }
        return o
    }

    /// `other`'s settings where it has them, these elsewhere.
    public func overridden(by other: AgentOverrides) -> AgentOverrides {
        var o = self
        if let v = other.url { o.url = v }
        if let v = other.rules { o.rules = v }
        if !other.namespaces.isEmpty { o.namespaces = other.namespaces }
        if let v = other.dryRun { o.dryRun = v }
        if let v = other.logFormat { o.logFormat = v }
        if let v = other.logLevel { o.logLevel = v }
        if let v = other.spoolDir { o.spoolDir = v }
        if let v = other.recordPath { o.recordPath = v }
        return o
    }
}

extension AgentConfiguration {
    /// The levels `log.level` accepts, quietest last.
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// Where the spool lives when nothing says: `$STATE_DIRECTORY/spool` under systemd,
    /// otherwise `/var/lib/sioagent/spool`.
    static func defaultSpoolDir(_ environment: [String: String]) -> String {
        if let state = environment["STATE_DIRECTORY"], !state.isEmpty {
            let first = state.split(separator: ":").first.map(String.init) ?? state
            return first + "/spool"
        }
        return "/var/lib/sioagent/spool"
    }

    /// Reads the configuration: defaults, then the file at `path` (if any), then `overrides`
    /// (the environment's, then the flags', already merged by the caller).
    /// Relative paths in the file (rules, spool, record) are taken from the file's directory.
    public static func load(
        path: String?,
        overrides: AgentOverrides,
        environment: [String: String]
    ) throws(ConfigErrors) -> AgentConfiguration {
        var url: String?
        var rules: String?
        var config = AgentConfiguration(
            server: Server(url: ""),
            rules: "",
            spool: Spool(dir: defaultSpoolDir(environment)),
            environment: environment
        )
        // Commands run, and `log` actions write, in the current directory unless told otherwise.
        config.commands.cwd = currentDirectory()
        if let path {
            let text: String
            do {
                text = try readTextFile(path)
            } catch {
                throw ConfigErrors(errors: [Diagnostic(file: path, line: 1, column: 1, message: "cannot read: \(error)")])
            }
            let base = directoryOf(path)
            var reader = ConfigReader(file: path, text: text, environment: environment)
            let root: YAMLNode?
            do {
                root = try YAMLReader.read(text)
            } catch {
                throw ConfigErrors(errors: [Diagnostic(yamlError: error, file: path, text: text)])
            }
            if let root {
                config.read(root, reader: &reader, base: base, url: &url, rules: &rules)
            }
            if !reader.errors.isEmpty { throw ConfigErrors(errors: reader.errors) }
        }
        // Flags and environment win over the file.
        if let v = overrides.url { url = v }
        if let v = overrides.rules { rules = v }
        if !overrides.namespaces.isEmpty {
            var namespaces: [String: JSONValue?] = [:]
            for ns in overrides.namespaces {
                let name = ns.hasPrefix("/") ? ns : "/" + ns
                namespaces[name] = .some(config.server.namespaces[name] ?? nil)
            }
            config.server.namespaces = namespaces
        }
        if let v = overrides.dryRun { config.dryRun = v }
        if let v = overrides.logFormat { config.log.format = v }
        if let v = overrides.logLevel { config.log.level = v }
        if let v = overrides.spoolDir { config.spool.dir = v }
        if let v = overrides.recordPath { config.recordPath = v }

        var missing: [Diagnostic] = []
        let where_ = path ?? "command line"
        if let url { config.server.url = url } else {
            missing.append(Diagnostic(file: where_, line: 0, column: 0, message: "no server URL: set server.url in the file, or --url"))
        }
        if let rules { config.rules = rules } else {
            missing.append(Diagnostic(file: where_, line: 0, column: 0, message: "no rules: set rules in the file, or --rules"))
        }
        if !missing.isEmpty { throw ConfigErrors(errors: missing) }
        return config
    }

    /// The shortest `reconnection.delay` and `reconnection.max_delay`.
    static let shortestReconnectionDelay: Duration = .milliseconds(100)

    private mutating func read(_ root: YAMLNode, reader: inout ConfigReader, base: String, url: inout String?, rules: inout String?) {
        let top = reader.mapping(
            root, "the configuration",
            known: ["server", "reconnection", "rules", "spool", "state", "limits", "commands", "log", "log_files", "shutdown", "record", "watch_rules", "metrics"])
        for (key, _, value) in top {
            switch key {
            case "server": readServer(value, reader: &reader, url: &url)
            case "reconnection":
                for (k, _, v) in reader.mapping(value, "reconnection", known: ["delay", "max_delay", "randomization", "attempts", "after_server_disconnect", "when_exhausted", "slow_delay"]) {
                    switch k {
                    // At least 100 ms: `delay: 0.00001ms` made about 1,200 connection attempts a
                    // second, at 37 % of a core, against the fleet's own server.
                    case "delay":
                        if let d = reader.duration(v, "reconnection.delay") {
                            if d < Self.shortestReconnectionDelay {
                                reader.error("reconnection.delay must be at least 100ms", at: v)
                            } else {
                                reconnection.delay = d
                            }
                        }
                    case "max_delay":
                        if let d = reader.duration(v, "reconnection.max_delay") {
                            if d < Self.shortestReconnectionDelay {
                                reader.error("reconnection.max_delay must be at least 100ms", at: v)
                            } else {
                                reconnection.maxDelay = d
                            }
                        }
                    case "randomization":
                        if let r = reader.double(v, "reconnection.randomization", range: 0...1) { reconnection.randomization = r }
                    case "attempts": if let n = reader.int(v, "reconnection.attempts") { reconnection.attempts = n }
                    case "slow_delay": if let d = reader.duration(v, "reconnection.slow_delay") { reconnection.slowDelay = d }
                    case "when_exhausted":
                        if let text = reader.string(v, "reconnection.when_exhausted") {
                            if let w = ReconnectionPolicy.WhenExhausted(rawValue: text) {
                                reconnection.whenExhausted = w
                            } else {
                                reader.error("reconnection.when_exhausted must be 'retry' or 'exit', not '\(text)'", at: v)
                            }
                        }
                    default:
                        if let b = reader.bool(v, "reconnection.after_server_disconnect") { reconnection.reconnectAfterServerDisconnect = b }
                    }
                }
            case "rules": if let r = reader.string(value, "rules") { rules = resolve(r, base: base) }
            case "spool":
                for (k, _, v) in reader.mapping(value, "spool", known: ["dir", "max_items", "max_bytes", "max_memory", "in_flight"]) {
                    switch k {
                    case "dir": if let d = reader.string(v, "spool.dir") { spool.dir = resolve(d, base: base) }
                    case "max_bytes":
                        if let n = reader.byteSize(v, "spool.max_bytes") {
                            if n < 1 << 20 { reader.error("spool.max_bytes must be at least 1MiB, not '\(n)' bytes", at: v) } else { spool.maxBytes = n }
                        }
                    case "max_memory":
                        if let n = reader.byteSize(v, "spool.max_memory") {
                            if n < 64 << 10 || n > 1 << 30 {
                                reader.error("spool.max_memory must be within 64KiB and 1GiB, not '\(n)' bytes", at: v)
                            } else {
                                spool.maxMemory = n
                            }
                        }
                    case "in_flight":
                        let range = OutboxState.Configuration.inFlightRange
                        if let n = reader.int(v, "spool.in_flight", minimum: range.lowerBound, maximum: range.upperBound) { spool.inFlight = n }
                    default: if let n = reader.int(v, "spool.max_items", minimum: 1) { spool.maxItems = n }
                    }
                }
            case "limits":
                for (k, _, v) in reader.mapping(value, "limits", known: ["window_samples", "key_bytes"]) {
                    if k == "key_bytes" {
                        if let n = reader.byteSize(v, "limits.key_bytes") {
                            if n < 1 << 20 || n > 1 << 30 {
                                reader.error("limits.key_bytes must be within 1MiB and 1GiB, not '\(n)' bytes", at: v)
                            } else {
                                maxKeyBytes = n
                            }
                        }
                    } else if let n = reader.int(v, "limits.window_samples", minimum: 1_000, maximum: 100_000_000) {
                        maxWindowSamples = n
                    }
                }
            case "state":
                for (_, _, v) in reader.mapping(value, "state", known: ["file"]) {
                    if let f = reader.string(v, "state.file") {
                        if f.isEmpty || f.hasSuffix("/") {
                            reader.error("state.file must name a file, not '\(f)'", at: v)
                        } else {
                            stateFile = resolve(f, base: base)
                        }
                    }
                }
            case "commands":
                for (k, _, v) in reader.mapping(value, "commands", known: ["timeout", "max_concurrent", "max_queued", "allow_shell", "cwd", "pass_env", "kill_grace"]) {
                    switch k {
                    case "timeout": if let d = reader.duration(v, "commands.timeout") { commands.timeout = d }
                    case "max_concurrent": if let n = reader.int(v, "commands.max_concurrent", minimum: 1) { commands.maxConcurrent = n }
                    case "max_queued": if let n = reader.int(v, "commands.max_queued", minimum: 0) { commands.maxQueued = n }
                    case "allow_shell": if let b = reader.bool(v, "commands.allow_shell") { commands.allowShell = b }
                    case "cwd": if let d = reader.string(v, "commands.cwd") { commands.cwd = resolve(d, base: base) }
                    case "pass_env": if let l = reader.stringList(v, "commands.pass_env") { commands.passEnv = l }
                    default: if let d = reader.duration(v, "commands.kill_grace") { commands.killGrace = d }
                    }
                }
            case "log":
                for (k, _, v) in reader.mapping(value, "log", known: ["format", "level"]) {
                    guard let s = reader.string(v, "log.\(k)") else { continue }
                    if k == "format" {
                        if let f = LogFormat(rawValue: s) { log.format = f } else { reader.error("log.format must be json or text, not '\(s)'", at: v) }
                    } else if Self.logLevels.contains(s) {
                        log.level = s
                    } else {
                        reader.error("log.level must be one of \(Self.logLevels.joined(separator: ", ")), not '\(s)'", at: v)
                    }
                }
            case "log_files":
                for (k, _, v) in reader.mapping(value, "log_files", known: ["max_size", "keep"]) {
                    if k == "max_size" {
                        if let n = reader.byteSize(v, "log_files.max_size") {
                            if n < 1 { reader.error("log_files.max_size must be at least 1 byte, not '0' bytes", at: v) } else { logFiles.maxBytes = n }
                        }
                    } else if let n = reader.int(v, "log_files.keep", minimum: 1, maximum: 1000) {
                        logFiles.keep = n
                    }
                }
            case "shutdown":
                for (_, _, v) in reader.mapping(value, "shutdown", known: ["timeout"]) {
                    if let d = reader.duration(v, "shutdown.timeout") {
                        if d < .seconds(1) || d > .seconds(3600) {
                            reader.error("shutdown.timeout must be within 1s and 1h", at: v)
                        } else {
                            shutdownTimeout = d
                        }
                    }
                }
            case "record": if let r = reader.string(value, "record") { recordPath = resolve(r, base: base) }
            case "metrics": readMetrics(value, reader: &reader, base: base)
            default: if let b = reader.bool(value, "watch_rules") { watchRules = b }
            }
        }
    }

    private mutating func readServer(_ node: YAMLNode, reader: inout ConfigReader, url: inout String?) {
        for (key, _, value) in reader.mapping(node, "server", known: ["url", "path", "transports", "protocol", "namespaces", "headers", "tls", "proxy"]) {
            switch key {
            case "url":
                if let u = reader.string(value, "server.url") {
                    let lower = u.lowercased()
                    if ["http://", "https://", "ws://", "wss://"].contains(where: { lower.hasPrefix($0) }) {
                        url = u
                    } else {
                        reader.error("server.url must start with http://, https://, ws:// or wss://", at: value)
                    }
                }
            case "path": if let p = reader.string(value, "server.path") { server.path = p }
            case "proxy": readProxy(value, reader: &reader)
            case "transports":
                guard let list = reader.stringList(value, "server.transports") else { continue }
                switch list {
                case ["polling", "websocket"]: server.transports = .auto
                case ["websocket"]: server.transports = .websocket
                case ["polling"]: server.transports = .polling
                default:
                    reader.error("server.transports must be [polling, websocket], [websocket] or [polling]", at: value)
                }
            case "protocol":
                guard let text = reader.string(value, "server.protocol") else { continue }
                if let version = ProtocolVersion(rawValue: text) {
                    server.protocolVersion = version
                } else {
                    reader.error("server.protocol must be auto, 4 or 3, not '\(text)'", at: value)
                }
            case "namespaces":
                var namespaces: [String: JSONValue?] = [:]
                guard let mapping = value.mapping else {
                    // A plain list of names, without auth.
                    if let list = reader.stringList(value, "server.namespaces") {
                        for n in list { namespaces[n.hasPrefix("/") ? n : "/" + n] = .some(nil) }
                        server.namespaces = namespaces
                    }
                    continue
                }
                for (nsNode, settings) in mapping {
                    guard let name = nsNode.scalar?.string, name.hasPrefix("/") else {
                        reader.error("a namespace starts with '/'", at: nsNode)
                        continue
                    }
                    var auth: JSONValue?
                    if !settings.isNull {
                        for (_, _, v) in reader.mapping(settings, "namespace \(name)", known: ["auth"]) {
                            auth = reader.json(v)
                        }
                    }
                    namespaces[name] = .some(auth)
                }
                server.namespaces = namespaces
            case "headers":
                var headers: [(name: String, value: String)] = []
                for (k, _, v) in reader.mapping(value, "server.headers", known: []) {
                    if let s = reader.string(v, "header \(k)") { headers.append((k, s)) }
                }
                server.headers = headers
            default:
                for (k, _, v) in reader.mapping(value, "server.tls", known: ["ca_file", "insecure"]) {
                    if k == "ca_file" {
                        if let f = reader.string(v, "server.tls.ca_file") { server.tls.caFile = f }
                    } else if let b = reader.bool(v, "server.tls.insecure") {
                        server.tls.insecure = b
                    }
                }
            }
        }
    }
}

func currentDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buffer, buffer.count) != nil else { return "/" }
    let length = buffer.firstIndex(of: 0) ?? buffer.count
    return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func directoryOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

func resolve(_ path: String, base: String) -> String {
    path.hasPrefix("/") ? path : (base == "." ? path : base + "/" + path)
}

struct FileError: Error, CustomStringConvertible {
    var description: String
}

/// Reads a whole text file.
func readTextFile(_ path: String) throws -> String {
    String(decoding: try readLinkedFile(path), as: UTF8.self)
}
