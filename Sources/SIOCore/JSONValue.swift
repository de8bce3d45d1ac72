import OrderedCollections

/// A JSON value as carried by Socket.IO events, extended with raw bytes.
///
/// Socket.IO payloads are JSON plus binary attachments; `.binary` holds those bytes wherever they
/// sit in the arguments. Objects keep the order of their keys as received, so what is printed
/// reads like what was sent. Two objects are equal when they hold the same keys and values,
/// whatever the order.
public enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(OrderedDictionary<String, JSONValue>)
    case binary([UInt8])
}

extension JSONValue: Equatable {
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.binary(let a), .binary(let b)): return a == b
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            for (key, value) in a {
                guard let other = b[key], other == value else { return false }
            }
            return true
        default: return false
        }
    }
}

extension JSONValue: Hashable {
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let b): hasher.combine(1); hasher.combine(b)
        case .number(let n): hasher.combine(2); hasher.combine(n)
        case .string(let s): hasher.combine(3); hasher.combine(s)
        case .array(let a): hasher.combine(4); hasher.combine(a)
        case .binary(let b): hasher.combine(5); hasher.combine(b)
        case .object(let o):
            // Order-independent, to agree with `==`.
            hasher.combine(6)
            var sum = 0
            for (key, value) in o {
                var h = Hasher()
                h.combine(key)
                h.combine(value)
                sum = sum &+ h.finalize()
            }
            hasher.combine(sum)
        }
    }
}

extension JSONValue {
    /// The name of the value's type as operators read it: `null`, `bool`, `number`, `string`,
    /// `list`, `object`, `bytes`.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "bool"
        case .number: return "number"
        case .string: return "string"
        case .array: return "list"
        case .object: return "object"
        case .binary: return "bytes"
        }
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var numberValue: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: OrderedDictionary<String, JSONValue>? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The member `key` of an object, or nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// The element at `index` of a list (negative counts from the end), or nil.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let a) = self else { return nil }
        let i = index < 0 ? a.count + index : index
        guard a.indices.contains(i) else { return Optional<JSONValue>.none }  // a bare `nil` would be JSONValue.null
        return a[i]
    }

    /// An object with `pairs` in their order (a later duplicate key replaces an earlier one).
    public static func object(pairs: some Sequence<(String, JSONValue)>) -> JSONValue {
        var o = OrderedDictionary<String, JSONValue>()
        for (k, v) in pairs { o[k] = v }
        return .object(o)
    }

    /// True when the value holds bytes anywhere inside it.
    public var containsBinary: Bool {
        switch self {
        case .binary: return true
        case .array(let a): return a.contains { $0.containsBinary }
        case .object(let o): return o.values.contains { $0.containsBinary }
        default: return false
        }
    }
}

// No ExpressibleByNilLiteral: with it, `optionalValue == nil` would compare with `.null`.
extension JSONValue: ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var o = OrderedDictionary<String, JSONValue>()
        for (k, v) in elements { o[k] = v }
        self = .object(o)
    }
}

extension JSONValue: CustomStringConvertible {
    /// Compact JSON, bytes written as `{"$binary":"<base64>"}`.
    public var description: String { jsonString() }
}
