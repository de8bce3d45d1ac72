import Agent
import Rules
import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Evaluate recorded events (JSON lines) against rules on a virtual clock; print the actions that would run.",
        discussion: """
            Each line of EVENTS is {"at": 12.5 or "2026-11-24T10:00:00Z", "namespace": "/", "event": "batery", "args": [20]}. \
            Output: one JSON object per planned action. Nothing is performed. \
            Exit status: 0 done, 1 rules did not load or a line was malformed (reported and skipped), 2 bad usage.
            """
    )

    @Option(name: .long, help: "A rule file or directory (repeatable).")
    var rules: [String] = []

    @Argument(help: "The recorded events, one JSON object a line (- for standard input).")
    var events: String

    @Flag(help: "Also print, for each rule that handled an event but did not fire, the reason.")
    var explain = false

    func validate() throws {
        if rules.isEmpty { throw ValidationError("give the rules with --rules PATH") }
        if events != "-" && access(events, F_OK) != 0 {
            throw ValidationError("no such events file: \(events)")
        }
    }

    func run() throws {
        let lines: AnySequence<String>
        if events == "-" {
            lines = AnySequence(AnyIterator { readLine(strippingNewline: true) })
        } else {
            guard case .success(let text) = RuleSet.readUTF8File(events) else {
                FileHandleStderr.write("error: cannot read \(events) as UTF-8 text\n")
                throw ExitCode(1)
            }
            lines = AnySequence(text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
        }
        let status = RuleCommands.replay(rulePaths: rules, environment: processEnvironment(),
                                         eventsName: events == "-" ? "<stdin>" : events, lines: lines, explain: explain,
                                         output: { print($0) }, errors: { FileHandleStderr.write($0 + "\n") })
        if status != 0 { throw ExitCode(status) }
    }
}
