import OrderedCollections
import SIOCore

/// An event as rules see it: a Socket.IO event, or one of the agent's lifecycle events
/// (`connect`, `disconnect`, `reconnect`, `connect_error`, with `namespace` the namespace concerned
/// and `args` e.g. `[reason]`).
public struct RuleEvent: Sendable, Equatable {
    public var namespace: String
    public var name: String
    /// The arguments as received: a rule that reads `payload.level` decodes that one value
    /// (``JSONArguments``), not the whole payload.
    public var arguments: JSONArguments
    /// True when the sender asked for an acknowledgement, so a `reply` action can answer it.
    public var canReply: Bool

    /// Every argument, decoded.
    public var args: [JSONValue] {
        get { arguments.values }
        set { arguments = JSONArguments(newValue) }
    }

    public init(namespace: String = "/", name: String, args: [JSONValue], canReply: Bool = false) {
        self.init(namespace: namespace, name: name, arguments: JSONArguments(args), canReply: canReply)
    }

    public init(namespace: String = "/", name: String, arguments: JSONArguments, canReply: Bool = false) {
        self.namespace = namespace
        self.name = name
        self.arguments = arguments
        self.canReply = canReply
    }

    /// The names of the agent's lifecycle events. A `"*"` trigger does not match them: a rule names them.
    public static let lifecycleNames: Set<String> = ["connect", "disconnect", "reconnect", "connect_error"]

    /// `{"event":…, "namespace":…, "args":[…]}`: what a `shell` action gets on standard input.
    public func jsonValue() -> JSONValue {
        ["event": .string(name), "namespace": .string(namespace), "args": .array(args)]
    }
}

/// One action a rule decided on, rendered and ready to be performed by the agent (or printed by
/// `sioagent replay` and dry runs). Planning performs nothing.
public struct PlannedAction: Sendable, Equatable {
    public enum Phase: String, Sendable {
        case then
        case onClear = "on_clear"
    }

    public enum LogTarget: Sendable, Equatable {
        case stdout
        case stderr
        /// A file path, as written in the rule (relative paths are the agent's business).
        case file(String)

        public var name: String {
            switch self {
            case .stdout: return "stdout"
            case .stderr: return "stderr"
            case .file(let path): return path
            }
        }
    }

    public enum Kind: Sendable, Equatable {
        case emit(namespace: String, event: String, args: [JSONValue], ack: Duration?)
        case run(argv: [String], env: [String: String], cwd: String?, timeout: Duration?)
        /// `env` holds the rule's `env:` plus `SIOAGENT_EVENT`, `SIOAGENT_NAMESPACE`, `SIOAGENT_RULE`,
        /// `SIOAGENT_PAYLOAD` (JSON) and `SIOAGENT_ARGS` (JSON); `stdin` is the event as JSON.
        case shell(script: String, env: [String: String], stdin: String, cwd: String?, timeout: Duration?)
        case log(target: LogTarget, message: String)
        /// Answers the triggering event's acknowledgement request.
        case reply(args: [JSONValue])
        /// `set: NAME` with the value it got and its `ttl`: already applied to the shared state
        /// by the engine; reported so tests, replays and dry runs show it.
        case set(name: String, value: JSONValue, ttl: Duration?)
        /// `unset: NAME`: already applied by the engine.
        case unset(name: String)

        /// Whether performing it is the engine's own business (`set`, `unset`): executors have
        /// nothing to do for it.
        public var isStateChange: Bool {
            switch self {
            case .set, .unset: return true
            default: return false
            }
        }

        /// `emit`, `run`, `shell`, `log`, `reply`, `set` or `unset`.
        public var name: String {
            switch self {
            case .emit: return "emit"
            case .run: return "run"
            case .shell: return "shell"
            case .log: return "log"
            case .reply: return "reply"
            case .set: return "set"
            case .unset: return "unset"
            }
        }
    }

    /// Clock seconds (virtual in tests and replays) at which the action was decided.
    public var at: Double
    public var rule: String
    public var phase: Phase
    public var kind: Kind
    /// The event that caused it; nil for `every:` timers. For a `for` or `absent` timer, the
    /// last event seen as its key kept it: its name, namespace and ack request, and of its args
    /// the parts the rule's `then` reads (`EventProjection`), all of them for `shell` or a `log`
    /// without `message`.
    public var trigger: RuleEvent?

    public init(at: Double, rule: String, phase: Phase, kind: Kind, trigger: RuleEvent?) {
        self.at = at
        self.rule = rule
        self.phase = phase
        self.kind = kind
        self.trigger = trigger
    }

    /// The JSON object `sioagent replay` prints for this action:
    /// `{"at":…, "rule":…, "phase":"then", "action":"emit", "namespace":"/", "event":"alert", "args":[…]}`;
    /// `argv` for run; `script`, `env` for shell; `path` and `message` for log; `args` for reply;
    /// `name`, `value` and `ttl` for set; `name` for unset.
    public func replayJSON() -> JSONValue {
        var o: [(String, JSONValue)] = [
            ("at", .number(at)), ("rule", .string(rule)), ("phase", .string(phase.rawValue)),
            ("action", .string(kind.name)),
        ]
        func env(_ e: [String: String]) -> JSONValue {
            var d = OrderedJSON()
            for k in e.keys.sorted() { d.append((k, .string(e[k]!))) }
            return .object(.init(uniqueKeysWithValues: d))
        }
        switch kind {
        case .emit(let namespace, let event, let args, let ack):
            o += [("namespace", .string(namespace)), ("event", .string(event)), ("args", .array(args))]
            if let ack { o.append(("ack", .number(ack.secondsValue))) }
        case .run(let argv, let e, let cwd, let timeout):
            o.append(("argv", .array(argv.map { .string($0) })))
            if !e.isEmpty { o.append(("env", env(e))) }
            if let cwd { o.append(("cwd", .string(cwd))) }
            if let timeout { o.append(("timeout", .number(timeout.secondsValue))) }
        case .shell(let script, let e, _, let cwd, let timeout):
            o += [("script", .string(script)), ("env", env(e))]
            if let cwd { o.append(("cwd", .string(cwd))) }
            if let timeout { o.append(("timeout", .number(timeout.secondsValue))) }
        case .log(let target, let message):
            o += [("path", .string(target.name)), ("message", .string(message))]
        case .reply(let args):
            o.append(("args", .array(args)))
        case .set(let name, let value, let ttl):
            o += [("name", .string(name)), ("value", value)]
            if let ttl { o.append(("ttl", .number(ttl.secondsValue))) }
        case .unset(let name):
            o.append(("name", .string(name)))
        }
        return .object(.init(uniqueKeysWithValues: o))
    }
}

typealias OrderedJSON = [(String, JSONValue)]
