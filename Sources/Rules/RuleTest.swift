import SIOCore

/// A `tests:` entry: events on a virtual clock and the actions they must produce.
public struct RuleTest: Sendable {
    public struct Event: Sendable {
        /// Virtual seconds.
        public var at: Double
        public var event: RuleEvent
        public var line: Int
    }

    /// One expected action: the fields it gives are compared, the others ignored.
    public struct Expectation: Sendable {
        /// `(key, value)` in the order written; `at` is in seconds, like `replayJSON()`.
        public var fields: [(String, JSONValue)]
        public var line: Int
        public var column: Int
    }

    public var name: String
    /// Where the test is written.
    public var file: String
    public var line: Int
    public var column: Int
    /// The rule file whose rules the test runs against (the test's own file, or `NAME.yaml` beside `NAME.test.yaml`).
    public var rulesFile: String
    public var events: [Event]
    public var expect: [Expectation]
    /// Runs the clock on to this time after the last event (to see `for` timers fire); default: the last event's time.
    public var until: Double?
    /// `clock: {start, tz}`: the Unix time the virtual clock starts at (times in the test are
    /// offsets from it) and the time zone of `at`/`cron` schedules.
    public var clockStart: Double = 0
    public var timeZone: String? = "UTC"
    /// `state: {NAME: value}`: the shared state the test starts with.
    public var initialState: [String: StateEntry] = [:]
}

/// The keys an expectation may give, which are those of `PlannedAction.replayJSON()`.
let expectationKeys = ["at", "rule", "phase", "action", "namespace", "event", "args", "ack", "argv", "env", "cwd",
                       "timeout", "script", "path", "message", "name", "value", "ttl"]
