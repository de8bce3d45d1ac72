import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
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
        var text = text
        text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }
}
