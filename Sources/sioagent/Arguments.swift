// The command line: a small parser of our own. swift-argument-parser pulled FoundationEssentials
// into the binary (about 4 MB of the stripped binary and ~1 MB of resident memory, see
// docs/benchmarks.md); the agent needs subcommands, long options, flags, repeatable options,
// positional arguments, help and usage errors, which this file gives.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Bad usage: reported with the command's usage line, exit status 2.
struct ValidationError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// Ends the process with this status (after the command printed what it had to say).
struct ExitCode: Error, Equatable {
    var rawValue: Int32
    init(_ rawValue: Int32) { self.rawValue = rawValue }
    static let success = ExitCode(0)
    static let failure = ExitCode(1)
    static let validationFailure = ExitCode(2)
}

/// A value given on the command line.
protocol ArgumentValue {
    init?(argument: String)
}

extension ArgumentValue where Self: RawRepresentable, Self.RawValue == String {
    init?(argument: String) { self.init(rawValue: argument) }
}

extension Int: ArgumentValue {
    init?(argument: String) { self.init(argument, radix: 10) }
}

/// A long option (`--name VALUE`, `--name=VALUE`) or a flag (`--name`).
struct OptionSpec: Sendable {
    var name: String
    /// nil for a flag.
    var valueName: String?
    var help: String
    var repeatable = false
    /// Shown as "(default: …)" in the help.
    var defaultText: String?

    static func option(_ name: String, value: String? = nil, _ help: String, repeatable: Bool = false, default defaultText: String? = nil) -> OptionSpec {
        OptionSpec(name: name, valueName: value ?? name, help: help, repeatable: repeatable, defaultText: defaultText)
    }

    static func flag(_ name: String, _ help: String) -> OptionSpec {
        OptionSpec(name: name, valueName: nil, help: help)
    }

    var usage: String {
        let base = valueName.map { "--\(name) <\($0)>" } ?? "--\(name)"
        return repeatable ? "[\(base) ...]" : "[\(base)]"
    }

    var label: String { valueName.map { "--\(name) <\($0)>" } ?? "--\(name)" }
}

/// A positional argument.
struct ArgumentSpec: Sendable {
    var name: String
    var help: String
    var optional = false
    /// Takes every remaining positional argument.
    var variadic = false

    var usage: String {
        let base = "<\(name)>" + (variadic ? " ..." : "")
        return optional ? "[\(base)]" : base
    }
}

/// What a subcommand takes, and its help.
struct CommandSpec: Sendable {
    var name: String
    var abstract: String
    var discussion: String = ""
    var arguments: [ArgumentSpec] = []
    var options: [OptionSpec] = []

    var usage: String {
        var parts = ["sioagent", name]
        parts += arguments.filter { !$0.optional && !$0.variadic }.map(\.usage)
        parts += options.map(\.usage)
        parts += arguments.filter { $0.optional || $0.variadic }.map(\.usage)
        return parts.joined(separator: " ")
    }

    var help: String {
        var out = "OVERVIEW: \(abstract)\n\n"
        if !discussion.isEmpty { out += wrap(discussion, indent: 0) + "\n\n" }
        out += "USAGE: \(usage)\n\n"
        if !arguments.isEmpty {
            out += "ARGUMENTS:\n"
            for a in arguments { out += helpRow("<\(a.name)>", a.help) }
            out += "\n"
        }
        out += "OPTIONS:\n"
        for o in options {
            out += helpRow(o.label, o.help + (o.defaultText.map { " (default: \($0))" } ?? ""))
        }
        out += helpRow("--version", "Show the version.")
        out += helpRow("-h, --help", "Show help information.")
        return out
    }
}

/// Parsed command-line values, read by name.
struct ParsedArguments {
    private(set) var values: [String: [String]] = [:]
    private(set) var flags: Set<String> = []
    private(set) var positionals: [String: [String]] = [:]

    /// What the parse ended with instead of values.
    enum Outcome {
        case parsed(ParsedArguments)
        case help
        case version
    }

