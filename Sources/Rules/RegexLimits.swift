import Synchronization

/// Bounds on the texts `matches` reads. Matching takes time linear in the text (``RegexProgram``
/// does not backtrack), but strings from the server are not trusted, so their length is bounded too.
public enum RegexLimits {
    /// Longer strings (in UTF-8 bytes) are not matched: `x matches "…"` is false for them, and
    /// ``inputsTooLong`` counts them.
    public static let maxInputBytes = 4096

    private static let tooLong = Atomic<UInt64>(0)

    /// Strings refused for their length since the process started (all engines together).
    public static var inputsTooLong: UInt64 { tooLong.load(ordering: .relaxed) }

    static func countTooLong() {
        tooLong.add(1, ordering: .relaxed)
    }
}
