import Rules
import SIOCore
import SIOYAML

/// Reads a YAML configuration document node by node, collecting every problem with its position
/// instead of stopping at the first.
struct ConfigReader {
    let file: String
    let lines: [Substring]
    let environment: [String: String]
    var errors: [Diagnostic] = []

    init(file: String, text: String, environment: [String: String]) {
        self.file = file
        self.lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        self.environment = environment
    }

    mutating func error(_ message: String, at node: YAMLNode?, columnOffset: Int = 0) {
        let line = node?.mark.line ?? 1
        let column = (node?.mark.column ?? 1) + columnOffset
        error(message, line: line, column: column)
    }

    mutating func error(_ message: String, line: Int, column: Int) {
        let source = lines.indices.contains(line - 1) ? String(lines[line - 1]) : nil
        errors.append(Diagnostic(file: file, line: line, column: column, message: message, sourceLine: source))
    }

    /// The pairs of a mapping, reporting keys outside `known` (with a suggestion) as errors.
    mutating func mapping(_ node: YAMLNode, _ what: String, known: [String]) -> [(key: String, keyNode: YAMLNode, value: YAMLNode)] {
        guard let mapping = node.mapping else {
            error("\(what) must be a mapping", at: node)
            return []
        }
        var pairs: [(key: String, keyNode: YAMLNode, value: YAMLNode)] = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                error("keys in \(what) must be text", at: keyNode)
                continue
            }
            if !known.isEmpty, !known.contains(key) {
                var message = "unknown key '\(key)' in \(what)"
                if let suggestion = didYouMean(key, known) {
                    message += "; did you mean '\(suggestion)'?"
                }
                error(message, at: keyNode)
                continue
            }
            pairs.append((key, keyNode, value))
        }
        return pairs
    }

    /// A scalar's text with `${NAME}` and `${NAME:-default}` replaced from the environment.
    mutating func string(_ node: YAMLNode, _ what: String) -> String? {
        guard let scalar = node.scalar else {
            error("\(what) must be a single value", at: node)
            return nil
        }
        return substitute(scalar.string, at: node)
    }

    /// A boolean, read as rule files read one: a plain `true` or `false` (YAML 1.2's core schema,
    /// after `${…}` substitution). `yes`, `no`, `on`, `off` and quoted values are text.
    mutating func bool(_ node: YAMLNode, _ what: String) -> Bool? {
        guard let text = string(node, what) else { return nil }
        if node.scalar?.isImplicit == true, case .bool(let b) = YAMLScalar.resolve(text) { return b }
        let hint = ["yes", "no", "on", "off", "y", "n"].contains(text.lowercased()) ? " (YAML 1.2: write true or false)" : ""
        error("\(what) must be true or false, not '\(text)'" + hint, at: node)
        return nil
    }

    /// A whole number from `minimum` to `maximum` (by default a billion: every count in the
    /// configuration stays far from overflowing).
    mutating func int(_ node: YAMLNode, _ what: String, minimum: Int = 0, maximum: Int = 1_000_000_000) -> Int? {
        guard let text = string(node, what) else { return nil }
        let digits = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        let isWhole = !digits.isEmpty && digits.allSatisfy { $0.isASCII && $0.isNumber }
        guard isWhole, let value = Int(text) ?? (text.hasPrefix("-") ? nil : .max), value >= minimum else {
            error("\(what) must be a whole number of at least \(minimum), not '\(text)'", at: node)
            return nil
        }
        guard value <= maximum else {
            error("\(what) must be at most \(maximum), not '\(text)'", at: node)
            return nil
        }
        return value
    }

    mutating func double(_ node: YAMLNode, _ what: String, range: ClosedRange<Double>) -> Double? {
        guard let text = string(node, what) else { return nil }
        guard let value = Double(text), range.contains(value) else {
            error("\(what) must be a number from \(range.lowerBound) to \(range.upperBound), not '\(text)'", at: node)
            return nil
        }
        return value
    }

    mutating func duration(_ node: YAMLNode, _ what: String) -> Duration? {
        guard let text = string(node, what) else { return nil }
        guard let seconds = parseDurationSeconds(text) else {
            error("\(what): '\(text)' is not a duration (write e.g. 500ms, 10s, 5m, 1h, 1d)", at: node)
            return nil
        }
        guard seconds <= longestDuration else {
            error("\(what): '\(text)' is longer than the longest duration, 36500d (100 years)", at: node)
            return nil
        }
        return durationFromSeconds(seconds)
    }

    /// The largest byte size the configuration accepts: 1 TiB.
    static let largestSize = 1 << 40

    /// A byte size: a number with an optional unit (`512`, `64KB`, `10MB`, `1GiB`), at most 1 TiB.
    mutating func byteSize(_ node: YAMLNode, _ what: String) -> Int? {
        guard let text = string(node, what) else { return nil }
        let units: [(String, Int)] = [
            ("KiB", 1024), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000),
            ("K", 1024), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
        ]
        var number = Substring(text)
        var factor = 1
        for (suffix, f) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            factor = f
            break
        }
        let digits = number.trimmingSpaces()
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), digits.contains(where: { $0 != "0" }) else {
            error("\(what): '\(text)' is not a size (write e.g. 1048576, 512KB, 10MB)", at: node)
            return nil
        }
        // Past 1 TiB (or past what an Int holds) the size is refused rather than wrapped.
        let (size, overflow) = (Int(digits) ?? .max).multipliedReportingOverflow(by: factor)
        guard !overflow, size <= Self.largestSize else {
            error("\(what): '\(text)' is larger than the largest size, 1TiB", at: node)
            return nil
        }
        return size
    }

    mutating func stringList(_ node: YAMLNode, _ what: String) -> [String]? {
        if node.scalar != nil, let one = string(node, what) { return [one] }
        guard let sequence = node.sequence else {
            error("\(what) must be a list", at: node)
            return nil
        }
        var out: [String] = []
        for element in sequence {
            if let s = string(element, "each item of \(what)") { out.append(s) }
        }
        return out
    }

    /// A YAML value as JSON (for auth payloads), with `${…}` substituted in its strings.
    mutating func json(_ node: YAMLNode) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            let text = substitute(scalar.string, at: node) ?? ""
            // Substituted text stays text; a value written as it is reads as in rule files.
            return text == scalar.string ? scalar.value : .string(text)
        case .sequence(let sequence):
            return .array(sequence.map { json($0) })
        case .mapping(let mapping):
            var pairs: [(String, JSONValue)] = []
            for (k, v) in mapping {
                pairs.append((k.scalar?.string ?? "", json(v)))
            }
            return .object(pairs: pairs)
        }
    }

    /// Replaces `${NAME}` / `${NAME:-default}`. An unset name without a default is an error at
    /// the column of its `${`.
    mutating func substitute(_ text: String, at node: YAMLNode) -> String? {
        guard text.contains(text: "${") else { return text }
        var out = ""
        var rest = Substring(text)
        var ok = true
        while let start = rest.firstRange(ofText: "${") {
            out += rest[..<start.lowerBound]
            let offset = text.unicodeScalars.distance(from: text.startIndex, to: start.lowerBound)
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                error("unclosed '${' in value", at: node, columnOffset: offset + quoteOffset(node))
                return nil
            }
            let body = rest[start.upperBound..<end]
            let name: Substring
            var fallback: Substring?
            if let sep = body.firstRange(ofText: ":-") {
                name = body[..<sep.lowerBound]
                fallback = body[sep.upperBound...]
            } else {
                name = body
            }
            if name.hasPrefix("credential:") {
                // A systemd credential (LoadCredential=): the file $CREDENTIALS_DIRECTORY/NAME.
                switch readCredential(String(name.dropFirst(11)), environment: environment) {
                case .success(let value): out += value
                case .failure(let problem):
                    error(problem.description, at: node, columnOffset: offset + quoteOffset(node))
                    ok = false
                }
            } else if let value = environment[String(name)], !(fallback != nil && value.isEmpty) {
                out += value
            } else if let fallback {
                out += fallback
            } else {
                error(
                    "environment variable \(name) is not set (write ${\(name):-default} to give a default)",
                    at: node, columnOffset: offset + quoteOffset(node))
                ok = false
            }
            rest = rest[rest.index(after: end)...]
        }
        out += rest
        return ok ? out : nil
    }

    private func quoteOffset(_ node: YAMLNode) -> Int {
        guard let style = node.scalar?.style else { return 0 }
        return style == .singleQuoted || style == .doubleQuoted ? 1 : 0
    }
}
