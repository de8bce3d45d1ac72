import Agent
import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

struct RunCommand: Command {
    static let spec = CommandSpec(
        name: "run",
        abstract: "Run the agent: connect, evaluate the rules on every event, act.",
        discussion: """
            Settings come from, in increasing precedence: defaults, the configuration file, \
            SIOAGENT_* environment variables, and these flags. SIGTERM/SIGINT shut down gracefully; \
            SIGHUP (or a changed rule file) reloads the rules.
            """,
        options: [
            .option("config", "The configuration file (YAML)."),
            .option("url", "The server URL (http, https, ws, wss). Overrides server.url."),
            .option("rules", "A rule file or directory. Overrides rules."),
            .option("namespace", "A namespace to join (repeatable). Overrides server.namespaces.", repeatable: true),
            .flag("dry-run", "Evaluate for real, execute nothing; print each planned action as a JSON line."),
            .option("log-format", "Log format: json or text."),
            .option("log-level", "Log level: trace, debug, info, notice, warning, error, critical."),
            .option("record", "Append every incoming event to this file (the format `sioagent replay` reads)."),
        ]
    )

    var config: String?
    var url: String?
    var rules: String?
    var namespace: [String]
    var dryRun: Bool
    var logFormat: String?
    var logLevel: String?
    var record: String?

    init(_ arguments: ParsedArguments) throws(ValidationError) {
        config = arguments.string("config")
        url = arguments.string("url")
        rules = arguments.string("rules")
        namespace = arguments.strings("namespace")
        dryRun = arguments.flag("dry-run")
        logFormat = arguments.string("log-format")
        logLevel = arguments.string("log-level")
        record = arguments.string("record")
    }

    func validate() throws(ValidationError) {
        if let logFormat, AgentConfiguration.LogFormat(rawValue: logFormat) == nil {
            throw ValidationError("--log-format must be json or text")
        }
        if let logLevel, !AgentConfiguration.logLevels.contains(logLevel) {
            throw ValidationError("--log-level must be one of \(AgentConfiguration.logLevels.joined(separator: ", "))")
        }
    }

    func run() async throws {
        let environment = processEnvironment()
        var flags = AgentOverrides()
        flags.url = url
        flags.rules = rules
        flags.namespaces = namespace
        flags.dryRun = dryRun ? true : nil
        flags.logFormat = logFormat.flatMap(AgentConfiguration.LogFormat.init(rawValue:))
        flags.logLevel = logLevel
        flags.recordPath = record

        let configuration: AgentConfiguration
        do {
            let fromEnvironment = try AgentOverrides.fromEnvironment(environment)
            configuration = try AgentConfiguration.load(
                path: config, overrides: fromEnvironment.overridden(by: flags), environment: environment)
        } catch {
            FileHandleStderr.write("\(error)\n")
            throw ExitCode(1)
        }

        let format: AgentLogHandler.Format = configuration.log.format == .json ? .json : .text
        let level = Logger.Level(rawValue: configuration.log.level) ?? .info
        LoggingSystem.bootstrap { label in AgentLogHandler(label: label, format: format, level: level) }
        let logger = Logger(label: "sioagent")

        let agent: Agent
        do {
            agent = try Agent(configuration: configuration, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }

        let signals = SignalHandlers()
        let backstop = ShutdownBackstop(after: configuration.shutdownTimeout, logger: logger)
        signals.on(SIGTERM) {
            backstop.arm()
            agent.shutdown()
        }
        signals.on(SIGINT) {
            backstop.arm()
            agent.shutdown()
        }
        signals.on(SIGHUP) { Task { await agent.reload() } }
        let namespace = configuration.server.namespaces.keys.sorted().first.map { $0.hasPrefix("/") ? $0 : "/" + $0 } ?? "/"
        let release = Task { await releaseStartupCode(after: agent.socket, namespace: namespace) }
        await agent.run()
        release.cancel()
        signals.cancel()
        if agent.connectionGaveUp { throw ExitCode(1) }
    }
}

/// The last resort of the shutdown deadline. The agent's own shutdown ends within
/// `shutdown.timeout` by itself; if it has not ended a second after that (the event loop stuck in
/// something that never returns), this ends the process from a Dispatch thread, with an error
/// line and exit status 1, so that a service manager never has to kill it.
final class ShutdownBackstop: Sendable {
    private let armed = Atomic<Bool>(false)
    private let after: Duration
    private let logger: Logger

    init(after timeout: Duration, logger: Logger) {
        self.after = max(timeout, .zero) + .seconds(1)
        self.logger = logger
    }

    func arm() {
        guard !armed.exchange(true, ordering: .relaxed) else { return }
        let (seconds, attoseconds) = after.components
        let nanoseconds = Int(clamping: seconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue &+ attoseconds / 1_000_000_000)
        let logger = self.logger
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(max(0, nanoseconds))) {
            logger.critical("shutdown did not end within shutdown.timeout; exiting without it (the event loop did not respond)")
            _exit(1)
        }
    }
}

/// Signal handling through Dispatch: the default action is turned off and the handler runs on a
/// Dispatch queue. The sources sit behind a lock, so the class is `Sendable` as checked.
final class SignalHandlers: Sendable {
    private let sources = Mutex<[any DispatchSourceSignal]>([])

    func on(_ signalNumber: Int32, _ handler: @escaping @Sendable () -> Void) {
        signal(signalNumber, SIG_IGN)
        sources.withLock { sources in
            // Made inside the lock: the source never leaves it.
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            sources.append(source)
        }
    }

    func cancel() {
        sources.withLock { sources in
            for s in sources { s.cancel() }
        }
    }
}

/// The process environment as a dictionary.
func processEnvironment() -> [String: String] {
    var out: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let text = String(cString: entry)
        if let eq = text.firstIndex(of: "=") {
            out[String(text[..<eq])] = String(text[text.index(after: eq)...])
        }
        p += 1
    }
    return out
}
