/// A compiled `matches` pattern: a Thompson automaton as a list of instructions.
///
/// ``matches(_:)`` simulates it breadth-first over the text's Unicode scalars (a Pike VM without
/// captures): each position holds at most one thread per instruction, so a search costs at most
/// about 2 × instructions steps per scalar, whatever the pattern, and nothing recurses over the text.
struct RegexProgram: Sendable {
    enum Instruction: Sendable, Equatable {
        /// Consumes this scalar.
        case scalar(Unicode.Scalar)
        /// Consumes a scalar whose lowercase form is this one (`(?i)`).
        case lowercase(Unicode.Scalar)
        /// Consumes any scalar.
        case any
        /// Consumes any scalar but a line break.
        case notNewline
        /// Consumes a scalar in `classes[n]`.
        case set(Int)
        /// Goes on at both.
        case split(Int, Int)
        case jump(Int)
        /// Goes on at the next instruction when the assertion holds here.
        case assert(RegexAssertion)
        case match
    }

    let instructions: [Instruction]
    let classes: [ScalarClass]
    /// For each class, which ASCII scalars it holds (bit n: scalar n), so that ASCII text is
    /// tested with one bit rather than a walk over the class's items.
    let asciiMaps: [ASCIIMap]

    struct ASCIIMap: Sendable {
        var low: UInt64 = 0
        var high: UInt64 = 0

        init(_ set: ScalarClass) {
            for v in 0..<128 where set.contains(Unicode.Scalar(UInt8(v))) {
                if v < 64 { low |= 1 << UInt64(v) } else { high |= 1 << UInt64(v - 64) }
            }
        }

        /// `value` below 128.
        @inline(__always)
        func contains(_ value: UInt32) -> Bool {
            value < 64 ? low & (1 << UInt64(value)) != 0 : high & (1 << UInt64(value &- 64)) != 0
        }
    }
    /// The pattern starts with `\A` (or `^` without `(?m)`): only a thread started at the text's
    /// start can match, so the search stops once no thread is left.
    let anchoredAtStart: Bool

    /// Parses and compiles `pattern`.
    init(_ pattern: String) throws(RegexSyntaxError) {
        try self.init(node: RegexParser.parse(pattern))
    }

    init(node: RegexNode) throws(RegexSyntaxError) {
        var compiler = RegexCompiler()
        try compiler.emit(node)
        try compiler.append(.match, offset: 0)
        instructions = compiler.program
        classes = compiler.classes
        asciiMaps = compiler.classes.map(ASCIIMap.init)
        anchoredAtStart = instructions.first == .assert(.textStart)
    }
}

/// Emits a ``RegexNode`` as instructions, within ``RegexBounds/maxInstructions``.
struct RegexCompiler {
    var program: [RegexProgram.Instruction] = []
    var classes: [ScalarClass] = []

    /// The instructions `node` compiles to, saturated (counted repetitions multiply).
    static func size(_ node: RegexNode) -> Int {
        switch node {
        case .empty: return 0
        case .scalar, .any, .set, .assertion: return 1
        case .concatenation(let items):
            return items.reduce(0) { $0.addingSaturated(size($1)) }
        case .alternation(let branches):
            return branches.reduce(2 * (branches.count - 1)) { $0.addingSaturated(size($1)) }
        case .repetition(let body, let min, let max, _):
            let b = size(body)
            let copies = b.multipliedSaturated(by: min)
            guard let max else { return copies.addingSaturated(2).addingSaturated(min == 0 ? b : 0) }
            return copies.addingSaturated((b.addingSaturated(1)).multipliedSaturated(by: max - min))
        }
    }

    mutating func append(_ instruction: RegexProgram.Instruction, offset: Int) throws(RegexSyntaxError) {
        guard program.count < RegexBounds.maxInstructions else { throw tooLarge(offset) }
        program.append(instruction)
    }

    private func tooLarge(_ offset: Int) -> RegexSyntaxError {
        RegexSyntaxError(offset: offset, message: "the pattern compiles to more than \(RegexBounds.maxInstructions) instructions (each {n,m} repetition copies its part m times): lower the counts")
    }

    /// The instruction `at` now jumps or splits to `target` in its `second` branch (or its only one).
    private mutating func patch(_ at: Int, to target: Int) {
        switch program[at] {
        case .split(let a, _): program[at] = .split(a, target)
        case .jump: program[at] = .jump(target)
        default: break
        }
    }

    mutating func emit(_ node: RegexNode) throws(RegexSyntaxError) {
        switch node {
        case .empty:
            break
        case .scalar(let c, let caseInsensitive):
            let lower = ScalarProperties.lowercase(c)
            if caseInsensitive && (lower != c || ScalarProperties.uppercase(c) != c) {
                try append(.lowercase(lower), offset: 0)
            } else {
                try append(.scalar(c), offset: 0)
            }
        case .any(let dotAll):
            try append(dotAll ? .any : .notNewline, offset: 0)
        case .set(let set):
            if let same = classes.firstIndex(of: set) {
                try append(.set(same), offset: 0)
            } else {
                try append(.set(classes.count), offset: 0)
                classes.append(set)
            }
        case .assertion(let a):
            try append(.assert(a), offset: 0)
        case .concatenation(let items):
            for item in items { try emit(item) }
        case .alternation(let branches):
            // split(L1, next) L1: a; jump(end) next: split(L2, …) … last
            var jumps: [Int] = []
            for (k, branch) in branches.enumerated() {
                if k < branches.count - 1 {
                    let split = program.count
                    try append(.split(split + 1, -1), offset: 0)
                    try emit(branch)
                    jumps.append(program.count)
                    try append(.jump(-1), offset: 0)
                    patch(split, to: program.count)
                } else {
                    try emit(branch)
                }
            }
            for j in jumps { patch(j, to: program.count) }
        case .repetition(let body, let min, let max, let offset):
            guard program.count.addingSaturated(Self.size(node)) < RegexBounds.maxInstructions else {
                throw tooLarge(offset)
            }
            try emitRepetition(body, min: min, max: max, offset: offset)
        }
    }

    private mutating func emitRepetition(_ body: RegexNode, min: Int, max: Int?, offset: Int) throws(RegexSyntaxError) {
        guard let max else {
            if min == 0 {
                // L: split(body, end) body jump(L) end:
                let loop = program.count
                try append(.split(loop + 1, -1), offset: offset)
                try emit(body)
                try append(.jump(loop), offset: offset)
                patch(loop, to: program.count)
            } else {
                // body × (min - 1), then L: body split(L, end)
                for _ in 0..<(min - 1) { try emit(body) }
                let loop = program.count
                try emit(body)
                try append(.split(loop, program.count + 1), offset: offset)
            }
            return
        }
        for _ in 0..<min { try emit(body) }
        // (max - min) optional copies: split(body, end) body split(body, end) body … end:
        var exits: [Int] = []
        for _ in 0..<(max - min) {
            exits.append(program.count)
            try append(.split(program.count + 1, -1), offset: offset)
            try emit(body)
        }
        for e in exits { patch(e, to: program.count) }
    }
}

extension Int {
    fileprivate func addingSaturated(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    fileprivate func multipliedSaturated(by other: Int) -> Int {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? .max : product
    }
}
