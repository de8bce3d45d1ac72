import Yams

extension Diagnostic {
    /// A YAML syntax error from Yams as a positioned diagnostic in `file` (whose text is `text`),
    /// for rule files and the agent's configuration alike.
    public init(yamlError e: YamlError, file: String, text: String) {
        let source = SourceText(path: file, text: text)
        func at(_ line: Int, _ column: Int, _ message: String) -> Diagnostic {
            source.diagnostic(SourcePosition(line: line, column: column), "invalid YAML: " + message)
        }
        switch e {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            self = at(mark.line, mark.column, problem + (context.map { " (\($0.text) that starts at line \($0.mark.line), column \($0.mark.column))" } ?? ""))
        case .duplicatedKeysInMapping(let duplicates, let context):
            self = at(context.mark.line, context.mark.column, "duplicate key\(duplicates.count == 1 ? "" : "s") \(duplicates.map { "\"\($0)\"" }.joined(separator: ", ")) in this mapping")
        case .reader(let problem, let offset, _, _):
            // Yams gives a byte offset: count lines and columns (in Unicode scalars) up to it.
            var line = 1, column = 1
            if let offset {
                var n = 0
                for scalar in text.unicodeScalars {
                    if n >= offset { break }
                    n += String(scalar).utf8.count
                    if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
                }
            }
            self = at(line, column, problem)
        default:
            self = Diagnostic(file: file, line: 0, column: 0, message: "invalid YAML: \(e)")
        }
    }
}
