import Synchronization

/// Bounds on `matches`, whose engine (Swift's `Regex`) backtracks: a pattern such as `(a+)+$`
/// takes time exponential in the length of a string that almost matches. Strings from the server
/// are not trusted, so their length is bounded; patterns are the operator's, so `check` warns
/// about the shapes that backtrack badly.
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

    /// Whether `pattern` repeats a group that itself holds an unbounded repetition (`(a+)+`,
    /// `(\w*\s)*`, `(?:x+){2,}`): the shape whose backtracking is exponential. Alternations
    /// that overlap (`(a|a)*`) are not detected.
    static func hasNestedQuantifier(_ pattern: String) -> Bool {
        let s = Array(pattern.unicodeScalars)
        // For each open group: whether it holds an unbounded repetition.
        var groups: [Bool] = [false]
        var i = 0
        /// The unbounded quantifier at `j` (`*`, `+`, `{n,}`, `{n,m}` with m > 1), and where it ends.
        func quantifier(at j: Int) -> (unbounded: Bool, end: Int)? {
            guard j < s.count else { return nil }
            switch s[j] {
            case "*", "+": return (true, j + 1)
            case "?": return (false, j + 1)
            case "{":
                var k = j + 1
                var text = ""
                while k < s.count, s[k] != "}", text.unicodeScalars.count < 32 { text.unicodeScalars.append(s[k]); k += 1 }
                guard k < s.count, s[k] == "}" else { return nil }
                let parts = text.split(separator: ",", omittingEmptySubsequences: false)
                guard parts.count <= 2, let low = Int(parts[0].trimmingCharacters(" ")) else { return nil }
                if parts.count == 1 { return (low > 1, k + 1) }
                let high = parts[1].trimmingCharacters(" ")
                if high.isEmpty { return (true, k + 1) }
                guard let h = Int(high) else { return nil }
                return (h > 1, k + 1)
            default: return nil
            }
        }
        while i < s.count {
            switch s[i] {
            case "\\":
                i += 2
                if let q = quantifier(at: i), q.unbounded { groups[groups.count - 1] = true }
                continue
            case "[":
                // A class: to its closing bracket (a `]` first in it is literal).
                var k = i + 1
                if k < s.count, s[k] == "^" { k += 1 }
                if k < s.count, s[k] == "]" { k += 1 }
                while k < s.count, s[k] != "]" { k += s[k] == "\\" ? 2 : 1 }
                i = k + 1
            case "(":
                groups.append(false)
                i += 1
                continue
            case ")":
                let inner = groups.count > 1 ? groups.removeLast() : false
                i += 1
                if let q = quantifier(at: i), q.unbounded {
                    if inner { return true }
                    groups[groups.count - 1] = true
                } else if inner {
                    groups[groups.count - 1] = true
                }
                continue
            default:
                i += 1
            }
            if let q = quantifier(at: i), q.unbounded { groups[groups.count - 1] = true }
        }
        return false
    }
}

extension Substring {
    fileprivate func trimmingCharacters(_ c: Character) -> String {
        String(drop { $0 == c }.reversed().drop { $0 == c }.reversed())
    }
}
