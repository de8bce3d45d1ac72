#if canImport(Glibc)
import Glibc
#endif

struct TestCommand: Command {
    static let spec = CommandSpec(
        name: "test",
        abstract: "Run the tests: blocks of rule files (and NAME.test.yaml files) on a virtual clock.",
        discussion: "The last line is \"N passed, N failed\". Exit status: 0 all passed, 1 a failure (or no tests), 2 bad usage.",
        arguments: [ArgumentSpec(name: "paths", help: "Rule files, test files or directories.", variadic: true)]
    )

    var paths: [String]

    init(_ arguments: ParsedArguments) throws(ValidationError) {
        paths = arguments.arguments("paths")
    }

    func validate() throws(ValidationError) {
        if paths.isEmpty { throw ValidationError("give at least one rule file or directory") }
        for path in paths where access(path, F_OK) != 0 {
            throw ValidationError("no such file or directory: \(path)")
        }
    }

    func run() async throws {
        let status = RuleCommands.test(paths: paths, environment: processEnvironment(), output: { print($0) })
        if status != 0 { throw ExitCode(status) }
    }
}
