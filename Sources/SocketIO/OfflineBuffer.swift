import DequeModule

/// The emits waiting for their namespace, in emit order, bounded: a value with no I/O. The
/// client's machine keeps emits here (by sequence number, ClientStateMachine+Emits.swift) while
/// their namespace is not connected, and while the session's write backlog is full.
struct OfflineBuffer<Element> {
    struct Entry {
        var seq: Int
        var namespace: String
        var element: Element
    }

    private(set) var entries = Deque<Entry>()
    /// The most entries kept; beyond it the oldest is dropped.
    var limit: Int

    init(limit: Int) {
        self.limit = max(limit, 0)
    }

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    /// Inserts in `seq` order (an emit sent again after a lost connection goes back to its place).
    /// Returns the oldest entry when it was dropped because of the limit.
    mutating func insert(_ element: Element, seq: Int, namespace: String) -> Element? {
        let entry = Entry(seq: seq, namespace: namespace, element: element)
        if let last = entries.last, last.seq > seq {
            let index = entries.firstIndex { $0.seq > seq } ?? entries.endIndex
            entries.insert(entry, at: index)
        } else {
            entries.append(entry)
        }
        return entries.count > limit ? entries.removeFirst().element : nil
    }

    func contains(namespace: String) -> Bool {
        entries.contains { $0.namespace == namespace }
    }

    /// Removes and returns the oldest entry of `namespace`.
    mutating func popFirst(namespace: String) -> Element? {
        guard let i = entries.firstIndex(where: { $0.namespace == namespace }) else { return nil }
        return entries.remove(at: i).element
    }

    /// Removes and returns every entry of `namespace`, oldest first.
    mutating func take(namespace: String) -> [Element] {
        guard contains(namespace: namespace) else { return [] }
        var taken: [Element] = []
        var kept = Deque<Entry>()
        for e in entries {
            if e.namespace == namespace { taken.append(e.element) } else { kept.append(e) }
        }
        entries = kept
        return taken
    }

    /// Removes the entry with `seq`; returns whether there was one.
    @discardableResult
    mutating func remove(seq: Int) -> Bool {
        guard let i = entries.firstIndex(where: { $0.seq == seq }) else { return false }
        entries.remove(at: i)
        return true
    }

    /// Removes and returns everything, oldest first.
    mutating func removeAll() -> [Element] {
        let all = entries.map(\.element)
        entries.removeAll()
        return all
    }
}

/// The emits waiting for the server's acknowledgement, by ack id: a value with no I/O. Ids count
/// up from 0 and wrap around instead of overflowing, skipping any still in use.
struct AckTable<Element> {
    private(set) var pending: [Int: Element] = [:]
    private(set) var nextId: Int

    init(nextId: Int = 0) {
        self.nextId = max(nextId, 0)
    }

    var count: Int { pending.count }
    var elements: Dictionary<Int, Element>.Values { pending.values }

    subscript(id: Int) -> Element? { pending[id] }

    /// Stores `element` under a new id and returns the id.
    mutating func register(_ element: Element) -> Int {
        while pending[nextId] != nil { nextId = nextId == Int.max ? 0 : nextId + 1 }
        let id = nextId
        nextId = nextId == Int.max ? 0 : nextId + 1
        pending[id] = element
        return id
    }

    /// Removes and returns the element of `id`.
    @discardableResult
    mutating func resolve(_ id: Int) -> Element? {
        pending.removeValue(forKey: id)
    }
}

extension OfflineBuffer: Sendable where Element: Sendable {}
extension OfflineBuffer.Entry: Sendable where Element: Sendable {}
extension AckTable: Sendable where Element: Sendable {}
