import SIOCore
import Testing

@testable import SocketIO

/// Engine.IO 3 / Socket.IO v2 framing, pure (no sockets).
struct EngineIO3CodecTests {
    func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    @Test func textFramingRoundTrips() throws {
        let packets: [EngineIOPacket] = [.text(.message, "hello"), EngineIOPacket(.ping), .binaryMessage([1, 2, 3, 4]), .text(.message, "")]
        let encoded = EngineIO3Codec.encodePayload(packets)
        #expect(text(encoded) == "6:4hello1:210:b4AQIDBA==1:4")
        #expect(try EngineIO3Codec.decodePayload(encoded) == packets)
    }

    @Test func decodesTheReferenceSuiteExamples() throws {
        // engine.io v3 test suite: echo payloads with b64=1.
        #expect(try EngineIO3Codec.decodePayload(Array("6:4test16:4test26:4test3".utf8))
            == [.text(.message, "test1"), .text(.message, "test2"), .text(.message, "test3")])
        #expect(try EngineIO3Codec.decodePayload(Array("6:4hello10:b4AQIDBA==".utf8))
            == [.text(.message, "hello"), .binaryMessage([1, 2, 3, 4])])
        // Without b64 the server answers in the binary framing.
        let xhr2: [UInt8] = [0x00, 0x06, 0xFF, 0x34, 0x68, 0x65, 0x6C, 0x6C, 0x6F, 0x01, 0x05, 0xFF, 0x04, 0x01, 0x02, 0x03, 0x04]
        #expect(try EngineIO3Codec.decodePayload(xhr2) == [.text(.message, "hello"), .binaryMessage([1, 2, 3, 4])])
        // The handshake as python-engineio 3.14.2 sends it, with the `/` CONNECT behind it.
        let handshake = #"0{"sid":"abc","upgrades":["websocket"],"pingTimeout":60000,"pingInterval":25000}"#
        let payload = "\(handshake.utf8.count):\(handshake)2:40"
        let decoded = try EngineIO3Codec.decodePayload(Array(payload.utf8))
        #expect(decoded.count == 2)
        let h = try EngineIOHandshake(payload: decoded[0].payload)
        #expect(h.sid == "abc" && h.pingInterval == 25000 && h.pingTimeout == 60000 && h.maxPayload == 1_000_000)
        #expect(decoded[1] == .text(.message, "0"))
        #expect(try EngineIO3Codec.decodePayload([UInt8]()) == [])
        #expect(try EngineIO3Codec.decodePayload(Array("0:".utf8)) == [])
    }

    @Test func lengthsCountUTF16CodeUnits() throws {
        // `€` is one UTF-16 unit (3 UTF-8 bytes); an emoji is two (4 bytes, one code point).
        #expect(try EngineIO3Codec.decodePayload(Array("2:4€6:4hello".utf8)) == [.text(.message, "€"), .text(.message, "hello")])
        #expect(try EngineIO3Codec.decodePayload(Array("3:4😀1:2".utf8)) == [.text(.message, "😀"), EngineIOPacket(.ping)])
        #expect(EngineIO3Codec.utf16Count(Array("4é€😀".utf8)) == 5)
        // A non-JSON text packet keeps its characters and is counted in UTF-16 units.
        #expect(text(EngineIO3Codec.encodePayload([.text(.message, "x😀")])) == "4:4x😀")
    }

    @Test func toleratesPythonEngineIOByteAndCodePointCounts() throws {
        // python-engineio 3.14.2 writes UTF-8 byte counts (`len()` of bytes).
        #expect(try EngineIO3Codec.decodePayload(Array("4:4€6:4hello".utf8)) == [.text(.message, "€"), .text(.message, "hello")])
        #expect(try EngineIO3Codec.decodePayload(Array("5:4😀".utf8)) == [.text(.message, "😀")])
        // Code points, as Python's `len()` of a str counts them.
        #expect(try EngineIO3Codec.decodePayload(Array("2:4😀1:2".utf8)) == [.text(.message, "😀"), EngineIOPacket(.ping)])
    }

    @Test func outgoingJSONIsASCIISoEveryCountAgrees() throws {
        let encoded = SocketIOCodec.encode(
            SocketIOPacket(.event, namespace: "/ns", id: 7, data: ["alert", "é€😀", ["k": "ü"]]), prefix: UInt8(ascii: "4"))
        var payload: [UInt8] = []
        EngineIO3Codec.appendPayloadRecord(encoded.text, isBinary: false, into: &payload)
        let expected = #"42/ns,7["alert","\u00e9\u20ac\ud83d\ude00",{"k":"\u00fc"}]"#
        #expect(text(payload) == "\(expected.utf8.count):\(expected)")
        #expect(payload.allSatisfy { $0 < 0x80 })
        // Still the same packet once decoded.
        let decoded = try EngineIO3Codec.decodePayload(payload)
        let packet = try SocketIOCodec.decode(Array(decoded[0].payload))
        #expect(packet.data == ["alert", "é€😀", ["k": "ü"]])
        // Binary event headers are skipped, namespaces kept as they are.
        #expect(EngineIO3Codec.socketIOPayloadStart(Array(#"451-/a,3[{"_placeholder":true,"num":0}]"#.utf8)) == 8)
        #expect(EngineIO3Codec.socketIOPayloadStart(Array("42[1]".utf8)) == 2)
        #expect(EngineIO3Codec.socketIOPayloadStart(Array("2probe".utf8)) == nil)
        #expect(text(EngineIO3Codec.escapingNonASCIIJSON(Array(#"42/ñ,["é"]"#.utf8))) == #"42/ñ,["\u00e9"]"#)
    }

    @Test(arguments: [
        "x", "5", "5:", "3:4a", "2:4abc", "1:4x:", "a:4", "12345678901:4", "4:b4@@", "2:x1",
    ])
    func rejectsMalformedTextPayloads(payload: String) {
        #expect(throws: EngineIOParseError.self) { try EngineIO3Codec.decodePayload(Array(payload.utf8)) }
    }

    @Test(arguments: [
        [0x00, 0x06] as [UInt8], [0x00, 0xFF], [0x00, 0x09, 0xFF, 0x34], [0x01, 0x01, 0xFF, 0x09], [0x00, 0x0A, 0xFF],
        [0x00, 0x01, 0xFF, 0x34, 0x02, 0x01, 0xFF, 0x32],
    ])
    func rejectsMalformedBinaryPayloads(payload: [UInt8]) {
        #expect(throws: EngineIOParseError.self) { try EngineIO3Codec.decodePayload(payload) }
    }

    @Test func webSocketBinaryFramesCarryTheTypeByte() throws {
        #expect(EngineIO3Codec.webSocketBinaryFrame([1, 2, 3]) == [4, 1, 2, 3])
        #expect(try EngineIO3Codec.decodeWebSocketBinary([4, 1, 2, 3]) == .binaryMessage([1, 2, 3]))
        #expect(try EngineIO3Codec.decodeWebSocketBinary([4]) == .binaryMessage([]))
        #expect(throws: EngineIOParseError.self) { try EngineIO3Codec.decodeWebSocketBinary([]) }
        #expect(throws: EngineIOParseError.self) { try EngineIO3Codec.decodeWebSocketBinary([9, 1]) }
    }

    @Test func recognisesTheUnsupportedVersionAnswers() {
        // python-engineio 4.x (and the 3.x server when sent EIO=4).
        #expect(EngineIO3Codec.isUnsupportedVersionAnswer(
            status: 400, body: #""The client is using an unsupported version of the Socket.IO or Engine.IO protocols""#))
        // engine.io (Node) without allowEIO3.
        #expect(EngineIO3Codec.isUnsupportedVersionAnswer(status: 400, body: #"{"code":5,"message":"Unsupported protocol version"}"#))
        #expect(EngineIO3Codec.isUnsupportedVersionAnswer(status: 400, body: #"{"code":5}"#))
        #expect(!EngineIO3Codec.isUnsupportedVersionAnswer(status: 400, body: #""Invalid session abc""#))
        #expect(!EngineIO3Codec.isUnsupportedVersionAnswer(status: 500, body: "unsupported version"))
        #expect(!EngineIO3Codec.isUnsupportedVersionAnswer(status: 400, body: #"{"code":3,"message":"Bad request"}"#))
    }
}

