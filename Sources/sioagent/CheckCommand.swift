#if canImport(Glibc)
import Glibc
#endif

struct CheckCommand: Command {
    static let spec = CommandSpec(
        name: "check",
        abstract: "Validate rule files: every error at once, as FILE:LINE:COL: error: MESSAGE.",
        discussion: "Exit status: 0 valid, 1 errors found, 2 bad usage.",
        arguments: [ArgumentSpec(name: "paths", help: "Rule files or directories (*.yaml, *.yml).", variadic: true)],
        options: [.option("format", "Output format: text or json.", default: "text")]
    )

    enum Format: String, ArgumentValue, CaseIterable {
        case text, json
    }

    var paths: [String]
    var format: Format

    init(_ arguments: ParsedArguments) throws(ValidationError) {
        paths = arguments.arguments("paths")
        format = try arguments.value("format", choices: choiceList(Format.self)) ?? .text
    }

    func validate() throws(ValidationError) {
        if paths.isEmpty { throw ValidationError("give at least one rule file or directory") }
        for path in paths where access(path, F_OK) != 0 {
            throw ValidationError("no such file or directory: \(path)")
        }
    }

    func run() async throws {
        let status = RuleCommands.check(paths: paths, environment: processEnvironment(),
                                        json: format == .json, output: { print($0) })
        if status != 0 { throw ExitCode(status) }
    }
}
