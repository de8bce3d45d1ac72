import SIOCore

/// What an expression reads while it runs: the event (nil for timers), the clock, and, for the
/// rules that read them, the rule's key value, the shared state and the key's window samples.
/// Rules that read none of these leave them empty, so building a context costs nothing more.
struct EvalContext {
    let event: RuleEvent?
    let now: Double
    var key: JSONValue = .null
    var state: [String: StateEntry]? = nil
    var windows: KeyWindows? = nil
}

/// Evaluates an expression. `nil` means "no value": a missing field, or an operation whose
/// operands have types it does not accept (nothing is converted). A condition holds only when it
/// gives exactly `true`; `nil` and everything else do not match.
@inline(__always)
func evaluate(_ e: Expr, _ c: EvalContext) -> JSONValue? {
    switch e.kind {
    case .literal(let v): return v
    case .undefined: return nil
    case .payload:
        guard let event = c.event else { return nil }
        return event.arguments.element(0) ?? .null
    case .event: return c.event.map { .string($0.name) }
    case .namespace: return c.event.map { .string($0.namespace) }
    case .args: return c.event.map { .array($0.args) }
    case .now: return .number(c.now)
    case .member(let base, let name):
        // `payload.x` and `args[i].x` decode that one member, not the whole argument.
        switch base.kind {
        case .payload:
            guard let event = c.event else { return nil }
            return event.arguments.member(name, of: 0)
        case .index(let list, let i) where list.isArgs:
            guard let event = c.event else { return nil }
            return event.arguments.member(name, of: i)
        default:
            guard case .object(let o)? = evaluate(base, c) else { return nil }
            return o[name]
        }
    case .index(let base, let i):
        if case .args = base.kind {
            guard let event = c.event else { return nil }
            return event.arguments.element(i)
        }
        guard case .array(let a)? = evaluate(base, c) else { return nil }
        let j = i < 0 ? a.count + i : i
        return a.indices.contains(j) ? .some(a[j]) : .none
    case .dynamicIndex(let base, let index):
        guard let b = evaluate(base, c), let k = evaluate(index, c) else { return nil }
        switch (b, k) {
        case (.object(let o), .string(let name)): return o[name]
        case (.array(let a), .number(let n)):
            guard n == n.rounded(), abs(n) < 1e15 else { return nil }
            let i = Int(n), j = i < 0 ? a.count + i : i
            return a.indices.contains(j) ? .some(a[j]) : .none
        default: return nil
        }
    case .list(let items):
        var out: [JSONValue] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard let v = evaluate(item, c) else { return nil }
            out.append(v)
        }
        return .array(out)
    case .not(let x):
        guard case .bool(let b)? = evaluate(x, c) else { return nil }
        return .bool(!b)
    case .negate(let x):
        guard case .number(let n)? = evaluate(x, c) else { return nil }
        return .number(-n)
    case .binary(let op, let l, let r):
        return evaluateBinary(op, l, r, c)
    case .compareNumber(let op, let l, let y):
        switch evaluate(l, c) {
        case .number(let x)?:
            switch op {
            case .lt: return .bool(x < y)
            case .le: return .bool(x <= y)
            case .gt: return .bool(x > y)
            case .ge: return .bool(x >= y)
            case .eq: return .bool(x == y)
            default: return .bool(x != y)
            }
        case .null?:
            return op == .eq ? .bool(false) : op == .ne ? .bool(true) : nil
        default:
            return nil
        }
    case .equalsString(let equal, let l, let y):
        switch evaluate(l, c) {
        case .string(let x)?: return .bool((x == y) == equal)
        case .null?: return .bool(!equal)
        default: return nil
        }
    case .matches(let x, let regex):
        guard case .string(let s)? = evaluate(x, c) else { return nil }
        guard s.utf8.count <= RegexLimits.maxInputBytes else {
            RegexLimits.countTooLong()
            return .bool(false)
        }
        return .bool(regex.program.matches(s))
    case .call(let f, let a):
        return evaluateCall(f, a, c)
    case .key:
        return c.key
    case .state(let name):
        guard let entry = c.state?[name], entry.expires > c.now else { return nil }
        return entry.value
    case .window(let w):
        return c.windows?.value(w, at: c.now)
    }
}

@inline(__always)
private func evaluateBinary(_ op: BinaryOp, _ l: Expr, _ r: Expr, _ c: EvalContext) -> JSONValue? {
    switch op {
    case .and:
        let a = evaluate(l, c)
        if case .bool(false)? = a { return .bool(false) }
        let b = evaluate(r, c)
        if case .bool(false)? = b { return .bool(false) }
        if case .bool(true)? = a, case .bool(true)? = b { return .bool(true) }
        return nil
    case .or:
        let a = evaluate(l, c)
        if case .bool(true)? = a { return .bool(true) }
        let b = evaluate(r, c)
        if case .bool(true)? = b { return .bool(true) }
        if case .bool(false)? = a, case .bool(false)? = b { return .bool(false) }
        return nil
    default:
        break
    }
    guard let a = evaluate(l, c), let b = evaluate(r, c) else { return nil }
    return applyBinary(op, a, b)
}

