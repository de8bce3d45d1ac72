import Testing

@testable import SIOCore
@testable import SocketIO

/// A small deterministic generator (SplitMix64), so a failing input can be found again by seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Seeded fuzzing of the three decoders the server's bytes reach: Engine.IO (packets, polling
/// payloads, the handshake), Socket.IO (packets, binary assembly) and JSON. Mutated valid samples
/// and random bytes; nothing may trap, and what decodes must survive a round trip.
struct DecoderFuzzTests {
    static let seed: UInt64 = 0x5107_A6E7
    static let inputs = 200_000

    static let corpus: [String] = [
        #"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
        "4hello\u{1e}2\u{1e}bAQIDBA==\u{1e}4world", "2probe", "3", "6", "1",
        "40", #"40{"sid":"wZX3oN0bSVIhsaknAAAI"}"#, #"40/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
        #"44{"message":"Not authorized","data":{"reason":"bad token"}}"#, #"44/random,"Unable to connect""#,
        #"42["hey","Jude"]"#, #"42/admin,["bar"]"#, #"4212["foo"]"#, #"4312["bar"]"#, #"43/admin,13["bar"]"#,
        #"451-["baz",{"_placeholder":true,"num":0}]"#, #"452-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        #"461-15["bar",{"_placeholder":true,"num":0}]"#, "41/admin,",
        #"42["alert",{"level":-1.5e3,"ok":true,"none":null,"s":"\u00e9\ud83d\ude00\n\"x\""}]"#,
        #"[[[[[[[[[[{"a":[1,2,{"b":[]}]}]]]]]]]]]]"#,
    ]

