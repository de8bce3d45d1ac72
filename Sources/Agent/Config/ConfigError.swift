/// A problem in the agent's configuration file, with its position.
///
/// Printed as `FILE:LINE:COL: error: MESSAGE`, followed by the source line and a caret when the
/// file could be read.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String
    /// The text of the line the error points at, when known.
    public var sourceLine: String?

    public init(file: String, line: Int, column: Int, message: String, sourceLine: String? = nil) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.sourceLine = sourceLine
    }

    public var description: String {
        var text = "\(file):\(line):\(column): error: \(message)"
        if let sourceLine {
            text += "\n" + sourceLine + "\n"
            // The caret sits under the column, counting Unicode scalars as Yams does.
            var caret = ""
            for (i, scalar) in sourceLine.unicodeScalars.enumerated() where i < column - 1 {
                caret.append(scalar == "\t" ? "\t" : " ")
            }
            text += caret + "^"
        }
        return text
    }
}

/// All the problems found in one configuration file.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
