/// The arguments of an event: decoded values, or the elements of a checked JSON list from some
/// index on, decoded when read. Reading one argument or one member of one argument from the text
/// builds only that value; `values` decodes them all, exactly as the strict parser does.
public struct JSONArguments: Sendable {
    enum Storage: Sendable {
        case values([JSONValue])
        case text(JSONListText, first: Int)
    }

    var storage: Storage

    public init(_ values: [JSONValue]) {
        storage = .values(values)
    }

    /// Lists longer than this are decoded at once: reading a member walks the text from the
    /// list's start, so many rules reading fields of a large payload would each walk all of it
    /// (a 1 MB payload and 100 rules: 100 MB of scanning for one event). Decoding once bounds
    /// that; payloads this small are walked in well under a microsecond.
    public static let textLimit = 4096

    /// The elements of `list` from `first` on (decoded now when the list's text is longer than
    /// ``textLimit``).
    public init(_ list: JSONListText, from first: Int) {
        let first = max(0, min(first, list.count))
        if list.end - list.start > Self.textLimit {
            storage = .values(Array(list.values().dropFirst(first)))
        } else {
            storage = .text(list, first: first)
        }
    }

    public var count: Int {
        switch storage {
        case .values(let v): return v.count
        case .text(let list, let first): return list.count - first
        }
    }

    public var isEmpty: Bool { count == 0 }

    /// The bytes of received text these arguments keep alive (the whole packet's array they
    /// share), 0 when they hold decoded values. A bound on kept events counts these too: a
    /// payload padded with whitespace is small decoded and large as text.
    public var textBytes: Int {
        switch storage {
        case .values: return 0
        case .text(let list, _): return list.storage.count
        }
    }

    /// Every argument, decoded.
    public var values: [JSONValue] {
        switch storage {
        case .values(let v): return v
        case .text(let list, let first): return Array(list.values().dropFirst(first))
        }
    }

    /// Argument `i` (negative counts from the end), or nil.
    public func element(_ i: Int) -> JSONValue? {
        let j = i < 0 ? count + i : i
        guard j >= 0, j < count else { return nil }
        switch storage {
        case .values(let v): return v[j]
        case .text(let list, let first): return list.element(first + j)
        }
    }

    /// The member `name` of argument `i` (negative counts from the end), when that argument is an
    /// object that has it; nil otherwise.
    public func member(_ name: String, of i: Int) -> JSONValue? {
        let j = i < 0 ? count + i : i
        guard j >= 0, j < count else { return nil }
        switch storage {
        case .values(let v):
            guard case .object(let o) = v[j] else { return nil }
            return o[name]
        case .text(let list, let first):
            return list.member(name, ofElement: first + j)
        }
    }
}

extension JSONArguments: Equatable {
    public static func == (lhs: JSONArguments, rhs: JSONArguments) -> Bool {
        lhs.count == rhs.count && lhs.values == rhs.values
    }
}
