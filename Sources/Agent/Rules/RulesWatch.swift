/// When to reload changed rule files: a value, fed what the watcher read and when, that says
/// which snapshot to load.
///
/// A change is loaded only once two readings at least ``settle`` apart agree. A file caught
/// mid-write (truncated by `>` and written 0.3 s later, an editor's backup-and-rename, a
/// configuration tool's temporary file renamed into place) reads differently on the next look,
/// so it is never what gets loaded; what the files hold once writing stops is.
///
/// Readings agree only when the files' stamps (inode, size, times) agree too: a file rewritten
/// between two looks with the same text as before was still being written, and an
/// intermediate state seen twice by chance (a loop of `: > f; cat new > f`) must not pass for a
/// settled one.
struct RulesWatch {
    /// How long a reading must stay the same before it is loaded.
    static let settle = 0.5

    /// What the running rules were loaded from (or last failed to load from).
    private(set) var loaded: RuleFilesSnapshot
    /// A reading that differs from `loaded`, and when it was first seen.
    private(set) var candidate: (snapshot: RuleFilesSnapshot, stamps: [String], since: Double)?

    init(loaded: RuleFilesSnapshot) {
        self.loaded = loaded
    }

    /// Whether the next look must read the files even when their stamps did not change.
    var waiting: Bool { candidate != nil }

    /// A reading at `time` (monotonic seconds), with the files' `stamps` taken just before it.
    /// Returns the snapshot to load now, if any.
    mutating func observe(_ snapshot: RuleFilesSnapshot, stamps: [String] = [], at time: Double) -> RuleFilesSnapshot? {
        if snapshot == loaded {
            candidate = nil
            return nil
        }
        if let c = candidate, c.snapshot == snapshot, c.stamps == stamps {
            guard time - c.since >= Self.settle else { return nil }
            candidate = nil
            loaded = snapshot
            return snapshot
        }
        candidate = (snapshot, stamps, time)
        return nil
    }

    /// The rules were loaded from `snapshot` some other way (SIGHUP).
    mutating func loaded(_ snapshot: RuleFilesSnapshot) {
        loaded = snapshot
        if candidate?.snapshot == snapshot { candidate = nil }
    }
}
