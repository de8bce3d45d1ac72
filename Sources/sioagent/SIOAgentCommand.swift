import Agent
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@main
enum SIOAgentCommand {
    /// `sioagent 0.1.0 (commit …, built …)`
    static var version: String { BuildInfo.line }
    static let abstract = "A headless Socket.IO client agent: rules map incoming events to actions."

    /// Each subcommand lives in its own file.
    static let commands: [any Command.Type] = [
        RunCommand.self,
        CheckCommand.self,
        TestCommand.self,
        ReplayCommand.self,
        ListenCommand.self,
        EmitCommand.self,
    ]

    static var help: String {
        var out = "OVERVIEW: \(abstract)\n\nUSAGE: sioagent <subcommand>\n\nOPTIONS:\n"
        out += "  --version               Show the version.\n"
        out += "  -h, --help              Show help information.\n\nSUBCOMMANDS:\n"
        for c in commands {
            out += "  " + c.spec.name + String(repeating: " ", count: max(2, 24 - c.spec.name.count)) + c.spec.abstract + "\n"
        }
        out += "\n  See 'sioagent help <subcommand>' for detailed help.\n"
        return out
    }

    /// Runs the tool. Bad usage exits 2 with the usage line; a failure that a command reports
    /// with `ExitCode` keeps its code; any other error is printed and exits 1.
    static func main() async {
        // One event loop: the agent and the client run on one loop, and an idle loop per core
        // would only cost a thread (NIO's default is one per core).
        NIOSingletons.groupLoopCountSuggestion = 1
        var arguments = Array(CommandLine.arguments.dropFirst())
        guard let first = arguments.first else {
            writeAll(1, help)
            exit(0)
        }
        switch first {
        case "-h", "--help":
            writeAll(1, help)
            exit(0)
        case "--version":
            printLine(version)
            exit(0)
        case "help":
            if arguments.count > 1, let c = commands.first(where: { $0.spec.name == arguments[1] }) {
                writeAll(1, c.spec.help)
            } else {
                writeAll(1, help)
            }
            exit(0)
        default:
            break
        }
        guard let type = commands.first(where: { $0.spec.name == first }) else {
            FileHandleStderr.write("Error: unknown subcommand '\(first)'\nUsage: sioagent <subcommand>\n  See 'sioagent --help' for more information.\n")
            exit(2)
        }
        arguments = EmitCommand.rewriteArguments(arguments)
        let spec = type.spec
        let command: any Command
        do {
            switch try ParsedArguments.parse(Array(arguments.dropFirst()), spec: spec) {
            case .help:
                writeAll(1, spec.help)
                exit(0)
            case .version:
                printLine(version)
                exit(0)
            case .parsed(let parsed):
                command = try type.init(parsed)
                try command.validate()
            }
        } catch {
            FileHandleStderr.write("Error: \(error.message)\nUsage: \(spec.usage)\n  See 'sioagent \(spec.name) --help' for more information.\n")
            exit(2)
        }
        do {
            try await command.run()
        } catch let code as ExitCode {
            exit(code.rawValue)
        } catch let error as ValidationError {
            FileHandleStderr.write("Error: \(error.message)\nUsage: \(spec.usage)\n")
            exit(2)
        } catch {
            FileHandleStderr.write("Error: \(error)\n")
            exit(1)
        }
        exit(0)
    }
}

/// Writes to standard error without Foundation.
enum FileHandleStderr {
    static func write(_ text: String) {
        writeAll(2, text)
    }
}
