import SIOCore

/// One problem found in a rule file, with the position it points at.
///
/// `description` prints it the way compilers do, so editors and terminals can jump to it:
/// ```
/// rules/battery.yaml:7:21: error: unknown variable "lwo"; did you mean "low"?
///     when: payload < vars.lwo
///                     ^
/// ```
public struct Diagnostic: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Severity: String, Sendable {
        case error
        case warning
    }

    /// The file as it was named when loading.
    public var file: String
    /// 1-based line; 0 when the problem concerns the whole file (unreadable, empty).
    public var line: Int
    /// 1-based column, counted in Unicode scalars; 0 with `line` 0.
    public var column: Int
    public var severity: Severity
    public var message: String
    /// The text of the line the diagnostic points at, when known.
    public var sourceLine: String?

    public init(file: String, line: Int, column: Int, severity: Severity = .error, message: String, sourceLine: String? = nil) {
        self.file = file
        self.line = line
        self.column = column
        self.severity = severity
        self.message = message
        self.sourceLine = sourceLine
    }

    /// `FILE:LINE:COL: error: MESSAGE` then the source line and a caret under the column.
    public var description: String {
        guard line > 0 else { return "\(file): \(severity.rawValue): \(message)" }
        var text = "\(file):\(line):\(column): \(severity.rawValue): \(message)"
        if let sourceLine {
            text += "\n" + sourceLine + "\n" + Diagnostic.caret(under: sourceLine, column: column)
        }
        return text
    }

    /// Spaces (tabs kept, so the caret lines up) up to `column`, then `^`.
    static func caret(under line: String, column: Int) -> String {
        var prefix = ""
        var n = 0
        for scalar in line.unicodeScalars {
            if n >= column - 1 { break }
            prefix.append(scalar == "\t" ? "\t" : " ")
            n += 1
        }
        if n < column - 1 { prefix += String(repeating: " ", count: column - 1 - n) }
        return prefix + "^"
    }

    /// The diagnostic as a JSON object (`check --format json`).
    public func jsonValue() -> JSONValue {
        var o: JSONValue = [
            "file": .string(file), "line": .number(Double(line)), "column": .number(Double(column)),
            "severity": .string(severity.rawValue), "message": .string(message),
        ]
        if let sourceLine, case .object(var dict) = o {
            dict["source"] = .string(sourceLine)
            o = .object(dict)
        }
        return o
    }
}

/// A position in a file.
struct SourcePosition: Sendable, Equatable {
    var line: Int
    var column: Int
}

/// A loaded file's text split into lines, to quote in diagnostics and to map positions inside
/// scalars back to the file.
struct SourceText: Sendable {
    let path: String
    let lines: [[Unicode.Scalar]]

    init(path: String, text: String) {
        self.path = path
        var lines: [[Unicode.Scalar]] = [[]]
        for scalar in text.unicodeScalars {
            if scalar == "\n" {
                lines.append([])
            } else if scalar != "\r" {
                lines[lines.count - 1].append(scalar)
            }
        }
        self.lines = lines
    }

    func lineText(_ line: Int) -> String? {
        guard line >= 1, line <= lines.count else { return nil }
        var s = ""
        s.unicodeScalars.append(contentsOf: lines[line - 1])
        return s
    }

    func diagnostic(_ position: SourcePosition, _ message: String, severity: Diagnostic.Severity = .error) -> Diagnostic {
        Diagnostic(file: path, line: position.line, column: position.column, severity: severity,
                   message: message, sourceLine: lineText(position.line))
    }
}

/// Edit distance (optimal string alignment: a swap of two neighbours counts as one edit), for "did you mean".
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.lowercased().unicodeScalars), b = Array(b.lowercased().unicodeScalars)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
/// (The agent's configuration file uses it too.)
public func didYouMean(_ word: String, _ candidates: some Sequence<String>) -> String? {
    var best: (String, Int)?
    for candidate in candidates {
        let d = editDistance(word, candidate)
        if best == nil || d < best!.1 { best = (candidate, d) }
    }
    guard let best else { return nil }
    let limit = max(1, min(3, (max(word.count, best.0.count) + 1) / 3))
    return best.1 <= limit ? best.0 : nil
}

/// `; did you mean "x"?` or nothing.
func suggestion(_ word: String, _ candidates: some Sequence<String>) -> String {
    if let s = didYouMean(word, candidates) { return "; did you mean \"\(s)\"?" }
    return ""
}