/// Applies a binary operator to two values (no conversions); nil when the types do not fit.
func applyBinary(_ op: BinaryOp, _ a: JSONValue, _ b: JSONValue) -> JSONValue? {
    switch op {
    case .lt, .le, .gt, .ge:
        switch (a, b) {
        case (.number(let x), .number(let y)):
            switch op {
            case .lt: return .bool(x < y)
            case .le: return .bool(x <= y)
            case .gt: return .bool(x > y)
            default: return .bool(x >= y)
            }
        case (.string(let x), .string(let y)):
            switch op {
            case .lt: return .bool(x < y)
            case .le: return .bool(x <= y)
            case .gt: return .bool(x > y)
            default: return .bool(x >= y)
            }
        default: return nil
        }
    case .eq, .ne:
        if !sameType(a, b) && !a.isNull && !b.isNull { return nil }
        let equal = a == b
        return .bool(op == .eq ? equal : !equal)
    case .add:
        switch (a, b) {
        case (.number(let x), .number(let y)): return .number(x + y)
        case (.string(let x), .string(let y)): return .string(x + y)
        case (.array(let x), .array(let y)): return .array(x + y)
        default: return nil
        }
    case .sub, .mul, .div, .mod:
        guard case .number(let x) = a, case .number(let y) = b else { return nil }
        switch op {
        case .sub: return .number(x - y)
        case .mul: return .number(x * y)
        case .div: return y == 0 ? nil : .number(x / y)
        default: return y == 0 ? nil : .number(x.truncatingRemainder(dividingBy: y))
        }
    case .in, .notIn:
        guard let found = membership(container: b, item: a) else { return nil }
        return .bool(op == .in ? found : !found)
    case .contains:
        guard let found = membership(container: a, item: b) else { return nil }
        return .bool(found)
    case .and, .or:
        return nil
    }
}

func sameType(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.null, .null), (.bool, .bool), (.number, .number), (.string, .string), (.array, .array),
        (.object, .object), (.binary, .binary):
        return true
    default:
        return false
    }
}

private func membership(container: JSONValue, item: JSONValue) -> Bool? {
    switch container {
    case .array(let a): return a.contains(item)
    case .string(let s):
        guard case .string(let sub) = item else { return nil }
        return s.containsText(sub)
    case .object(let o):
        guard case .string(let key) = item else { return nil }
        return o[key] != nil
    default: return nil
    }
}

private func evaluateCall(_ f: Function, _ a: [Expr], _ c: EvalContext) -> JSONValue? {
    switch f {
    case .exists:
        guard a.count == 1 else { return nil }
        return .bool(evaluate(a[0], c) != nil)
    case .default:
        guard a.count == 2 else { return nil }
        if let v = evaluate(a[0], c), !v.isNull { return v }
        return evaluate(a[1], c)
    default:
        break
    }
    guard let first = a.first, let v = evaluate(first, c) else { return nil }
    switch f {
    case .len:
        switch v {
        case .string(let s): return .number(Double(s.count))
        case .array(let x): return .number(Double(x.count))
        case .object(let o): return .number(Double(o.count))
        case .binary(let b): return .number(Double(b.count))
        default: return nil
        }
    case .lower:
        guard case .string(let s) = v else { return nil }
        return .string(s.lowercased())
    case .upper:
        guard case .string(let s) = v else { return nil }
        return .string(s.uppercased())
    case .number:
        switch v {
        case .number: return v
        case .string(let s):
            let t = s.trimmingSpaces()
            guard !t.isEmpty, let n = Double(t), n.isFinite else { return nil }
            return .number(n)
        default: return nil
        }
    case .string:
        return .string(plainText(v))
    case .json:
        return .string(v.jsonString())
    case .round:
        guard case .number(let n) = v else { return nil }
        var digits = 0.0
        if a.count == 2 {
            guard case .number(let d)? = evaluate(a[1], c), d == d.rounded(), d >= 0, d <= 15 else { return nil }
            digits = d
        }
        var scale = 1.0
        for _ in 0..<Int(digits) { scale *= 10 }
        return .number((n * scale).rounded(.toNearestOrAwayFromZero) / scale)
    case .exists, .default:
        return nil
    }
}

