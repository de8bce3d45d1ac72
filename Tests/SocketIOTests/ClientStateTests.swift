import NIOCore
import Testing

@testable import SIOCore
@testable import SocketIO

/// The client's state machines and limits as values, without sockets.
struct BackoffTests {
    @Test func aFailingServerNeverGetsTwoRetriesAtOnce() {
        var b = ReconnectBackoff(policy: ReconnectionPolicy())
        var zeros = 0
        var previousZero = false
        var total: Duration = .zero
        for _ in 0..<20 {
            // Every session is forgotten by the server right after the handshake.
            guard case .retry(_, let delay, _) = b.next(immediate: true, random: 0.0) else {
                Issue.record("stopped")
                return
            }
            if delay == .zero {
                #expect(!previousZero)
                zeros += 1
            }
            previousZero = delay == .zero
            total += delay
        }
        #expect(zeros == 1)
        // 20 attempts take well over a minute with the default policy (1 s doubling to 5 s).
        #expect(total > .seconds(40))
    }

    @Test func theCountStartsOverOnlyAfterAStableConnection() {
        var b = ReconnectBackoff(policy: ReconnectionPolicy(randomization: 0))
        _ = b.next(immediate: false, random: 0)
        _ = b.next(immediate: false, random: 0)
        var d = b.next(immediate: false, random: 0)
        #expect(d == .retry(attempt: 3, delay: .seconds(4), slow: false))
        b.stable()
        d = b.next(immediate: false, random: 0)
        #expect(d == .retry(attempt: 1, delay: .seconds(1), slow: false))
        b.stable()
        d = b.next(immediate: true, random: 0)
        #expect(d == .retry(attempt: 1, delay: .zero, slow: false))
        d = b.next(immediate: true, random: 0)
        #expect(d == .retry(attempt: 2, delay: .seconds(2), slow: false))
    }

    @Test func aZeroDelayPolicyStillWaitsBetweenRetries() {
        var b = ReconnectBackoff(policy: ReconnectionPolicy(delay: .zero, maxDelay: .zero))
        var d = b.next(immediate: false, random: 0)
        #expect(d == .retry(attempt: 1, delay: .zero, slow: false))
        d = b.next(immediate: false, random: 0)
        #expect(d == .retry(attempt: 2, delay: ReconnectBackoff.minimumRepeatDelay, slow: false))
    }

    @Test func exhaustedAttemptsGoSlowOrStop() {
        var slow = ReconnectBackoff(policy: ReconnectionPolicy(randomization: 0, attempts: 2, slowDelay: .seconds(60)))
        _ = slow.next(immediate: false, random: 0)
        _ = slow.next(immediate: false, random: 0)
        #expect(!slow.exhausted)
        var d = slow.next(immediate: false, random: 0)
        #expect(d == .retry(attempt: 3, delay: .seconds(60), slow: true))
        #expect(slow.exhausted)
        d = slow.next(immediate: true, random: 0)
        #expect(d == .retry(attempt: 4, delay: .seconds(60), slow: true))

        var stop = ReconnectBackoff(policy: ReconnectionPolicy(attempts: 1, whenExhausted: .stop))
        _ = stop.next(immediate: false, random: 0)
        d = stop.next(immediate: false, random: 0)
        #expect(d == .stop)
    }

    @Test func hugeAndOddPolicyNumbersDoNotTrap() {
        let p = ReconnectionPolicy(delay: .seconds(Int64.max / 2), maxDelay: .seconds(Int64.max), randomization: .nan, attempts: Int.max)
        #expect(p.delay(forAttempt: Int.max) <= .seconds(86_400 * 365))
        #expect(p.delay(forAttempt: Int.min) >= .zero)
        #expect(TimeAmount(saturating: Duration.seconds(Int64.max)) == .seconds(100 * 365 * 86_400))
        #expect(TimeAmount(saturating: Duration.seconds(-5)) == .zero)
        #expect(ReconnectBackoff.stabilityPeriod(pingInterval: 0) == .seconds(1))
        #expect(ReconnectBackoff.stabilityPeriod(pingInterval: 25_000) == .seconds(25))
        #expect(ReconnectBackoff.stabilityPeriod(pingInterval: 300_000) == .seconds(60))
    }
}