struct SocketIO2Tests {
    @Test func connectCarriesTheAuthAsAQuery() {
        #expect(String(decoding: SocketIO2.connectPacket(namespace: "/admin", auth: nil, prefix: UInt8(ascii: "4")), as: UTF8.self) == "40/admin,")
        let auth: JSONValue = ["token": "a b&c", "n": 1, "ok": true, "o": ["x": 1], "none": .null]
        #expect(String(decoding: SocketIO2.connectPacket(namespace: "/admin", auth: auth), as: UTF8.self)
            == "0/admin?token=a%20b%26c&n=1&ok=true&o=%7B%22x%22%3A1%7D&none=,")
        // What python-socketio 4.x makes of it: the namespace without the query.
        let packet = try? SocketIOCodec.decode(Array("0/admin,".utf8))
        #expect(packet?.namespace == "/admin")
        #expect(SocketIO2.queryParameters(["token": "s"]).map { "\($0.name)=\($0.value)" } == ["token=s"])
        #expect(SocketIO2.queryParameters(nil).isEmpty)
    }

    @Test func errorPacketsInEveryShape() throws {
        // The v5 decoder refuses these; a v2 server sends them.
        #expect(SocketIO2.decodeError(Array(#"4/admin,"Not authorized""#.utf8)) == SocketIOPacket(.connectError, namespace: "/admin", data: "Not authorized"))
        #expect(SocketIO2.decodeError(Array("4/admin".utf8)) == SocketIOPacket(.connectError, namespace: "/admin"))
        #expect(SocketIO2.decodeError(Array("4/admin?x=1,".utf8)) == SocketIOPacket(.connectError, namespace: "/admin"))
        #expect(SocketIO2.decodeError(Array(#"4/a,["No",{"r":1}]"#.utf8)) == SocketIOPacket(.connectError, namespace: "/a", data: ["No", ["r": 1]]))
        #expect(SocketIO2.decodeError(Array("4".utf8)) == SocketIOPacket(.connectError))
        #expect(SocketIO2.decodeError(Array("4/a,not json".utf8)) == SocketIOPacket(.connectError, namespace: "/a", data: "not json"))
        #expect(SocketIO2.decodeError(Array("2[]".utf8)) == nil)
    }

    @Test func refusalsInEveryShape() {
        let cases: [(payload: JSONValue?, message: String, data: JSONValue?)] = [
            (.string("Not authorized"), "Not authorized", nil),
            (["message": "No", "data": ["r": 1]], "No", ["r": 1]),
            (["Not authorized", ["reason": "bad token"]], "Not authorized", ["reason": "bad token"]),
            (["a", "b", "c"], "a", ["b", "c"]),
            ([1, 2], "refused", [1, 2]),
            (["x": 1], "refused", ["x": 1]),
            (.null, "refused", nil),
            (nil, "refused", nil),
        ]
        for c in cases {
            let r = SocketIO2.refusal(c.payload)
            #expect(r.message == c.message, "\(String(describing: c.payload))")
            #expect(r.data == c.data, "\(String(describing: c.payload))")
        }
    }

}

