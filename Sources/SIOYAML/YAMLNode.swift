import SIOCore

/// A position in a YAML text: 1-based line and column, columns counted in Unicode scalars
/// (libyaml counts characters, not bytes).
public struct YAMLMark: Sendable, Hashable {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
}

/// How a scalar was written.
public enum YAMLScalarStyle: Sendable, Hashable {
    case plain, singleQuoted, doubleQuoted, literal, folded
}

/// A scalar: its text after YAML's unquoting and folding, how it was written, and where.
public struct YAMLScalar: Sendable {
    public var string: String
    public var style: YAMLScalarStyle
    /// The tag written before it (libyaml expands `!!str` to `tag:yaml.org,2002:str`), nil when none.
    public var tag: String?
    /// The anchor (`&name`) written before it, if any.
    public var anchor: String?
    public var mark: YAMLMark
}

/// A list, with where it starts.
public struct YAMLSequence: Sendable, RandomAccessCollection {
    public var items: [YAMLNode]
    public var tag: String?
    public var anchor: String?
    public var mark: YAMLMark

    public var startIndex: Int { items.startIndex }
    public var endIndex: Int { items.endIndex }
    public subscript(position: Int) -> YAMLNode { items[position] }
}

/// A mapping: its pairs in the order written (duplicate keys are rejected when reading).
public struct YAMLMapping: Sendable, RandomAccessCollection {
    public var pairs: [(key: YAMLNode, value: YAMLNode)]
    public var tag: String?
    public var anchor: String?
    public var mark: YAMLMark

    public var startIndex: Int { pairs.startIndex }
    public var endIndex: Int { pairs.endIndex }
    public subscript(position: Int) -> (key: YAMLNode, value: YAMLNode) { pairs[position] }
}

/// A node of a YAML document. An alias (`*name`) reads as the node its anchor names (so its
/// mark is where that node is written); `YAMLLimits.maxAliasExpansion` bounds what aliases add.
public enum YAMLNode: Sendable {
    case scalar(YAMLScalar)
    case sequence(YAMLSequence)
    case mapping(YAMLMapping)

    /// Where the node starts.
    public var mark: YAMLMark {
        switch self {
        case .scalar(let s): s.mark
        case .sequence(let s): s.mark
        case .mapping(let m): m.mark
        }
    }

    public var scalar: YAMLScalar? {
        if case .scalar(let s) = self { return s }
        return nil
    }

    public var sequence: YAMLSequence? {
        if case .sequence(let s) = self { return s }
        return nil
    }

    public var mapping: YAMLMapping? {
        if case .mapping(let m) = self { return m }
        return nil
    }

    /// A plain `null`, `~` or empty value.
    public var isNull: Bool {
        guard case .scalar(let s) = self, s.isImplicit else { return false }
        return YAMLScalar.resolve(s.string) == .null
    }

    /// The node as JSON: mappings become objects (non-text keys as their JSON text), lists arrays,
    /// and scalars are resolved by `YAMLScalar.value`.
    public var json: JSONValue {
        switch self {
        case .scalar(let s):
            return s.value
        case .sequence(let seq):
            return .array(seq.map(\.json))
        case .mapping(let m):
            var pairs: [(String, JSONValue)] = []
            for (k, v) in m { pairs.append((k.scalar?.string ?? k.json.jsonString(), v.json)) }
            return .object(.init(pairs, uniquingKeysWith: { a, _ in a }))
        }
    }
}

extension YAMLScalar {
    /// True for a plain scalar without a tag: the only kind whose type YAML infers from its text.
    public var isImplicit: Bool { style == .plain && tag == nil }

    /// The scalar's value. Rule files and the agent's configuration read scalars the same way, by
    /// YAML 1.2's core schema: a plain `null`, `~` or nothing is null; `true`/`false` (also
    /// `True`, `TRUE`, …) are booleans; numbers are numbers; everything else, including `yes`, `no`,
    /// `on` and `off`, and every quoted or block scalar, is text. A `!!str` tag makes any scalar text.
    public var value: JSONValue {
        guard style == .plain, tag == nil || tag != "tag:yaml.org,2002:str" else { return .string(string) }
        return YAMLScalar.resolve(string)
    }

    /// YAML 1.2 core-schema resolution of a plain scalar's text.
    public static func resolve(_ s: String) -> JSONValue {
        switch s {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        let scalars = Array(s.unicodeScalars)
        guard let first = scalars.first, first == "-" || first == "+" || first == "." || ("0"..."9").contains(first) else {
            return .string(s)
        }
        var body = s
        var sign = 1.0
        if first == "-" || first == "+" { body = String(s.dropFirst()); sign = first == "-" ? -1 : 1 }
        if body.hasPrefix("0x"), let v = Int(body.dropFirst(2), radix: 16) { return .number(sign * Double(v)) }
        if body.hasPrefix("0o"), let v = Int(body.dropFirst(2), radix: 8) { return .number(sign * Double(v)) }
        var digits = 0
        for c in body.unicodeScalars {
            if ("0"..."9").contains(c) { digits += 1; continue }
            if c == "." || c == "e" || c == "E" || c == "-" || c == "+" { continue }
            return .string(s)
        }
        guard digits > 0, let v = Double(body), v.isFinite else { return .string(s) }
        return .number(sign * v)
    }
}
