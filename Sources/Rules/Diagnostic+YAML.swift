import SIOYAML

extension Diagnostic {
    /// A YAML error (syntax, duplicate key, limit) as a positioned diagnostic in `file` (whose text
    /// is `text`), for rule files and the agent's configuration alike.
    public init(yamlError e: YAMLError, file: String, text: String) {
        self = SourceText(path: file, text: text).diagnostic(SourcePosition(line: e.line, column: e.column), "invalid YAML: " + e.message)
    }
}
