/// The search: a breadth-first simulation of the automaton over the text's scalars.
extension RegexProgram {
    /// Whether the pattern matches anywhere in `text` (a search, not a whole-text match).
    func matches(_ text: String) -> Bool {
        var steps = 0
        return matches(text, steps: &steps)
    }

    /// ``matches(_:)``, adding to `steps` the instructions it ran: at most
    /// 2 × `instructions.count` per scalar of `text`, plus as many for the end.
    func matches(_ text: String, steps: inout Int) -> Bool {
        let n = instructions.count
        return instructions.withUnsafeBufferPointer { code in
            // Five lists of at most n instruction indices: the closure's stamps (the position at
            // which an instruction was last reached), its stack, the consuming instructions it
            // reached, and the threads for this position and the next.
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 5 * n) { scratch in
                scratch.initialize(repeating: -1)
                let visited = UnsafeMutableBufferPointer(rebasing: scratch[0..<n])
                let stack = UnsafeMutableBufferPointer(rebasing: scratch[n..<(2 * n)])
                let consumers = UnsafeMutableBufferPointer(rebasing: scratch[(2 * n)..<(3 * n)])
                var threads = UnsafeMutableBufferPointer(rebasing: scratch[(3 * n)..<(4 * n)])
                var following = UnsafeMutableBufferPointer(rebasing: scratch[(4 * n)..<(5 * n)])
                var threadCount = 0
                var scalars = text.unicodeScalars.makeIterator()
                var previous: Unicode.Scalar? = nil
                var current = scalars.next()
                var after = current == nil ? nil : scalars.next()
                var position = 0
                while true {
                    // Every instruction reachable without consuming, from a new thread at this
                    // position (a search starts one everywhere) and from the surviving ones.
                    var top = 0
                    if position == 0 || !anchoredAtStart {
                        Self.push(0, at: position, visited, stack, &top)
                    }
                    for k in 0..<threadCount {
                        Self.push(threads[k], at: position, visited, stack, &top)
                    }
                    var consumerCount = 0
                    while top > 0 {
                        top -= 1
                        let pc = stack[top]
                        steps &+= 1
                        switch code[pc] {
                        case .match:
                            return true
                        case .jump(let target):
                            Self.push(target, at: position, visited, stack, &top)
                        case .split(let first, let second):
                            Self.push(second, at: position, visited, stack, &top)
                            Self.push(first, at: position, visited, stack, &top)
                        case .assert(let assertion):
                            if Self.holds(assertion, previous, current, isLast: after == nil) {
                                Self.push(pc + 1, at: position, visited, stack, &top)
                            }
                        case .scalar, .lowercase, .any, .notNewline, .set:
                            consumers[consumerCount] = pc
                            consumerCount += 1
                        }
                    }
                    guard let c = current else { return false }
                    // Each consuming instruction is reached once, so the next ones are distinct.
                    var followingCount = 0
                    for k in 0..<consumerCount {
                        let pc = consumers[k]
                        steps &+= 1
                        if accepts(code[pc], c) {
                            following[followingCount] = pc + 1
                            followingCount += 1
                        }
                    }
                    swap(&threads, &following)
                    threadCount = followingCount
                    if threadCount == 0 && anchoredAtStart { return false }
                    previous = c
                    current = after
                    after = current == nil ? nil : scalars.next()
                    position += 1
                }
            }
        }
    }

    @inline(__always)
    private static func push(
        _ pc: Int, at position: Int, _ visited: UnsafeMutableBufferPointer<Int>,
        _ stack: UnsafeMutableBufferPointer<Int>, _ top: inout Int
    ) {
        guard visited[pc] != position else { return }
        visited[pc] = position
        stack[top] = pc
        top += 1
    }

    @inline(__always)
    private func accepts(_ instruction: Instruction, _ c: Unicode.Scalar) -> Bool {
        switch instruction {
        case .scalar(let x): return c == x
        case .lowercase(let x): return ScalarProperties.lowercase(c) == x
        case .any: return true
        case .notNewline: return !ScalarProperties.isNewline(c)
        case .set(let k): return c.value < 128 ? asciiMaps[k].contains(c.value) : classes[k].contains(c)
        case .split, .jump, .assert, .match: return false
        }
    }

    /// Whether `assertion` holds between `previous` and `current` (nil: the text's start or end);
    /// `isLast`: `current` is the text's last scalar.
    static func holds(_ assertion: RegexAssertion, _ previous: Unicode.Scalar?, _ current: Unicode.Scalar?, isLast: Bool) -> Bool {
        switch assertion {
        case .textStart: return previous == nil
        case .textEnd: return current == nil
        case .textEndBeforeFinalNewline: return current.map { isLast && ScalarProperties.isNewline($0) } ?? true
        case .lineStart: return previous.map(ScalarProperties.isNewline) ?? true
        case .lineEnd: return current.map(ScalarProperties.isNewline) ?? true
        case .wordBoundary, .notWordBoundary:
            let before = previous.map(ScalarProperties.isWord) ?? false
            let here = current.map(ScalarProperties.isWord) ?? false
            return (before != here) == (assertion == .wordBoundary)
        }
    }
}
