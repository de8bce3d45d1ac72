import CYAML

/// Bounds on what one document may cost to read. Each one exceeded is a positioned `YAMLError`.
public struct YAMLLimits: Sendable {
    /// The largest document, in bytes of UTF-8.
    public var maxDocumentBytes: Int
    /// The deepest nesting of lists and mappings.
    public var maxDepth: Int
    /// How many nodes aliases may add in all (each `*name` adds the size of the node it names),
    /// which stops "billion laughs" documents that expand a few lines into billions of nodes.
    public var maxAliasExpansion: Int

    public init(maxDocumentBytes: Int = 4 << 20, maxDepth: Int = 64, maxAliasExpansion: Int = 10_000) {
        self.maxDocumentBytes = maxDocumentBytes
        self.maxDepth = maxDepth
        self.maxAliasExpansion = maxAliasExpansion
    }
}

/// Why a document could not be read, and where: 1-based line and column (in Unicode scalars).
public struct YAMLError: Error, Sendable, Equatable {
    public var line: Int
    public var column: Int
    public var message: String

    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }
}

public enum YAMLReader {
    /// Reads a text holding one YAML document into a node tree, with libyaml.
    ///
    /// - Returns: the root node, or nil when the text holds no document (empty, or only comments).
    /// - Throws: `YAMLError` for a syntax error, a duplicate key in a mapping, an undefined alias,
    ///   a second document, or a limit exceeded.
    public static func read(_ text: String, limits: YAMLLimits = YAMLLimits()) throws(YAMLError) -> YAMLNode? {
        var bytes = Array(text.utf8)
        // Nothing to read (and libyaml wants an input buffer).
        if bytes.isEmpty { return nil }
        if bytes.count > limits.maxDocumentBytes {
            let (line, column) = position(ofByte: limits.maxDocumentBytes, in: bytes)
            throw YAMLError(line: line, column: column, message: "the document is longer than \(limits.maxDocumentBytes) bytes")
        }
        let result: Result<YAMLNode?, YAMLError> = bytes.withUnsafeMutableBufferPointer { buffer in
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else {
                return .failure(YAMLError(line: 1, column: 1, message: "out of memory"))
            }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            return withUnsafeMutablePointer(to: &parser) { pointer in
                var composer = Composer(parser: pointer, bytes: UnsafeBufferPointer(buffer), limits: limits)
                do throws(YAMLError) {
                    return .success(try composer.document())
                } catch {
                    return .failure(error)
                }
            }
        }
        return try result.get()
    }

    /// The 1-based line and column (in Unicode scalars) of the byte at `offset`.
    static func position(ofByte offset: Int, in bytes: some Collection<UInt8>) -> (line: Int, column: Int) {
        var line = 1, column = 1, n = 0
        for byte in bytes {
            if n >= offset { break }
            n += 1
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return (line, column)
    }
}

/// One parser event, copied out of libyaml's structure.
private struct Event {
    enum Kind { case streamStart, streamEnd, documentStart, documentEnd, alias, scalar, sequenceStart, sequenceEnd, mappingStart, mappingEnd, none }
    var kind: Kind
    var mark: YAMLMark
    var anchor: String?
    var tag: String?
    var value = ""
    var style = YAMLScalarStyle.plain
}

/// Builds the node tree from the parser's events.
private struct Composer {
    let parser: UnsafeMutablePointer<yaml_parser_t>
    let bytes: UnsafeBufferPointer<UInt8>
    let limits: YAMLLimits
    /// Anchored nodes by name, with their size in nodes (aliases inside them counted expanded).
    var anchors: [String: (node: YAMLNode, size: Int)] = [:]
    var expanded = 0
    var depth = 0

    init(parser: UnsafeMutablePointer<yaml_parser_t>, bytes: UnsafeBufferPointer<UInt8>, limits: YAMLLimits) {
        self.parser = parser
        self.bytes = bytes
        self.limits = limits
    }

    mutating func document() throws(YAMLError) -> YAMLNode? {
        _ = try next()  // stream start
        let start = try next()
        guard start.kind == .documentStart else { return nil }
        let (root, _) = try node(from: try next())
        _ = try next()  // document end
        let after = try next()
        if after.kind == .documentStart {
            throw YAMLError(
                line: after.mark.line, column: after.mark.column,
                message: "but found another document (expected a single document in the stream that starts at line 1, column 1)")
        }
        return root
    }

    /// The node that starts with `event`, and its size in nodes.
    mutating func node(from event: Event) throws(YAMLError) -> (YAMLNode, Int) {
        switch event.kind {
        case .alias:
            guard let name = event.anchor, let target = anchors[name] else {
                throw YAMLError(line: event.mark.line, column: event.mark.column, message: "found undefined alias")
            }
            expanded = expanded.addingSaturating(target.size)
            if expanded > limits.maxAliasExpansion {
                throw YAMLError(
                    line: event.mark.line, column: event.mark.column,
                    message: "aliases expand to more than \(limits.maxAliasExpansion) nodes in this document")
            }
            return target
        case .scalar:
            let node = YAMLNode.scalar(YAMLScalar(string: event.value, style: event.style, tag: event.tag, anchor: event.anchor, mark: event.mark))
            register(event.anchor, node, 1)
            return (node, 1)
        case .sequenceStart:
            try enter(event)
            var items: [YAMLNode] = []
            var size = 1
            while true {
                let e = try next()
                if e.kind == .sequenceEnd { break }
                let (item, n) = try node(from: e)
                items.append(item)
                size = size.addingSaturating(n)
            }
            depth -= 1
            let node = YAMLNode.sequence(YAMLSequence(items: items, tag: event.tag, anchor: event.anchor, mark: event.mark))
            register(event.anchor, node, size)
            return (node, size)
        case .mappingStart:
            try enter(event)
            var pairs: [(key: YAMLNode, value: YAMLNode)] = []
            var size = 1
            while true {
                let e = try next()
                if e.kind == .mappingEnd { break }
                let (key, k) = try node(from: e)
                let (value, v) = try node(from: try next())
                pairs.append((key, value))
                size = size.addingSaturating(k).addingSaturating(v)
            }
            depth -= 1
            try checkDuplicates(pairs)
            let node = YAMLNode.mapping(YAMLMapping(pairs: pairs, tag: event.tag, anchor: event.anchor, mark: event.mark))
            register(event.anchor, node, size)
            return (node, size)
        default:
            throw YAMLError(line: event.mark.line, column: event.mark.column, message: "unexpected event")
        }
    }

