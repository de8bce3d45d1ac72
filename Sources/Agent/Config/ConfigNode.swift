import Rules
import Yams

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

    mutating func error(_ message: String, at node: Node?, columnOffset: Int = 0) {
        let line = node?.mark?.line ?? 1
        let column = (node?.mark?.column ?? 1) + columnOffset
        error(message, line: line, column: column)
    }

    mutating func error(_ message: String, line: Int, column: Int) {
        let source = lines.indices.contains(line - 1) ? String(lines[line - 1]) : nil
        errors.append(Diagnostic(file: file, line: line, column: column, message: message, sourceLine: source))
    }

    /// The pairs of a mapping, reporting keys outside `known` (with a suggestion) as errors.
    mutating func mapping(_ node: Node, _ what: String, known: [String]) -> [(key: String, keyNode: Node, value: Node)] {
        guard let mapping = node.mapping else {
            error("\(what) must be a mapping", at: node)
            return []
        }
        var pairs: [(key: String, keyNode: Node, value: Node)] = []
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
    mutating func string(_ node: Node, _ what: String) -> String? {
        guard let scalar = node.scalar else {
            error("\(what) must be a single value", at: node)
            return nil
        }
        return substitute(scalar.string, at: node)
    }

    mutating func bool(_ node: Node, _ what: String) -> Bool? {
        guard let text = string(node, what) else { return nil }
        switch text {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error("\(what) must be true or false, not '\(text)'", at: node)
            return nil
        }
    }

    mutating func int(_ node: Node, _ what: String, minimum: Int = 0) -> Int? {
        guard let text = string(node, what) else { return nil }
        guard let value = Int(text), value >= minimum else {
            error("\(what) must be a whole number of at least \(minimum), not '\(text)'", at: node)
            return nil
        }
        return value
    }

    mutating func double(_ node: Node, _ what: String, range: ClosedRange<Double>) -> Double? {
        guard let text = string(node, what) else { return nil }
        guard let value = Double(text), range.contains(value) else {
            error("\(what) must be a number from \(range.lowerBound) to \(range.upperBound), not '\(text)'", at: node)
            return nil
        }
        return value
    }

    mutating func duration(_ node: Node, _ what: String) -> Duration? {
        guard let text = string(node, what) else { return nil }
        guard let value = parseDuration(text) else {
            error("\(what): '\(text)' is not a duration (write e.g. 500ms, 10s, 5m, 1h, 1d)", at: node)
            return nil
        }
        return value
    }

    /// A byte size: a number with an optional unit (`512`, `64KB`, `10MB`, `1GiB`).
    mutating func byteSize(_ node: Node, _ what: String) -> Int? {
        guard let text = string(node, what) else { return nil }
        let units: [(String, Int)] = [
            ("KiB", 1024), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000),
            ("K", 1024), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
        ]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let n = Int(text.dropLast(suffix.count).trimmingSpaces()), n > 0 { return n * factor }
        }
        if let n = Int(text), n > 0 { return n }
        error("\(what): '\(text)' is not a size (write e.g. 1048576, 512KB, 10MB)", at: node)
        return nil
    }

    mutating func stringList(_ node: Node, _ what: String) -> [String]? {
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
    mutating func json(_ node: Node) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            let text = substitute(scalar.string, at: node) ?? ""
            if scalar.style == .plain {
                if node.null != nil, text == scalar.string { return .null }
                if let b = node.bool, text == scalar.string { return .bool(b) }
                if let i = node.int, text == scalar.string { return .number(Double(i)) }
                if let f = node.float, text == scalar.string { return .number(f) }
            }
            return .string(text)
        case .sequence(let sequence):
            return .array(sequence.map { json($0) })
        case .mapping(let mapping):
            var pairs: [(String, JSONValue)] = []
            for (k, v) in mapping {
                pairs.append((k.scalar?.string ?? "", json(v)))
            }
            return .object(pairs: pairs)
        case .alias:
            return .null
        }
    }

    /// Replaces `${NAME}` / `${NAME:-default}`. An unset name without a default is an error at
    /// the column of its `${`.
    mutating func substitute(_ text: String, at node: Node) -> String? {
        guard text.contains("${") else { return text }
        var out = ""
        var rest = Substring(text)
        var ok = true
        while let start = rest.range(of: "${") {
            out += rest[..<start.lowerBound]
            let offset = text.unicodeScalars.distance(from: text.startIndex, to: start.lowerBound)
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                error("unclosed '${' in value", at: node, columnOffset: offset + quoteOffset(node))
                return nil
            }
            let body = rest[start.upperBound..<end]
            let name: Substring
            var fallback: Substring?
            if let sep = body.range(of: ":-") {
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

    private func quoteOffset(_ node: Node) -> Int {
        guard let style = node.scalar?.style else { return 0 }
        return style == .singleQuoted || style == .doubleQuoted ? 1 : 0
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
