import SIOCore

/// Rules indexed by (namespace, event), so an event costs only the rules that name it.
///
/// Built once at load: for each namespace rules name (plus one slot for "any other namespace"),
/// a table from event name to the final list of rules, already merged in load order (exact match,
/// `"*"` event, `"*"` namespace, both; `"*"` events skipping the lifecycle ones). An event then
/// costs two lookups in open-addressing tables keyed by a cheap hash of the name's UTF-8 bytes
/// (no `Hasher`, no allocation), and the engine walks a slice of one flat array.
struct EventIndex: Sendable {
    /// Namespace name → slot (`range.lowerBound`); unknown namespaces use `otherSlot`.
    private let namespaces: NameTable
    private let otherSlot: Int32
    /// Per slot: event name → range of `rules`.
    private let tables: [NameTable]
    /// The merged lists, one after another.
    let rules: [Int32]
    /// Per slot: the first of its event labels (the slot's fallback; its entries follow).
    private let labelBase: [Int32]
    /// Every (namespace, event) label: nil namespace for namespaces no rule names, nil event for
    /// names no rule of that namespace uses. Fixed at load, for metrics that count events
    /// without looking names up again.
    let labels: [(namespace: String?, event: String?)]

    init(rules compiled: [CompiledRule]) {
        var byNamespace: [String: [String: Set<Int>]] = [:]
        for (i, rule) in compiled.enumerated() {
            for t in rule.triggers { byNamespace[t.namespace, default: [:]][t.event, default: []].insert(i) }
        }
        let any = byNamespace["*"] ?? [:]
        // Event names that can have a list of their own; every other name gets the slot's fallback.
        var names = RuleEvent.lifecycleNames
        for (_, events) in byNamespace { for e in events.keys where e != "*" { names.insert(e) } }
        let slots: [String?] = byNamespace.keys.filter { $0 != "*" }.sorted() + [nil]
        var flat: [Int32] = []
        func append(_ list: Set<Int>) -> Range<Int32> {
            let lo = Int32(flat.count)
            flat += list.sorted().map { Int32($0) }
            return lo..<Int32(flat.count)
        }
        var tables: [NameTable] = []
        var nsEntries: [(String, Range<Int32>)] = []
        var labelBase: [Int32] = []
        var labels: [(namespace: String?, event: String?)] = []
        for (slot, ns) in slots.enumerated() {
            let own = ns.flatMap { byNamespace[$0] } ?? [:]
            /// What a name that is not a lifecycle event and that no rule names gets.
            let fallback = (own["*"] ?? []).union(any["*"] ?? [])
            var entries: [(String, Range<Int32>)] = []
            for name in names.sorted() {
                let lifecycle = RuleEvent.lifecycleNames.contains(name)
                var list = (own[name] ?? []).union(any[name] ?? [])
                if !lifecycle { list.formUnion(fallback) }
                if list != fallback { entries.append((name, append(list))) }
            }
            tables.append(NameTable(entries, fallback: append(fallback)))
            labelBase.append(Int32(labels.count))
            labels.append((ns, nil))
            for (name, _) in entries { labels.append((ns, name)) }
            if let ns { nsEntries.append((ns, Int32(slot)..<Int32(slot))) }
        }
        self.otherSlot = Int32(slots.count - 1)
        self.namespaces = NameTable(nsEntries, fallback: otherSlot..<otherSlot)
        self.tables = tables
        self.rules = flat
        self.labelBase = labelBase
        self.labels = labels
    }

    /// The rules for an event (as `range(namespace:event:)`) and its index in `labels`.
    @inline(__always)
    func lookup(namespace: String, event: String) -> (rules: Range<Int>, label: Int) {
        let slot = Int(namespaces.lookup(namespace).lowerBound)
        let (r, ordinal) = tables[slot].lookupEntry(event)
        return (Int(r.lowerBound)..<Int(r.upperBound), Int(labelBase[slot] + 1 + ordinal))
    }

    /// The rules for an event, in load order, as a range of `rules`.
    @inline(__always)
    func range(namespace: String, event: String) -> Range<Int> {
        let slot = Int(namespaces.lookup(namespace).lowerBound)
        let r = tables[slot].lookup(event)
        return Int(r.lowerBound)..<Int(r.upperBound)
    }

    /// The rules for an event, in load order.
    func rules(namespace: String, event: String) -> [Int] {
        rules[range(namespace: namespace, event: event)].map { Int($0) }
    }
}