struct LimitTests {
    @Test func postBatchesStopAt16PacketsAnd60kB() {
        let small = (0..<20).map { OutgoingFrame(bytes: Array("4\($0)".utf8), isBinary: false) }
        let (count, body) = PollingWriter.postBatch(small, byteLimit: 60_000)
        #expect(count == 16)
        #expect(body.split(separator: EngineIOCodec.recordSeparator).count == 16)

        let big = (0..<5).map { _ in OutgoingFrame(bytes: [UInt8](repeating: 0x34, count: 25_000), isBinary: false) }
        #expect(PollingWriter.postBatch(big, byteLimit: 60_000).count == 2)
        // A single packet beyond the limit still goes, alone.
        let huge = [OutgoingFrame(bytes: [UInt8](repeating: 0x34, count: 100_000), isBinary: false)] + big
        #expect(PollingWriter.postBatch(huge, byteLimit: 60_000).count == 1)
        // Binary counts at its base64 size: 3 × 15,000 bytes = 3 × 20,002 in base64.
        let binary = (0..<3).map { _ in OutgoingFrame(bytes: [UInt8](repeating: 1, count: 15_000), isBinary: true) }
        let (n, encoded) = PollingWriter.postBatch(binary, byteLimit: 60_000)
        #expect(n == 2)
        #expect(encoded.first == UInt8(ascii: "b"))
        #expect(PollingWriter.postBatch([OutgoingFrame](), byteLimit: 60_000).count == 0)
    }

    @Test func payloadLimitFollowsTheServerWithinTheCeiling() {
        #expect(EngineSession.payloadLimit(maxPayload: 1_000_000, ceiling: 1_000_000) == 1_000_000)
        #expect(EngineSession.payloadLimit(maxPayload: 100_000_000, ceiling: 1_000_000) == 1_000_000)
        #expect(EngineSession.payloadLimit(maxPayload: 200_000, ceiling: 1_000_000) == 200_000)
        #expect(EngineSession.payloadLimit(maxPayload: 10, ceiling: 1_000_000) == 65_536)
    }