/// A value as text: strings as they are, numbers without a needless `.0`, others as JSON.
func plainText(_ v: JSONValue) -> String {
    if case .string(let s) = v { return s }
    return v.jsonString()
}

// MARK: - Explaining why a condition did not hold

extension CompiledExpression {
    /// Says, for an operator, why this condition did not give `true`.
    func explainNotTrue(_ c: EvalContext) -> String {
        explain(root, c)
    }

    private func explain(_ e: Expr, _ c: EvalContext) -> String {
        switch e.kind {
        case .binary(.and, let l, let r):
            if case .bool(true)? = evaluate(l, c) { return explain(r, c) }
            return explain(l, c)
        case .binary(.or, let l, let r):
            return explain(l, c) + ", and " + explain(r, c)
        case .not(let x):
            if case .bool(true)? = evaluate(x, c) { return "`\(text(of: x))` holds" }
            return explain(x, c)
        case .compareNumber(let op, let l, let y):
            return explainComparison(op, l, .number(y), c)
        case .equalsString(let equal, let l, let y):
            return explainComparison(equal ? .eq : .ne, l, .string(y), c)
        case .binary(let op, let l, let r) where op != .and && op != .or:
            guard let b = evaluate(r, c) else { return missing(r, c) }
            return explainComparison(op, l, b, c, right: r)
        case .matches(let x, let regex):
            guard let a = evaluate(x, c) else { return missing(x, c) }
            guard case .string(let string) = a else { return "`\(text(of: x))` is \(a.jsonString()) (\(StaticType(of: a).name)), not a string" }
            if string.utf8.count > RegexLimits.maxInputBytes {
                return "`\(text(of: x))` is \(string.utf8.count) bytes long, longer than matches reads (\(RegexLimits.maxInputBytes))"
            }
            return "`\(text(of: x))` is \(a.jsonString()), which does not match \(JSONValue.string(regex.pattern).jsonString())"
        default:
            guard let v = evaluate(e, c) else { return missing(e, c) }
            if case .bool = v { return "`\(text(of: e))` is \(v.jsonString())" }
            return "`\(text(of: e))` is \(v.jsonString()) (\(StaticType(of: v).name)), not true or false"
        }
    }

    private func explainComparison(_ op: BinaryOp, _ l: Expr, _ b: JSONValue, _ c: EvalContext, right: Expr? = nil) -> String {
        do {
            guard let a = evaluate(l, c) else { return missing(l, c) }
            let described = "`\(text(of: l))` is \(a.jsonString())"
            if applyBinary(op, a, b) == nil {
                return "\(described) (\(StaticType(of: a).name)), needed \(op.rawValue) \(b.jsonString()) (\(StaticType(of: b).name)): values are not converted"
            }
            return "\(described), needed \(op.rawValue) \(b.jsonString())"
        }
    }

    /// Why `e` has no value: the first missing step of a path, or a type that does not fit.
    func missing(_ e: Expr, _ c: EvalContext) -> String {
        switch e.kind {
        case .window(let w):
            return "`\(text(of: e))` has no value: no number in the last \(formatSeconds(w.seconds))"
        case .state(let name):
            if let entry = c.state?[name], entry.expires <= c.now { return "`\(text(of: e))` has no value: its ttl ran out" }
            return "`\(text(of: e))` has no value: state \(name) is not set"
        case .key:
            return "`key` has no value"
        case .payload, .event, .namespace, .args:
            return "`\(text(of: e))` has no value: a timer has no event"
        case .undefined:
            return "`\(text(of: e))` is not set"
        case .member(let base, let name):
            guard let b = evaluate(base, c) else { return missing(base, c) }
            if case .object = b { return "field missing: `\(text(of: base))` has no field \"\(name)\"" }
            return "`\(text(of: base))` is \(b.jsonString()) (\(StaticType(of: b).name)), which has no field \"\(name)\""
        case .index(let base, let i):
            guard let b = evaluate(base, c) else { return missing(base, c) }
            if case .array(let a) = b { return "`\(text(of: base))` has \(a.count) element\(a.count == 1 ? "" : "s"), no [\(i)]" }
            return "`\(text(of: base))` is \(b.jsonString()) (\(StaticType(of: b).name)), not a list"
        case .dynamicIndex(let base, let index):
            guard evaluate(base, c) != nil else { return missing(base, c) }
            guard let k = evaluate(index, c) else { return missing(index, c) }
            return "`\(text(of: base))` has nothing at [\(k.jsonString())]"
        default:
            return "`\(text(of: e))` has no value (a missing field, or values of types that do not fit)"
        }
    }
}

extension Expr {
    /// Whether this is `args` itself.
    fileprivate var isArgs: Bool {
        if case .args = kind { return true }
        return false
    }
}
