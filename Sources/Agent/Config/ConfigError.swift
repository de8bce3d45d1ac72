import Rules

/// Every problem found in the agent's configuration: positioned diagnostics, printed like the
/// rule files' (`FILE:LINE:COL: error: MESSAGE`, the source line and a caret).
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [Diagnostic]

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