    static let tokens: [[UInt8]] = [
        "\u{1e}", "b", "{", "}", "[", "]", ",", ":", "\"", "\\u", "\\ud83d", "-", "e", "1e999", "0.", "null",
        #"{"_placeholder":true,"num":0}"#, #"{"_placeholder":true,"num":99}"#, "/", "99999999999999999999", "\u{0}", "\u{ff}",
    ].map { Array($0.utf8) }

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            switch Int.random(in: 0..<6, using: &rng) {
            case 0 where !bytes.isEmpty:
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 1:
                bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
            case 2 where !bytes.isEmpty:
                bytes.removeSubrange(Int.random(in: 0..<bytes.count, using: &rng)...)
            case 3:
                bytes.insert(contentsOf: tokens.randomElement(using: &rng)!, at: Int.random(in: 0...bytes.count, using: &rng))
            case 4 where !bytes.isEmpty:
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                bytes.remove(at: i)
            default:
                let other = Array(corpus.randomElement(using: &rng)!.utf8)
                bytes += other.prefix(Int.random(in: 0...other.count, using: &rng))
            }
        }
        return bytes
    }

    static func hasNonFinite(_ value: JSONValue) -> Bool {
        switch value {
        case .number(let n): return !n.isFinite
        case .array(let a): return a.contains(where: hasNonFinite)
        case .object(let o): return o.values.contains(where: hasNonFinite)
        default: return false
        }
    }

    /// Old (decode everything) and new (check the text, decode on demand) decisions on `bytes`,
    /// as JSON and as a Socket.IO packet: the same acceptance, the same error, the same values.
    /// `lists` counts the inputs the new path accepted as a list.
    static func compareDecisions(_ bytes: [UInt8], _ n: Int, _ lists: inout Int) {
        let where_ = "seed \(seed), input \(n): \(bytes)"
        var old: Result<JSONValue, JSONParseError>
        do { old = .success(try JSONValue(parsing: bytes)) } catch { old = .failure(error) }
        var new: Result<JSONListText?, JSONParseError>
        do { new = .success(try JSONListText.checking(bytes, from: 0)) } catch { new = .failure(error) }
        switch (old, new) {
        case (.failure(let a), .failure(let b)):
            #expect(a == b, "\(where_)")
        case (.success(.array(let values)), .success(let list?)):
            lists += 1
            #expect(list.count == values.count && list.values() == values, "\(where_)")
            for (i, v) in values.enumerated().prefix(4) {
                #expect(list.element(i) == v, "\(where_) [\(i)]")
                if case .object(let o) = v {
                    for key in o.keys.prefix(4) + ["_placeholder", "num", "level"] {
                        #expect(list.member(key, ofElement: i) == o[key], "\(where_) [\(i)].\(key)")
                    }
                } else {
                    #expect(list.member("num", ofElement: i) == nil, "\(where_) [\(i)]")
                }
            }
        case (.success(let v), .success(nil)):
            #expect(v.arrayValue == nil, "\(where_)")
        default:
            Issue.record("decisions differ: parser \(old), checked text \(new); \(where_)")
        }
        // As a Socket.IO packet.
        var full: Result<SocketIOPacket, SocketIOParseError>
        do { full = .success(try SocketIOCodec.decode(bytes)) } catch { full = .failure(error) }
        var kept: Result<SocketIOPacket, SocketIOParseError>
        kept = bytes.withUnsafeBytes { raw in
            Result { () throws(SocketIOParseError) in try SocketIOCodec.decode(raw, keeping: bytes) }
        }
        switch (full, kept) {
        case (.failure(let a), .failure(let b)):
            #expect(a == b, "\(where_)")
        case (.success(let a), .success(var b)):
            if let text = b.eventText {
                b.data = .array(text.values())
                b.eventText = nil
            }
            #expect(a == b, "\(where_)")
        default:
            Issue.record("packet decisions differ: \(full) against \(kept); \(where_)")
        }
    }

    /// Strings: both paths use one reader (escapes, surrogate pairs), but the checked-text path
    /// checks UTF-8 as it reads where the parser checks it at the closing quote: every two-byte
    /// string, and random longer ones biased to high bytes and escapes, decided both ways.
    @Test func checkedTextAgreesOnStringContents() {
        var lists = 0
        for a in 0...255 {
            for b in 0...255 {
                Self.compareDecisions([0x5B, 0x22, UInt8(a), UInt8(b), 0x22, 0x5D], -1, &lists)
            }
        }
        var rng = SplitMix64(state: Self.seed ^ 0x57)
        let pieces: [[UInt8]] = [#"\u"#, #"\ud83d"#, #"\ude00"#, #"\""#, #"\"#, "\"", "0", "a"].map { Array($0.utf8) }
        for n in 0..<50_000 {
            var content: [UInt8] = []
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: content += pieces.randomElement(using: &rng)!
                case 1: content.append(UInt8.random(in: 0...255, using: &rng))
                default: content.append(UInt8.random(in: 0x80...0xFF, using: &rng))
                }
            }
            Self.compareDecisions([0x5B, 0x22] + content + [0x22, 0x5D], n, &lists)
            Self.compareDecisions(Array(#"2["e",{""#.utf8) + content + Array(#"":1}]"#.utf8), n, &lists)
        }
        #expect(lists > 10_000, "\(lists)")
    }

    @Test func decodersSurviveMutatedAndRandomInput() throws {
        var rng = SplitMix64(state: Self.seed)
        let samples = Self.corpus.map { Array($0.utf8) }
        var decoded = (eio: 0, sio: 0, json: 0, lazy: 0)
        var assembler = SocketIOBinaryAssembler()
        assembler.byteLimit = 10_000
        for n in 0..<Self.inputs {
            let input: [UInt8]
            if n % 8 == 0 {
                input = (0..<Int.random(in: 0..<48, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                input = Self.mutate(samples.randomElement(using: &rng)!, &rng)
            }
            // Engine.IO: a polling payload, and each record as a packet.
            if let packets = try? EngineIOCodec.decodePayload(input) {
                decoded.eio += 1
                for p in packets where !p.isBinary && p.type == .open {
                    _ = try? EngineIOHandshake(payload: p.payload)
                }
            }
            _ = try? EngineIOHandshake(payload: input)
            // Socket.IO: the packet after the Engine.IO `4`, fed to the assembler as the client does.
            let sio = input.first == UInt8(ascii: "4") ? Array(input.dropFirst()) : input
            if let packet = try? SocketIOCodec.decode(sio) {
                decoded.sio += 1
                if packet.type == .binaryEvent || packet.type == .binaryAck {
                    if (try? assembler.start(packet)) == nil {
                        for _ in 0..<min(packet.attachmentCount, 3) { _ = try? assembler.add([1, 2, 3]) }
                    }
                    assembler.reset()
                } else if packet.data.map(Self.hasNonFinite) != true {
                    // Encoding what was decoded reads back the same packet.
                    let again = try SocketIOCodec.decode(SocketIOCodec.encode(packet).text)
                    #expect(again == packet, "seed \(Self.seed), input \(n)")
                }
            }
            // The checked-text path accepts and rejects exactly what the strict parser does.
            Self.compareDecisions(sio, n, &decoded.lazy)
            if let bracket = input.firstIndex(of: UInt8(ascii: "[")) {
                Self.compareDecisions(Array(input[bracket...]), n, &decoded.lazy)
            }
            // JSON: what parses writes out and parses back to the same value.
            // (Numbers beyond Double's range read as ±infinity, which JSON writes as null.)
            if let value = try? JSONValue(parsing: input), !Self.hasNonFinite(value) {
                decoded.json += 1
                #expect(try JSONValue(parsing: value.jsonString()) == value, "seed \(Self.seed), input \(n): \(input) -> \(value.jsonString())")
            }
        }
        // The mutations keep enough inputs valid for every decoder to go past its first bytes.
        #expect(decoded.eio > 10_000 && decoded.sio > 5_000 && decoded.json > 1_000 && decoded.lazy > 5_000, "\(decoded)")
    }
}
