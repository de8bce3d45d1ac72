import OrderedCollections
import SIOCore

/// The part of an event a rule may read again later. A key keeps the last event it saw only for
/// one reason: a `for` or `absent` timer fires `then` with it. So a key keeps what `then`'s
/// templates read of it (conditions, `key` and window arguments always read the current event),
/// found once when the rule is compiled: `{{ payload.host }}` keeps `args[0].host` and nothing
/// else of a 100 kB payload.
struct PathTree: Sendable, Equatable {
    /// The whole value is read (rendered, passed to a function, indexed by an expression).
    var whole = false
    var members: [String: PathTree] = [:]
    var indices: [Int: PathTree] = [:]

    mutating func mark(_ path: ArraySlice<PathStep>) {
        if whole { return }
        guard let step = path.first else {
            whole = true
            members = [:]
            indices = [:]
            return
        }
        switch step {
        case .member(let name): members[name, default: PathTree()].mark(path.dropFirst())
        case .index(let i): indices[i, default: PathTree()].mark(path.dropFirst())
        }
    }

    /// `value` with only the parts this tree reads: every read of the result gives what it gives
    /// on `value`. Objects keep the members read; arrays keep their length up to the last index
    /// read (their whole length when an index counts from the end), with `null` in the slots not
    /// read; values read only through a member or an index they cannot have become `null`.
    func project(_ value: JSONValue) -> JSONValue {
        if whole { return value }
        switch value {
        case .object(let o) where !members.isEmpty:
            var kept = OrderedDictionary<String, JSONValue>()
            for (name, tree) in members {
                if let v = o[name] { kept[name] = tree.project(v) }
            }
            return .object(kept)
        case .array(let a) where !indices.isEmpty:
            return .array(projectElements(a))
        default:
            return .null
        }
    }

    /// The elements of an array this tree reads, as `project` keeps them.
    func projectElements(_ a: [JSONValue]) -> [JSONValue] {
        if whole { return a }
        return projectElements(count: a.count) { j, t in t.project(a[j]) }
    }

    /// An event's arguments as `projectElements` keeps them, decoding only what it keeps: an
    /// argument read only through its members (`payload.level`) has those members decoded, not
    /// the argument (it becomes an object of them, which every such read sees alike).
    func projectArguments(_ a: JSONArguments) -> [JSONValue] {
        if whole { return a.values }
        return projectElements(count: a.count) { j, t in
            if !t.whole && t.indices.isEmpty && !t.members.isEmpty {
                var kept = OrderedDictionary<String, JSONValue>()
                for (name, sub) in t.members {
                    if let v = a.member(name, of: j) { kept[name] = sub.project(v) }
                }
                return .object(kept)
            }
            return a.element(j).map { t.project($0) } ?? .null
        }
    }

    /// Element `j` of `total`, kept by `element` with what the tree reads of it; the others
    /// `null`. A list keeps its length up to the last index read, all of it when an index counts
    /// from the end.
    private func projectElements(count total: Int, _ element: (Int, PathTree) -> JSONValue) -> [JSONValue] {
        guard !indices.isEmpty else { return [] }
        let fromEnd = indices.keys.contains { $0 < 0 }
        let count = fromEnd ? total : min(total, indices.keys.max()! + 1)
        var out = [JSONValue](repeating: .null, count: count)
        var done = Set<Int>()
        for i in indices.keys {
            let j = i < 0 ? total + i : i
            guard j >= 0 && j < count && done.insert(j).inserted else { continue }
            out[j] = element(j, tree(forElement: j, of: total))
        }
        return out
    }

    /// What is read of element `j` of a list of `total`: through its index and through the index
    /// that counts from the end (`args[1]` and `args[-1]` of two arguments are one).
    private func tree(forElement j: Int, of total: Int) -> PathTree {
        switch (indices[j], indices[j - total]) {
        case let (a?, b?): return a.merged(b)
        case let (a?, nil): return a
        case let (nil, b?): return b
        case (nil, nil): return PathTree()
        }
    }

