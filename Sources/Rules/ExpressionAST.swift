import SIOCore
import Synchronization

/// Operators of the expression language.
enum BinaryOp: String, Sendable {
    case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
    case add = "+", sub = "-", mul = "*", div = "/", mod = "%"
    case and, or
    case `in` = "in", notIn = "not in", contains

    var isComparison: Bool {
        switch self {
        case .eq, .ne, .lt, .le, .gt, .ge: return true
        default: return false
        }
    }

    var isOrdering: Bool {
        switch self {
        case .lt, .le, .gt, .ge: return true
        default: return false
        }
    }
}

/// Built-in functions.
enum Function: String, Sendable, CaseIterable {
    case len, lower, upper, number, string, exists, `default`, round, json

    var arity: ClosedRange<Int> {
        switch self {
        case .default: return 2...2
        case .round: return 1...2
        default: return 1...1
        }
    }
}

/// The type an expression is known to have before it runs, used to reject at load time what can
/// never work (`"a" < 3`, `when: payload + 1`). `any` is "only known at run time".
enum StaticType: String, Sendable {
    case bool, number, string, list, object, null, any

    init(of value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool: self = .bool
        case .number: self = .number
        case .string: self = .string
        case .array: self = .list
        case .object: self = .object
        case .binary: self = .any
        }
    }

    /// As operators read it in messages.
    var name: String {
        switch self {
        case .any: return "any value"
        default: return rawValue
        }
    }
}

/// A `matches` pattern, compiled when the rules load (``RegexProgram``), with its text for
/// explanations. A class, so `Expr.Kind` stays small.
final class CompiledPattern: Sendable {
    let program: RegexProgram
    let pattern: String

    init(program: RegexProgram, pattern: String) {
        self.program = program
        self.pattern = pattern
    }
}

/// The window functions: aggregates over the events a rule's `on` matched in the last D, per key.
enum WindowFunction: String, Sendable, CaseIterable {
    case count = "count_over", avg = "avg_over", min = "min_over", max = "max_over", sum = "sum_over"
    case delta = "delta_over", rate = "rate_over"
}

/// One window function call in a rule. `slot` (the rule's sample buffer it reads) is assigned once
/// when the rule is compiled, before the rule is shared, and never changes after; it is an atomic
/// so that the class is `Sendable` as checked by the compiler, not by that promise.
final class WindowCall: Sendable {
    let function: WindowFunction
    /// The sampled expression (nil for `count_over`).
    let argument: Expr?
    /// Its text, so equal calls share one buffer.
    let argumentText: String
    let seconds: Double
    /// The call as written, for `--explain`.
    let text: String
    private let slotValue = Atomic<Int>(-1)
    /// The rule's sample buffer this call reads (-1 until the rule is compiled).
    var slot: Int {
        get { slotValue.load(ordering: .relaxed) }
        set { slotValue.store(newValue, ordering: .relaxed) }
    }

    init(function: WindowFunction, argument: Expr?, argumentText: String, seconds: Double, text: String) {
        self.function = function
        self.argument = argument
        self.argumentText = argumentText
        self.seconds = seconds
        self.text = text
    }
}

/// A node of a compiled expression. Nodes are built once at load and never change.
final class Expr: Sendable {
    indirect enum Kind: Sendable {
        case literal(JSONValue)
        /// A value known at load to be absent (an unset `env.NAME`).
        case undefined
        case event, namespace, args, payload, now
        case member(Expr, String)
        case index(Expr, Int)
        case dynamicIndex(Expr, Expr)
        case list([Expr])
        case not(Expr)
        case negate(Expr)
        case binary(BinaryOp, Expr, Expr)
        /// `x OP number` with the number known at load (the most common condition shape).
        case compareNumber(BinaryOp, Expr, Double)
        /// `x == "text"` / `x != "text"` with the text known at load.
        case equalsString(Bool, Expr, String)
        case matches(Expr, CompiledPattern)
        case call(Function, [Expr])
        /// The rule's `key` value (null for a rule without `key`).
        case key
        /// `state.NAME`: shared state set by `set:` actions.
        case state(String)
        /// `count_over(D)`, `avg_over(EXPR, D)`…: a value over the rule's recent events.
        case window(WindowCall)
    }

    let kind: Kind
    /// Offsets (in Unicode scalars) of the node's text inside the expression source.
    let start: Int
    let end: Int
    let type: StaticType

    init(_ kind: Kind, _ start: Int, _ end: Int, type: StaticType) {
        self.kind = kind
        self.start = start
        self.end = end
        self.type = type
    }

    /// Calls `visit` on this node and every node below it (window arguments included).
    func walk(_ visit: (Expr) -> Void) {
        visit(self)
        switch kind {
        case .member(let b, _), .index(let b, _), .not(let b), .negate(let b), .compareNumber(_, let b, _),
             .equalsString(_, let b, _), .matches(let b, _):
            b.walk(visit)
        case .dynamicIndex(let a, let b), .binary(_, let a, let b):
            a.walk(visit)
            b.walk(visit)
        case .list(let items), .call(_, let items):
            for i in items { i.walk(visit) }
        case .window(let w):
            w.argument?.walk(visit)
        default:
            break
        }
    }
}

/// A compiled expression and the text it came from (for `--explain` messages).
struct CompiledExpression: Sendable {
    let root: Expr
    let source: String
    private let scalars: [Unicode.Scalar]

    init(root: Expr, source: String) {
        self.root = root
        self.source = source
        self.scalars = Array(source.unicodeScalars)
    }

    func text(of e: Expr) -> String {
        var s = ""
        let lo = max(0, min(e.start, scalars.count)), hi = max(lo, min(e.end, scalars.count))
        s.unicodeScalars.append(contentsOf: scalars[lo..<hi])
        return s
    }
}
