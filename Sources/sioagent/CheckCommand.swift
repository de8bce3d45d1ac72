import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate rule files: every error at once, as FILE:LINE:COL: error: MESSAGE.",
        discussion: "Exit status: 0 valid, 1 errors found, 2 bad usage."
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Argument(help: "Rule files or directories (*.yaml, *.yml).")
    var paths: [String]

    @Option(help: "Output format: text or json.")
    var format: Format = .text

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one rule file or directory") }
        for path in paths where access(path, F_OK) != 0 {
            throw ValidationError("no such file or directory: \(path)")
        }
    }

    func run() throws {
        let status = RuleCommands.check(paths: paths, environment: processEnvironment(),
                                        json: format == .json, output: { print($0) })
        if status != 0 { throw ExitCode(status) }
    }
}