    private func merged(_ other: PathTree) -> PathTree {
        if whole || other.whole { return PathTree(whole: true) }
        var m = self
        for (k, t) in other.members { m.members[k] = m.members[k].map { $0.merged(t) } ?? t }
        for (k, t) in other.indices { m.indices[k] = m.indices[k].map { $0.merged(t) } ?? t }
        return m
    }
}

enum PathStep: Sendable, Equatable {
    case member(String)
    case index(Int)
}

/// What a key keeps of the last event it saw.
enum EventProjection: Sendable, Equatable {
    /// Nothing: the rule has neither `for` nor `absent`, no timer reads the event again.
    case none
    /// The whole event (`shell` gets it on standard input, a `log` without `message` writes its args).
    case whole
    /// The event's name, namespace and whether it asked for an ack, and of its args what the tree reads.
    case args(PathTree)

    init(forSeconds: Double?, absent: Double?, then: [ActionTemplate]) {
        guard forSeconds != nil || absent != nil else {
            self = .none
            return
        }
        var tree = PathTree()
        for action in then {
            switch action {
            case .shell, .log(_, nil):
                self = .whole
                return
            default:
                for t in action.templates {
                    for e in t.expressions { EventProjection.collect(e.root, into: &tree) }
                }
            }
        }
        self = tree.whole ? .whole : .args(tree)
    }

    /// The path from the event's args an expression reads, when it is one (`payload.a[2]`, `args[1].b`).
    private static func path(_ e: Expr) -> [PathStep]? {
        switch e.kind {
        case .args: return []
        case .payload: return [.index(0)]
        case .member(let base, let name): return path(base).map { $0 + [.member(name)] }
        case .index(let base, let i): return path(base).map { $0 + [.index(i)] }
        default: return nil
        }
    }

    /// Marks in `tree` what `e` reads of the event's args.
    private static func collect(_ e: Expr, into tree: inout PathTree) {
        if let p = path(e) {
            tree.mark(p[...])
            return
        }
        switch e.kind {
        case .member(let b, _), .index(let b, _), .not(let b), .negate(let b), .compareNumber(_, let b, _),
             .equalsString(_, let b, _), .matches(let b, _):
            collect(b, into: &tree)
        case .dynamicIndex(let a, let b), .binary(_, let a, let b):
            collect(a, into: &tree)
            collect(b, into: &tree)
        case .list(let items), .call(_, let items):
            for i in items { collect(i, into: &tree) }
        case .window:
            // Reads the key's samples, taken from each event when it arrived.
            break
        default:
            break
        }
    }

    /// What a key keeps of `event`, or nil.
    func keep(_ event: RuleEvent) -> RuleEvent? {
        switch self {
        case .none: return nil
        case .whole:
            // Decoded, so that what the key holds is what is counted.
            return RuleEvent(namespace: event.namespace, name: event.name, args: event.args, canReply: event.canReply)
        case .args(let tree):
            return RuleEvent(namespace: event.namespace, name: event.name, args: tree.projectArguments(event.arguments), canReply: event.canReply)
        }
    }
}

/// About how many bytes a value holds in memory (counted against `limits.key_bytes`): its
/// strings' UTF-8 and 16 bytes per value, member name and element.
func approximateBytes(_ v: JSONValue) -> Int {
    switch v {
    case .null, .bool, .number: return 16
    case .string(let s): return 16 + s.utf8.count
    case .binary(let b): return 16 + b.count
    case .array(let a):
        var n = 16
        for x in a { n += approximateBytes(x) }
        return n
    case .object(let o):
        var n = 16
        for (k, x) in o { n += 16 + k.utf8.count + approximateBytes(x) }
        return n
    }
}

func approximateBytes(_ e: RuleEvent) -> Int {
    var values = 0
    for x in e.args { values += approximateBytes(x) }
    // Arguments still held as received text keep that text alive (JSONArguments.textBytes).
    return 48 + e.namespace.utf8.count + e.name.utf8.count + max(values, e.arguments.textBytes)
}