    mutating func enter(_ event: Event) throws(YAMLError) {
        depth += 1
        if depth > limits.maxDepth {
            throw YAMLError(
                line: event.mark.line, column: event.mark.column,
                message: "lists and mappings nest deeper than \(limits.maxDepth) levels")
        }
    }

    mutating func register(_ anchor: String?, _ node: YAMLNode, _ size: Int) {
        if let anchor { anchors[anchor] = (node, size) }
    }

    /// A key written twice in one mapping is an error at the first of them (the keys that repeat
    /// are listed in text order).
    func checkDuplicates(_ pairs: [(key: YAMLNode, value: YAMLNode)]) throws(YAMLError) {
        guard pairs.count > 1 else { return }
        var first: [String: YAMLMark] = [:]
        var repeated: Set<String> = []
        for (key, _) in pairs {
            guard case .scalar(let s) = key else { continue }
            if first[s.string] != nil { repeated.insert(s.string) } else { first[s.string] = s.mark }
        }
        guard !repeated.isEmpty else { return }
        let names = repeated.sorted()
        let mark = first[names[0]]!
        throw YAMLError(
            line: mark.line, column: mark.column,
            message: "duplicate key\(names.count == 1 ? "" : "s") \(names.map { "\"\($0)\"" }.joined(separator: ", ")) in this mapping")
    }

    /// The next event, or the parser's error.
    mutating func next() throws(YAMLError) -> Event {
        var event = yaml_event_t()
        guard yaml_parser_parse(parser, &event) == 1 else { throw parserError() }
        defer { yaml_event_delete(&event) }
        let mark = YAMLMark(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
        switch event.type {
        case YAML_STREAM_START_EVENT: return Event(kind: .streamStart, mark: mark)
        case YAML_STREAM_END_EVENT: return Event(kind: .streamEnd, mark: mark)
        case YAML_DOCUMENT_START_EVENT: return Event(kind: .documentStart, mark: mark)
        case YAML_DOCUMENT_END_EVENT: return Event(kind: .documentEnd, mark: mark)
        case YAML_ALIAS_EVENT:
            return Event(kind: .alias, mark: mark, anchor: string(event.data.alias.anchor))
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            let value = String(decoding: UnsafeBufferPointer(start: s.value, count: Int(s.length)), as: UTF8.self)
            let style: YAMLScalarStyle =
                switch s.style {
                case YAML_SINGLE_QUOTED_SCALAR_STYLE: .singleQuoted
                case YAML_DOUBLE_QUOTED_SCALAR_STYLE: .doubleQuoted
                case YAML_LITERAL_SCALAR_STYLE: .literal
                case YAML_FOLDED_SCALAR_STYLE: .folded
                default: .plain
                }
            return Event(kind: .scalar, mark: mark, anchor: string(s.anchor), tag: string(s.tag), value: value, style: style)
        case YAML_SEQUENCE_START_EVENT:
            let s = event.data.sequence_start
            return Event(kind: .sequenceStart, mark: mark, anchor: string(s.anchor), tag: string(s.tag))
        case YAML_SEQUENCE_END_EVENT: return Event(kind: .sequenceEnd, mark: mark)
        case YAML_MAPPING_START_EVENT:
            let m = event.data.mapping_start
            return Event(kind: .mappingStart, mark: mark, anchor: string(m.anchor), tag: string(m.tag))
        case YAML_MAPPING_END_EVENT: return Event(kind: .mappingEnd, mark: mark)
        default: return Event(kind: .none, mark: mark)
        }
    }

    func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let pointer else { return nil }
        return String(cString: pointer)
    }

    /// The parser's error as a `YAMLError`: the problem, then its context with where that started.
    func parserError() -> YAMLError {
        let p = parser.pointee
        let problem = p.problem.map { String(cString: $0) } ?? "unknown error"
        switch p.error {
        case YAML_MEMORY_ERROR:
            return YAMLError(line: 1, column: 1, message: "out of memory")
        case YAML_READER_ERROR:
            let (line, column) = YAMLReader.position(ofByte: Int(p.problem_offset), in: bytes)
            return YAMLError(line: line, column: column, message: problem)
        default:
            var message = problem
            if let context = p.context {
                message += " (\(String(cString: context)) that starts at line \(p.context_mark.line + 1), column \(p.context_mark.column + 1))"
            }
            return YAMLError(line: Int(p.problem_mark.line) + 1, column: Int(p.problem_mark.column) + 1, message: message)
        }
    }
}

extension Int {
    /// `self + other`, or `Int.max` when that overflows.
    func addingSaturating(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
