import Logging

/// The inputs and actions of ``OutboxState``.

package enum OutboxInput: Sendable {
    /// A rule planned an alert (`plannedAt`: wall seconds, for the latency metric).
    case fire(SpoolItem, plannedAt: Double?)
    /// The spool write of `sequence` ended: stored in `file` with `inFile` alerts written
    /// together, or refused with `error`.
    case written(sequence: UInt64, file: String, inFile: Int, error: DiskError?)
    case connected(String)
    case disconnected(String)
    /// The server refused a namespace with `message`.
    case refused(namespace: String, message: String)
    /// A send ended (written; with `ack`: acknowledged, or not in time).
    case sendCompleted(OutboxSend, SendOutcome)
    /// The payloads of a spool file, read back (``OutboxAction/readPayloads(file:)``), or why not.
    case payloadsRead(file: String, Result<[UInt64: SpoolItem], DiskError>)
    case retryTimer
    case persistRetryTimer
    /// Shutdown: everything not on disk (in the client's hands, in memory) is written.
    case persistInFlight
}

package enum OutboxSend: Hashable, Sendable {
    case spooled(UInt64)
    case direct(UInt64)
}

package enum SendOutcome: Sendable {
    case delivered
    /// `permanent`: the server can never accept it (a reserved name, an unknown namespace).
    case failed(String, permanent: Bool)
}

package enum OutboxAction: Sendable {
    /// Write to the spool directory; answer with ``OutboxInput/written(sequence:file:inFile:error:)``.
    case store(SpoolItem)
    /// Write a copy to `failed/`; when its payload stayed on disk, the writer copies it from
    /// spool file `payloadIn` (`item` without its args is the fallback).
    case storeFailed(SpoolItem, reason: String, payloadIn: String?)
    /// `failed/` is full: the alert is only logged.
    case failedDirectoryFull(SpoolItem, reason: String)
    /// Remove a spool file (a name in the spool directory).
    case remove(file: String)
    /// Read the payloads of a spool file back; answer with ``OutboxInput/payloadsRead(file:_:)``.
    case readPayloads(file: String)
    /// Move an unreadable spool file to `corrupt/`.
    case quarantine(file: String)
    /// Hand to the client (with `ack`: wait for it); answer with ``OutboxInput/sendCompleted(_:_:)``.
    case send(OutboxSend, SpoolItem)
    case scheduleRetry(Duration)
    case cancelRetry
    case schedulePersistRetry(Duration)
    /// Delivered (for the metrics); `direct`: handed to the client without the spool (the shell
    /// logs it at debug level, building the line only when that level is on).
    case delivered(SpoolItem, plannedAt: Double?, direct: Bool = false)
    /// Dropped by a budget (already warned about): `sioagent_dropped_total{budget}`.
    case discarded([SpoolItem], budget: AgentMetrics.Budget)
    /// Lost: its spool file became unreadable (already logged).
    case lost([SpoolItem], reason: String)
    case metric(AgentMetrics.Outcome)
    case log(Logger.Level, String, Logger.Metadata)
    /// A warning that a stuck or full disk repeats for every alert: the shell logs at most one of
    /// each kind every 10 s, with the `count` since the last one.
    case warning(OutboxWarning, count: Int, Logger.Metadata)
}

/// The warnings of ``OutboxAction/warning(_:count:_:)``.
package enum OutboxWarning: Int, CaseIterable, Sendable {
    /// The disk is full (`ENOSPC`, `EDQUOT`): the alert is kept in memory.
    case diskFull
    /// Another write error, or the spool's writer refused it (its queue full): kept in memory.
    case writeRefused
    /// Alerts kept in memory beyond their budget: the oldest were dropped.
    case memoryDropped
    /// The spool beyond `spool.max_items` or `spool.max_bytes`: the oldest were dropped.
    case spoolFull

    package var message: String {
        switch self {
        case .diskFull: "disk full; alert kept in memory until the disk takes it"
        case .writeRefused: "cannot write the alert to the spool; kept in memory until the disk takes it"
        case .memoryDropped: "alerts kept in memory are too many; dropped the oldest"
        case .spoolFull: "spool full; dropped the oldest alerts"
        }
    }

    /// The metadata key of the count.
    package var countKey: String {
        switch self {
        case .diskFull, .writeRefused: "spool.refused"
        case .memoryDropped, .spoolFull: "spool.dropped"
        }
    }
}

/// Faults put back on purpose in ``OutboxState``, for the simulation to catch.
package enum OutboxMutation: String, Sendable, CaseIterable {
    /// Each write report of a batch file counts one alert, so an alert dropped while the batch
    /// was being written releases the file before the others are counted.
    case batchReleasedEarly = "batch-release"
    /// An `ack:` alert is forgotten once written.
    case ackAlertsDroppedOnceWritten = "drop-ack-alerts"
}
