import SIOCore
import SIOYAML

private let actionOptions: [String: [String]] = [
    "emit": ["namespace", "args", "data", "ack"],
    "run": ["timeout", "env", "cwd"],
    "shell": ["timeout", "env", "cwd"],
    "log": ["message"],
    "reply": ["args", "data"],
    "set": ["value", "ttl"],
    "unset": [],
]

extension FileCompiler {
    mutating func compileActions(_ n: YAMLNode, _ what: String, isTimer: Bool, environmentRead: inout Set<String>) -> [ActionTemplate] {
        guard case .sequence(let seq) = n else {
            error(n, "\(what): must be a list of actions (each starting with \"- emit:\", \"- run:\", \"- shell:\", \"- log:\" or \"- reply:\"), not \(describe(n))")
            return []
        }
        return seq.compactMap { compileAction($0, isTimer: isTimer, environmentRead: &environmentRead) }
    }

    mutating func compileAction(_ n: YAMLNode, isTimer: Bool, environmentRead: inout Set<String>) -> ActionTemplate? {
        guard case .mapping(let raw) = n else {
            error(n, "an action must be a mapping such as \"emit: alert\", not \(describe(n))")
            return nil
        }
        let kinds = raw.compactMap { $0.key.scalar?.string }.filter { actionKinds.contains($0) }
        guard let kind = kinds.first else {
            let firstKey = raw.first?.key.scalar?.string ?? ""
            error(raw.first?.key ?? n, "unknown action \"\(firstKey)\"" + suggestion(firstKey, actionKinds) + " (actions: emit, run, shell, log, reply, set, unset)")
            return nil
        }
        if kinds.count > 1 {
            error(n, "one action per list item: found \(kinds.joined(separator: " and ")); start each with \"- \"")
            return nil
        }
        guard let m = mapping(n, "a \(kind) action", known: [kind] + (actionOptions[kind] ?? [])) else { return nil }
        let value = m[kind]!.value
        func envMap(_ environmentRead: inout Set<String>) -> [(String, ValueTemplate)]? {
            guard let e = m["env"] else { return [] }
            guard case .mapping(let em) = e.value else {
                error(e.value, "env: must be a mapping of variable names to values, not \(describe(e.value))")
                return nil
            }
            var out: [(String, ValueTemplate)] = []
            for (k, v) in em {
                guard case .scalar(let ks) = k, isIdentifier(ks.string) else {
                    error(k, "an environment variable name is letters, digits and _, not \(describe(k))")
                    return nil
                }
                guard case .scalar = v else {
                    error(v, "env values are text, not \(describe(v))")
                    return nil
                }
                guard let t = template(v, environmentRead: &environmentRead) else { return nil }
                out.append((ks.string, t))
            }
            return out
        }
        let timeout = m["timeout"].flatMap { duration($0.value, "timeout") }
        let cwd = m["cwd"].flatMap { text($0.value, "cwd") }
        switch kind {
        case "emit":
            guard case .scalar = value else { error(value, "emit: takes the event name, not \(describe(value))"); return nil }
            guard let event = template(value, environmentRead: &environmentRead) else { return nil }
            var namespace: ValueTemplate?
            if let e = m["namespace"] {
                if let ns = text(e.value, "namespace"), !ns.hasPrefix("/"), !ns.hasPrefix("{{") {
                    error(e.value, "a namespace starts with \"/\", not \"\(ns)\"")
                }
                namespace = template(e.value, environmentRead: &environmentRead)
            }
            guard let args = arguments(m, kind, environmentRead: &environmentRead) else { return nil }
            let ack = m["ack"].flatMap { duration($0.value, "ack") }.map(durationFromSeconds)
            return .emit(namespace: namespace, event: event, args: args, ack: ack)
        case "run":
            guard case .sequence(let seq) = value, !seq.isEmpty else {
                error(value, "run: takes the command as a list, [program, arg, …] (no shell); for a shell script use shell:")
                return nil
            }
            var argv: [ValueTemplate] = []
            for (i, item) in seq.enumerated() {
                guard case .scalar(let s) = item else { error(item, "each element of run: is text, not \(describe(item))"); return nil }
                guard let t = textTemplate(s.string, in: item, environmentRead: &environmentRead) else { return nil }
                if i == 0, !t.isConstant {
                    error(item, "the program to run (the first element) cannot come from a template")
                    return nil
                }
                argv.append(t)
            }
            guard let env = envMap(&environmentRead) else { return nil }
            return .run(argv: argv, env: env, cwd: cwd, timeout: timeout.map(durationFromSeconds))
        case "shell":
            guard case .scalar(let s) = value else { error(value, "shell: takes the script as text, not \(describe(value))"); return nil }
            let scalars = Array(s.string.unicodeScalars)
            for i in 0..<max(0, scalars.count - 1) where scalars[i] == "{" && scalars[i + 1] == "{" {
                error(contentPosition(value, offset: i), "templates are not allowed in shell: scripts (event data would run as code); read $SIOAGENT_PAYLOAD, $SIOAGENT_ARGS or standard input, or use run: with a list")
                return nil
            }
            guard let env = envMap(&environmentRead) else { return nil }
            return .shell(script: s.string, env: env, cwd: cwd, timeout: timeout.map(durationFromSeconds))
        case "log":
            guard let target = text(value, "log") else { return nil }
            let t: PlannedAction.LogTarget
            switch target {
            case "stdout": t = .stdout
            case "stderr": t = .stderr
            case "": error(value, "log: takes stdout, stderr or a file path"); return nil
            default:
                if target.contains(text: "{{") { error(value, "a log path cannot be a template"); return nil }
                t = .file(target)
            }
            var message: ValueTemplate?
            if let e = m["message"] {
                guard case .scalar = e.value else { error(e.value, "message: is text, not \(describe(e.value))"); return nil }
                guard case .scalar(let s) = e.value, let mt = textTemplate(s.string, in: e.value, environmentRead: &environmentRead) else { return nil }
                message = mt
            }
            return .log(target: t, message: message)
        case "set", "unset":
            return compileStateAction(kind, value, m, environmentRead: &environmentRead)
        case "reply":
            if isTimer { error(m[kind]!.keyNode, "reply: answers an event's acknowledgement; an every: timer has none"); return nil }
            if isNull(value) {
                guard let args = arguments(m, kind, environmentRead: &environmentRead) else { return nil }
                return .reply(args: args)
            }
            if m["args"] != nil || m["data"] != nil {
                error(value, "give the reply either as reply: [values] or with args:/data:, not both")
                return nil
            }
            if case .sequence(let seq) = value {
                var args: [ValueTemplate] = []
                for item in seq { guard let t = template(item, environmentRead: &environmentRead) else { return nil }; args.append(t) }
                return .reply(args: args)
            }
            guard let t = template(value, environmentRead: &environmentRead) else { return nil }
            return .reply(args: [t])
        default:
            return nil
        }
    }

    /// `args:` (a list) or `data:` (one value) of emit and reply.
    mutating func arguments(_ m: [String: Entry], _ kind: String, environmentRead: inout Set<String>) -> [ValueTemplate]? {
        if m["args"] != nil, let d = m["data"] {
            error(d.keyNode, "\(kind): takes args: (a list) or data: (one value), not both")
            return nil
        }
        if let a = m["args"] {
            guard case .sequence(let seq) = a.value else {
                error(a.value, "args: must be a list, not \(describe(a.value)) (for one value use data:)")
                return nil
            }
            var out: [ValueTemplate] = []
            for item in seq {
                guard let t = template(item, environmentRead: &environmentRead) else { return nil }
                out.append(t)
            }
            return out
        }
        if let d = m["data"] {
            guard let t = template(d.value, environmentRead: &environmentRead) else { return nil }
            return [t]
        }
        return []
    }
}