/// Seeded fuzzing of the Engine.IO 3 / Socket.IO v2 decoders: nothing may trap, and what decodes
/// must encode and decode again to as many packets.
struct EngineIO3FuzzTests {
    static let corpus: [[UInt8]] = [
        Array(#"107:0{"sid":"fdf45e253eb442f8aabf3baa7ac40ddf","upgrades":["websocket"],"pingTimeout":2000,"pingInterval":1000}2:40"#.utf8),
        Array("6:4hello10:b4AQIDBA==1:31:6".utf8), Array("2:4€4:4€5:4😀2:4😀".utf8),
        Array(#"35:42["echoed",["\u00e9\ud83d\ude00"]]"#.utf8),
        [0x00, 0x06, 0xFF, 0x34, 0x68, 0x65, 0x6C, 0x6C, 0x6F, 0x01, 0x05, 0xFF, 0x04, 0x01, 0x02, 0x03, 0x04],
        Array(#"4/admin,["Not authorized",{"r":1}]"#.utf8), Array("4/admin?x=1,".utf8),
    ]

    @Test func decodersNeverTrap() throws {
        var rng = SplitMix64(state: 0xE103_3D3C)
        var decoded = 0
        for i in 0..<50_000 {
            let input: [UInt8]
            if i % 5 == 0 {
                input = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                input = DecoderFuzzTests.mutate(Self.corpus.randomElement(using: &rng)!, &rng)
            }
            if let packets = try? EngineIO3Codec.decodePayload(input) {
                decoded += 1
                // Text the client writes is valid UTF-8 (it comes from Swift strings); counts of
                // malformed text cannot be matched by a reader that does not know where it ends.
                guard packets.allSatisfy({ $0.isBinary || String(validating: $0.payload, as: UTF8.self) != nil }) else { continue }
                let encoded = EngineIO3Codec.encodePayload(packets)
                let again = try? EngineIO3Codec.decodePayload(encoded)
                #expect(again?.count == packets.count, "input \(input), encoded \(encoded)")
            }
        }
        for i in 0..<20_000 {
            var input = (0..<Int.random(in: 0...32, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if i % 2 == 0 { input = Array("42".utf8) + input }
            _ = try? EngineIO3Codec.decodeWebSocketBinary(input)
            _ = SocketIO2.decodeError(input)
            _ = EngineIO3Codec.escapingNonASCIIJSON(input)
        }
        #expect(decoded > 1000)
    }
}