    @Test func handshakeNumbersAreClampedNotTrapped() throws {
        let h = try EngineIOHandshake(payload: Array(#"{"sid":"a","pingInterval":1e30,"pingTimeout":1e300,"maxPayload":1e20}"#.utf8))
        #expect(h.pingInterval == EngineIOHandshake.maxPingMilliseconds)
        #expect(h.pingTimeout == EngineIOHandshake.maxPingMilliseconds)
        #expect(h.maxPayload == Int(Int32.max))
        #expect(h.livenessTimeout == .seconds(600))
    }

    @Test func cookieJarKeepsRFC6265Limits() {
        var jar = CookieJar()
        for i in 0..<200 { jar.store(setCookie: "c\(i)=v; Path=/") }
        #expect(jar.cookies.count == CookieJar.maxCookies)
        // A known cookie is still updated and removed when the jar is full.
        var stored = jar.store(setCookie: "c0=new")
        #expect(stored)
        #expect(jar.cookies.first { $0.name == "c0" }?.value == "new")
        stored = jar.store(setCookie: "c1=; Max-Age=0")
        #expect(stored)
        #expect(jar.cookies.count == CookieJar.maxCookies - 1)
        stored = jar.store(setCookie: "big=" + String(repeating: "x", count: 5000))
        #expect(!stored)
        #expect(!jar.cookies.contains { $0.name == "big" })
    }

    @Test func errorBodiesAreShortAndOneLine() {
        let body = ByteBuffer(string: "\"Invalid\nsession\"" + String(repeating: " ", count: 100_000))
        let text = describeBody(body)
        #expect(text.utf8.count < 300)
        #expect(!text.contains("\n"))
        #expect(text.hasSuffix("(100017 bytes)"))
        #expect(describeBody(ByteBuffer(string: "short")) == "short")
    }

    @Test func eachPlaceholderIsUsedOnce() throws {
        var a = SocketIOBinaryAssembler()
        let twice = try SocketIOCodec.decode(#"51-["bomb",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#)
        let started = try a.start(twice)
        #expect(started == nil)
        #expect(throws: SocketIOParseError.self) { try a.add([1, 2, 3]) }
        #expect(!a.isAssembling)
        let once = try SocketIOCodec.decode(#"52-["ok",{"_placeholder":true,"num":0},[{"_placeholder":true,"num":1}]]"#)
        let s1 = try a.start(once)
        #expect(s1 == nil)
        let s2 = try a.add([1])
        #expect(s2 == nil)
        let done = try a.add([2])
        #expect(done?.data == JSONValue.array(["ok", .binary([1]), [.binary([2])]]))
    }

    @Test func attachmentsHaveATotalByteLimit() throws {
        var a = SocketIOBinaryAssembler()
        a.byteLimit = 1000
        let p = try SocketIOCodec.decode(#"52-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        let s1 = try a.start(p)
        #expect(s1 == nil)
        let s2 = try a.add([UInt8](repeating: 0, count: 600))
        #expect(s2 == nil)
        #expect(throws: SocketIOParseError.self) { try a.add([UInt8](repeating: 0, count: 600)) }
        #expect(!a.isAssembling)
    }
}

struct OfflineBufferTests {
    @Test func keepsEmitOrderAndDropsTheOldest() {
        var b = OfflineBuffer<String>(limit: 3)
        var dropped = b.insert("a", seq: 1, namespace: "/")
        #expect(dropped == nil)
        dropped = b.insert("c", seq: 3, namespace: "/x")
        #expect(dropped == nil)
        // Sent again after a lost connection: back to its place.
        dropped = b.insert("b", seq: 2, namespace: "/")
        #expect(dropped == nil)
        #expect(b.entries.map(\.element) == ["a", "b", "c"])
        dropped = b.insert("d", seq: 4, namespace: "/")
        #expect(dropped == "a")
        #expect(b.count == 3)
        #expect(b.contains(namespace: "/x"))
        var taken = b.take(namespace: "/")
        #expect(taken == ["b", "d"])
        taken = b.take(namespace: "/")
        #expect(taken == [])
        var removed = b.remove(seq: 3)
        #expect(removed)
        removed = b.remove(seq: 3)
        #expect(!removed)
        #expect(b.isEmpty)
        var zero = OfflineBuffer<Int>(limit: 0)
        let z = zero.insert(1, seq: 1, namespace: "/")
        #expect(z == 1)
        #expect(zero.isEmpty)
        var all = OfflineBuffer<Int>(limit: -5)
        let n = all.insert(1, seq: 1, namespace: "/")
        #expect(n == 1)
        let rest = all.removeAll()
        #expect(rest == [])
    }
}

struct AckTableTests {
    @Test func idsCountUpResolveOnceAndWrapAround() {
        var t = AckTable<String>()
        let a = t.register("a")
        let b = t.register("b")
        #expect((a, b) == (0, 1))
        #expect(t[a] == "a")
        let first = t.resolve(a)
        let again = t.resolve(a)
        #expect(first == "a" && again == nil)
        #expect(t.count == 1)

        var near = AckTable<String>(nextId: Int.max)
        let last = near.register("x")
        let wrapped = near.register("y")
        #expect(last == Int.max && wrapped == 0)
        // An id still waiting is skipped after the wrap.
        var busy = AckTable<String>(nextId: Int.max)
        _ = busy.register("x")
        _ = busy.register("y")  // 0
        busy.resolve(Int.max)
        var ids: [Int] = []
        for s in ["p", "q"] { ids.append(busy.register(s)) }
        #expect(ids == [1, 2])
    }
}