    static func parse(_ arguments: [String], spec: CommandSpec) throws(ValidationError) -> Outcome {
        var parsed = ParsedArguments()
        var loose: [String] = []
        var onlyPositionals = false
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            i += 1
            if onlyPositionals || a == "-" || !a.hasPrefix("-") || a.dropFirst().first?.isNumber == true {
                loose.append(a)
                continue
            }
            if a == "--" {
                onlyPositionals = true
                continue
            }
            if a == "-h" || a == "--help" { return .help }
            if a == "--version" { return .version }
            guard a.hasPrefix("--") else { throw ValidationError("unknown option '\(a)'") }
            var name = String(a.dropFirst(2))
            var inline: String?
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let option = spec.options.first(where: { $0.name == name }) else {
                throw ValidationError("unknown option '--\(name)'")
            }
            if option.valueName == nil {
                if inline != nil { throw ValidationError("'--\(name)' takes no value") }
                parsed.flags.insert(name)
                continue
            }
            let value: String
            if let inline {
                value = inline
            } else if i < arguments.count, !arguments[i].hasPrefix("--") {
                value = arguments[i]
                i += 1
            } else {
                throw ValidationError("missing value for '\(option.label)'")
            }
            if !option.repeatable, parsed.values[name] != nil {
                throw ValidationError("'--\(name)' given more than once")
            }
            parsed.values[name, default: []].append(value)
        }
        // Positionals in order: required ones first take one value each, an optional one takes
        // one if left, a variadic one takes the rest.
        var rest = loose[...]
        for argument in spec.arguments {
            if argument.variadic {
                parsed.positionals[argument.name] = Array(rest)
                rest = []
            } else if let first = rest.first {
                parsed.positionals[argument.name] = [first]
                rest = rest.dropFirst()
            } else if !argument.optional {
                throw ValidationError("missing expected argument '<\(argument.name)>'")
            }
        }
        if let extra = rest.first {
            throw ValidationError("unexpected argument '\(extra)'")
        }
        return .parsed(parsed)
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }

    func string(_ name: String) -> String? { values[name]?.last }

    func strings(_ name: String) -> [String] { values[name] ?? [] }

    func value<T: ArgumentValue>(_ name: String, as type: T.Type = T.self, valueName: String? = nil, choices: String? = nil) throws(ValidationError) -> T? {
        guard let text = values[name]?.last else { return nil }
        guard let value = T(argument: text) else {
            throw ValidationError("the value '\(text)' is invalid for '--\(name) <\(valueName ?? name)>'" + (choices.map { "; use \($0)" } ?? ""))
        }
        return value
    }

    func argument(_ name: String) -> String? { positionals[name]?.first }

    func arguments(_ name: String) -> [String] { positionals[name] ?? [] }
}

/// A subcommand: parsed from its spec, validated, run.
protocol Command: Sendable {
    static var spec: CommandSpec { get }
    init(_ arguments: ParsedArguments) throws(ValidationError)
    func validate() throws(ValidationError)
    func run() async throws
}

extension Command {
    func validate() throws(ValidationError) {}
}

/// "a, b or c" from the raw values of a string enum.
func choiceList<T: CaseIterable & RawRepresentable>(_ type: T.Type) -> String where T.RawValue == String {
    let names = T.allCases.map(\.rawValue)
    guard names.count > 1 else { return names.joined() }
    return names.dropLast().joined(separator: ", ") + " or " + names.last!
}

private func helpRow(_ label: String, _ text: String) -> String {
    let column = 26
    let lead = "  " + label
    let body = wrap(text, indent: column)
    if lead.count + 2 <= column {
        return lead + String(repeating: " ", count: column - lead.count) + body.drop { $0 == " " } + "\n"
    }
    return lead + "\n" + body + "\n"
}

/// Wraps `text` at 100 columns, every line indented by `indent` spaces.
private func wrap(_ text: String, indent: Int) -> String {
    let width = 100
    var lines: [String] = []
    for paragraph in text.split(separator: "\n", omittingEmptySubsequences: false) {
        var line = ""
        for word in paragraph.split(separator: " ") {
            if !line.isEmpty, indent + line.count + 1 + word.count > width {
                lines.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        lines.append(line)
    }
    let pad = String(repeating: " ", count: indent)
    return lines.map { pad + $0 }.joined(separator: "\n")
}
