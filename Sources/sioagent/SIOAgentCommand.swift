import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@main
struct SIOAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sioagent",
        abstract: "A headless Socket.IO client agent: rules map incoming events to actions.",
        version: "0.1.0",
        subcommands: [
            // Each subcommand lives in its own file.
            RunCommand.self,
            CheckCommand.self,
            TestCommand.self,
            ReplayCommand.self,
            ListenCommand.self,
            EmitCommand.self,
        ]
    )

    /// Runs the tool. Bad usage exits 2 (argument-parser's own default is 64); a failure that
    /// a command reports with `ExitCode` keeps its code.
    static func main() async {
        let command: any ParsableCommand
        do {
            command = try parseAsRoot(EmitCommand.rewriteArguments(Array(CommandLine.arguments.dropFirst())))
        } catch {
            if exitCode(for: error) == .success {
                exit(withError: error)
            }
            let message = fullMessage(for: error)
            FileHandleStderr.write(message + "\n")
            Glibc.exit(2)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var syncCommand = command
                try syncCommand.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// Writes to standard error without Foundation.
enum FileHandleStderr {
    static func write(_ text: String) {
        writeAll(2, text)
    }
}
