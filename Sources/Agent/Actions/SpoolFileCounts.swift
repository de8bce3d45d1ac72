/// Which spool files still hold an undelivered alert: a value, no I/O. The outbox asks it
/// whether a file may go, and deletes the file when the answer is yes.
///
/// A file holds the alerts of one writer batch. It may go only once every alert written to it
/// has been reported by the writer *and* none of them still waits. Counting survivors as their
/// reports arrive is not enough: an alert dropped (spool full) while its batch was written
/// reports before the survivors after it in the same file, and would release the file under
/// them.
struct SpoolFileCounts {
    private struct File {
        /// Alerts the writer reported stored in the file so far.
        var reported = 0
        /// How many alerts the file holds, once the writer said.
        var holds = 0
        /// Reported alerts that still wait for delivery.
        var waiting = 0

        var isDone: Bool { reported >= holds && waiting <= 0 }
    }

    private var files: [String: File] = [:]

    /// Files with an alert that may still wait.
    var count: Int { files.count }

    /// `file` was found at start with `alerts` waiting in it.
    mutating func loaded(_ file: String, alerts: Int) {
        files[file] = File(reported: alerts, holds: alerts, waiting: alerts)
    }

    /// The writer stored one alert in `file` (which holds `holds` of them); `waiting` says
    /// whether it is still wanted (false: dropped or delivered while it was written).
    /// - Returns: true when the file may be deleted now.
    mutating func stored(in file: String, holds: Int, waiting: Bool) -> Bool {
        var f = files[file] ?? File()
        f.reported += 1
        f.holds = max(f.holds, holds)
        if waiting { f.waiting += 1 }
        return settle(file, f)
    }

    /// An alert stored in `file` left the queue (delivered, failed, dropped).
    /// - Returns: true when the file may be deleted now.
    mutating func released(from file: String) -> Bool {
        guard var f = files[file] else { return false }
        f.waiting -= 1
        return settle(file, f)
    }

    private mutating func settle(_ name: String, _ f: File) -> Bool {
        if f.isDone {
            files[name] = nil
            return true
        }
        files[name] = f
        return false
    }
}
