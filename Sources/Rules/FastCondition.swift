import SIOCore

/// The result of a condition: `true`, `false`, or anything else (no value, or not a bool), which
/// does not hold. Three states because `and`/`or`/`not` treat "no value" apart from `false`.
enum Truth: UInt8 {
    case no, yes, other
}

/// Where a fast condition reads its value: the payload, or a field of it.
enum FastPath: Sendable {
    /// `payload`: the first argument, `null` when there is none.
    case payload
    /// `payload.name` / `payload["name"]`.
    case payloadField(String)
}

/// A condition compiled at load for the hot path. The common shapes (`payload OP number`,
/// `payload.field OP number`, `payload.field == "text"`, joined with `and`/`or`/`not`) read the
/// event's arguments in place, without building an `EvalContext` or copying the payload; anything
/// else goes through `evaluate`. Gives exactly what `evaluate` gives, folded to a `Truth`.
indirect enum FastCondition: Sendable {
    case compareNumber(FastPath, BinaryOp, Double)
    case equalsString(FastPath, Bool, String)
    case and(FastCondition, FastCondition)
    case or(FastCondition, FastCondition)
    case not(FastCondition)
    case general(Expr)

    init(_ e: Expr) {
        switch e.kind {
        case .compareNumber(let op, let l, let y):
            if let path = FastPath(l) { self = .compareNumber(path, op, y); return }
        case .equalsString(let equal, let l, let y):
            if let path = FastPath(l) { self = .equalsString(path, equal, y); return }
        case .binary(.and, let l, let r):
            self = .and(FastCondition(l), FastCondition(r)); return
        case .binary(.or, let l, let r):
            self = .or(FastCondition(l), FastCondition(r)); return
        case .not(let x):
            self = .not(FastCondition(x)); return
        default:
            break
        }
        self = .general(e)
    }

    /// What `evaluate` gives for this condition (an event is present).
    func truth(_ event: RuleEvent, _ time: Double) -> Truth {
        switch self {
        case .compareNumber(let path, let op, let y):
            switch path {
            case .payload:
                guard let v = event.arguments.element(0) else { return FastCondition.compareNull(op) }
                return FastCondition.compare(v, op, y)
            case .payloadField(let name):
                guard let v = event.arguments.member(name, of: 0) else { return .other }
                return FastCondition.compare(v, op, y)
            }
        case .equalsString(let path, let equal, let y):
            switch path {
            case .payload:
                guard let v = event.arguments.element(0) else { return equal ? .no : .yes }
                return FastCondition.equals(v, equal, y)
            case .payloadField(let name):
                guard let v = event.arguments.member(name, of: 0) else { return .other }
                return FastCondition.equals(v, equal, y)
            }
        case .and(let l, let r):
            let a = l.truth(event, time)
            if a == .no { return .no }
            let b = r.truth(event, time)
            if b == .no { return .no }
            return a == .yes && b == .yes ? .yes : .other
        case .or(let l, let r):
            let a = l.truth(event, time)
            if a == .yes { return .yes }
            let b = r.truth(event, time)
            if b == .yes { return .yes }
            return a == .no && b == .no ? .no : .other
        case .not(let x):
            switch x.truth(event, time) {
            case .yes: return .no
            case .no: return .yes
            case .other: return .other
            }
        case .general(let e):
            guard case .bool(let b)? = evaluate(e, EvalContext(event: event, now: time)) else { return .other }
            return b ? .yes : .no
        }
    }

    @inline(__always)
    private static func compareNull(_ op: BinaryOp) -> Truth {
        op == .eq ? .no : op == .ne ? .yes : .other
    }

    @inline(__always)
    private static func compare(_ v: JSONValue, _ op: BinaryOp, _ y: Double) -> Truth {
        switch v {
        case .number(let x):
            let r: Bool
            switch op {
            case .lt: r = x < y
            case .le: r = x <= y
            case .gt: r = x > y
            case .ge: r = x >= y
            case .eq: r = x == y
            default: r = x != y
            }
            return r ? .yes : .no
        case .null:
            return compareNull(op)
        default:
            return .other
        }
    }

    @inline(__always)
    private static func equals(_ v: JSONValue, _ equal: Bool, _ y: String) -> Truth {
        switch v {
        case .string(let x): return (x == y) == equal ? .yes : .no
        case .null: return equal ? .no : .yes
        default: return .other
        }
    }
}

extension FastPath {
    init?(_ e: Expr) {
        switch e.kind {
        case .payload: self = .payload
        case .member(let base, let name):
            guard case .payload = base.kind else { return nil }
            self = .payloadField(name)
        default: return nil
        }
    }
}
