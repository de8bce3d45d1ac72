import Agent
import Rules

#if canImport(Glibc)
import Glibc
#endif

struct ReplayCommand: Command {
    static let spec = CommandSpec(
        name: "replay",
        abstract: "Evaluate recorded events (JSON lines) against rules on a virtual clock; print the actions that would run.",
        discussion: """
            Each line of EVENTS is {"at": 12.5 or "2026-11-24T10:00:00Z", "namespace": "/", "event": "batery", "args": [20]}. \
            Output: one JSON object per planned action. Nothing is performed. \
            Exit status: 0 done, 1 rules did not load or a line was malformed (reported and skipped), 2 bad usage.
            """,
        arguments: [ArgumentSpec(name: "events", help: "The recorded events, one JSON object a line (- for standard input).")],
        options: [
            .option("rules", value: "path", "A rule file or directory (repeatable).", repeatable: true),
            .flag("explain", "Also print, for each rule that handled an event but did not fire, the reason."),
            .option("tz", value: "zone", "The time zone of at: and cron: schedules, like Europe/Lisbon (default: the system's, as in run)."),
        ]
    )

    var rules: [String]
    var events: String
    var explain: Bool
    var timeZone: String?

    init(_ arguments: ParsedArguments) throws(ValidationError) {
        rules = arguments.strings("rules")
        timeZone = arguments.string("tz")
        events = arguments.argument("events") ?? "-"
        explain = arguments.flag("explain")
    }

    func validate() throws(ValidationError) {
        if rules.isEmpty { throw ValidationError("give the rules with --rules PATH") }
        if let timeZone, !isKnownTimeZone(timeZone) {
            throw ValidationError("--tz: \"\(timeZone)\" is not a time zone name like Europe/Lisbon or UTC")
        }
        if events != "-" && access(events, F_OK) != 0 {
            throw ValidationError("no such events file: \(events)")
        }
    }

    func run() async throws {
        let lines: AnySequence<String>
        if events == "-" {
            lines = AnySequence(AnyIterator { readLine(strippingNewline: true) })
        } else {
            guard case .success(let text) = RuleSet.readUTF8File(events, limit: Int.max) else {
                FileHandleStderr.write("error: cannot read \(events) as UTF-8 text\n")
                throw ExitCode(1)
            }
            lines = AnySequence(text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
        }
        let status = RuleCommands.replay(rulePaths: rules, environment: processEnvironment(),
                                         eventsName: events == "-" ? "<stdin>" : events, lines: lines, explain: explain, timeZone: timeZone,
                                         output: { print($0) }, errors: { FileHandleStderr.write($0 + "\n") })
        if status != 0 { throw ExitCode(status) }
    }
}
