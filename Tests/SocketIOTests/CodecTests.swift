import SIOCore
import Testing

@testable import SocketIO

struct EngineIOCodecTests {
    @Test(arguments: [
        ("2", EngineIOPacket(.ping)),
        ("2probe", EngineIOPacket.text(.ping, "probe")),
        ("3", EngineIOPacket(.pong)),
        ("4hello", EngineIOPacket.text(.message, "hello")),
        ("6", EngineIOPacket(.noop)),
        ("1", EngineIOPacket(.close)),
    ])
    func decodesAndEncodesTextPackets(text: String, packet: EngineIOPacket) throws {
        #expect(try EngineIOCodec.decodeText(Array(text.utf8)) == packet)
        var out: [UInt8] = []
        EngineIOCodec.encodeText(packet, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == text)
    }

    @Test func decodesPollingPayloadsWithBinary() throws {
        let payload = Array("4hello\u{1e}2\u{1e}bAQIDBA==\u{1e}4world\u{1e}b".utf8)
        let packets = try EngineIOCodec.decodePayload(payload)
        #expect(packets == [.text(.message, "hello"), EngineIOPacket(.ping), .binaryMessage([1, 2, 3, 4]), .text(.message, "world"), .binaryMessage([])])
        #expect(EngineIOCodec.encodePayload(packets) == payload)
    }

    @Test(arguments: ["", "x", "9", "4a\u{1e}", "4a\u{1e}\u{1e}4b", "b@@@", "bAQI=A", "\u{1e}"])
    func rejectsMalformedPayloads(text: String) {
        #expect(throws: EngineIOParseError.self) { try EngineIOCodec.decodePayload(Array(text.utf8)) }
    }

    @Test func readsTheHandshake() throws {
        let open = #"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        let h = try EngineIOHandshake(payload: Array(open.utf8))
        #expect(h == EngineIOHandshake(sid: "lv_VI97HAXpY6yYWAAAC", upgrades: ["websocket"], pingInterval: 25000, pingTimeout: 20000, maxPayload: 1_000_000))
        #expect(h.livenessTimeout == .seconds(45))
        // pingInterval 0 (python truncates fractional seconds) is tolerated.
        let zero = try EngineIOHandshake(payload: Array(#"{"sid":"a","pingInterval":0,"pingTimeout":0}"#.utf8))
        #expect(zero.livenessTimeout == .seconds(1))
    }

    @Test(arguments: ["", "[]", "{}", #"{"sid":""}"#, #"{"sid":1}"#, #"{"sid":"a","pingInterval":-1}"#, #"{"sid":"a","pingTimeout":"x"}"#, "{"])
    func rejectsBadHandshakes(text: String) {
        #expect(throws: EngineIOParseError.self) { try EngineIOHandshake(payload: Array(text.utf8)) }
    }
}

struct SocketIOCodecTests {
    @Test(arguments: [
        ("0", SocketIOPacket(.connect)),
        (#"0{"token":"123"}"#, SocketIOPacket(.connect, data: ["token": "123"])),
        (#"0/admin,{"token":"abc"}"#, SocketIOPacket(.connect, namespace: "/admin", data: ["token": "abc"])),
        ("1", SocketIOPacket(.disconnect)),
        ("1/admin,", SocketIOPacket(.disconnect, namespace: "/admin")),
        (#"2["hey","Jude"]"#, SocketIOPacket(.event, data: ["hey", "Jude"])),
        (#"2/admin,["bar"]"#, SocketIOPacket(.event, namespace: "/admin", data: ["bar"])),
        (#"212["foo"]"#, SocketIOPacket(.event, id: 12, data: ["foo"])),
        (#"312["bar"]"#, SocketIOPacket(.ack, id: 12, data: ["bar"])),
        (#"3/admin,13["bar"]"#, SocketIOPacket(.ack, namespace: "/admin", id: 13, data: ["bar"])),
        ("312[]", SocketIOPacket(.ack, id: 12, data: [])),
        (#"4{"message":"Not authorized"}"#, SocketIOPacket(.connectError, data: ["message": "Not authorized"])),
        (#"4/random,"Unable to connect""#, SocketIOPacket(.connectError, namespace: "/random", data: "Unable to connect")),
    ])
    func roundTrips(text: String, packet: SocketIOPacket) throws {
        #expect(try SocketIOCodec.decode(text) == packet)
        let encoded = SocketIOCodec.encode(packet)
        #expect(String(decoding: encoded.text, as: UTF8.self) == text)
        #expect(encoded.attachments.isEmpty)
    }

    @Test func acceptsANamespaceWithoutComma() throws {
        #expect(try SocketIOCodec.decode("0/custom") == SocketIOPacket(.connect, namespace: "/custom"))
    }

    @Test func encodesBinaryDepthFirstAndReassembles() throws {
        let args: JSONValue = ["baz", ["a": .binary([1, 2]), "b": [.binary([3])]], .binary([])]
        let encoded = SocketIOCodec.encode(SocketIOPacket(.event, namespace: "/admin", id: 7, data: args), prefix: UInt8(ascii: "4"))
        #expect(String(decoding: encoded.text, as: UTF8.self)
            == #"453-/admin,7["baz",{"a":{"_placeholder":true,"num":0},"b":[{"_placeholder":true,"num":1}]},{"_placeholder":true,"num":2}]"#)
        #expect(encoded.attachments == [[1, 2], [3], []])
        let header = try SocketIOCodec.decode(Array(encoded.text.dropFirst()))
        #expect(header.type == .binaryEvent && header.attachmentCount == 3 && header.id == 7)
        var assembler = SocketIOBinaryAssembler()
        #expect(try assembler.start(header) == nil)
        #expect(try assembler.add([1, 2]) == nil)
        #expect(try assembler.add([3]) == nil)
        let done = try assembler.add([])
        #expect(done == SocketIOPacket(.event, namespace: "/admin", id: 7, data: args))
        #expect(!assembler.isAssembling)
    }

    @Test func binaryAckAndZeroAttachments() throws {
        let ack = SocketIOCodec.encode(SocketIOPacket(.ack, id: 15, data: ["bar", .binary([9])]))
        #expect(String(decoding: ack.text, as: UTF8.self) == #"61-15["bar",{"_placeholder":true,"num":0}]"#)
        var assembler = SocketIOBinaryAssembler()
        let zero = try SocketIOCodec.decode(#"50-["a",1]"#)
        #expect(try assembler.start(zero) == SocketIOPacket(.event, data: ["a", 1]))
    }

    @Test(arguments: [
        "", "7", "x", "2", "2{}", "2[]", "2[1.5e999", #"2["a""#, "2[null]", "3[]", "31{}", "0[]", "0\"x\"", "1{}",
        "4", "4[]", "4 1", #"5["a"]"#, #"5-["a"]"#, #"5x-["a"]"#, "599999999-[\"a\"]", "21234567890123456789[\"a\"]",
        "2/ns,garbage", "6-1[]",
    ])
    func rejectsMalformedPackets(text: String) {
        #expect(throws: SocketIOParseError.self) { try SocketIOCodec.decode(text) }
    }

    @Test func rejectsBadAttachments() throws {
        var assembler = SocketIOBinaryAssembler()
        #expect(throws: SocketIOParseError.self) { try assembler.add([1]) }
        let header = try SocketIOCodec.decode(#"51-["a",{"_placeholder":true,"num":5}]"#)
        #expect(try assembler.start(header) == nil)
        #expect(throws: SocketIOParseError.self) { try assembler.add([1]) }
    }
}

struct ClientPartsTests {
    @Test func parsesServerURLs() throws {
        let a = try ServerURL("https://example.com/x?token=1&b=2")
        #expect(a.secure && a.host == "example.com" && a.port == 443 && a.query == "token=1&b=2" && a.hostHeader == "example.com")
        let b = try ServerURL("ws://127.0.0.1:3000")
        #expect(!b.secure && b.port == 3000 && b.hostIsIPAddress && b.hostHeader == "127.0.0.1:3000")
        let c = try ServerURL("wss://[::1]:8443/")
        #expect(c.host == "::1" && c.port == 8443 && c.hostHeader == "[::1]:8443")
        for bad in ["", "example.com", "ftp://x", "http://", "http://h:0", "http://h:99999", "http://h:x", "http://[::1"] {
            #expect(throws: SocketIOError.self) { try ServerURL(bad) }
        }
    }

    @Test func keepsCookies() {
        var jar = CookieJar()
        #expect(jar.header == nil)
        jar.store(setCookie: "sticky=node-7; Path=/; HttpOnly")
        jar.store(setCookie: "io=abc")
        jar.store(setCookie: "sticky=node-8")
        #expect(jar.header == "io=abc; sticky=node-8")
        jar.store(setCookie: "io=gone; Max-Age=0")
        jar.store(setCookie: "garbage")
        #expect(jar.header == "sticky=node-8")
    }

    @Test func backoffDoublesWithinBoundsAndCap() {
        let policy = ReconnectionPolicy()
        #expect(policy.delay(forAttempt: 1, random: 0) == .seconds(1))
        for attempt in 1...12 {
            for r in stride(from: 0.0, to: 1.0, by: 0.05) {
                let d = policy.delay(forAttempt: attempt, random: r)
                #expect(d >= .milliseconds(500) && d <= .seconds(5))
            }
        }
        #expect(policy.delay(forAttempt: 3, random: 0) == .seconds(4))
        #expect(policy.delay(forAttempt: 10, random: 0) == .seconds(5))
        let fixed = ReconnectionPolicy(delay: .seconds(2), maxDelay: .seconds(2), randomization: 0)
        #expect(fixed.delay(forAttempt: 7) == .seconds(2))
    }

    @Test func percentEncodesQueries() {
        #expect(percentEncodeQuery("a b&c=é") == "a%20b%26c%3D%C3%A9")
    }
}

/// EVENTs written straight from their parts, for emits: the same text as the list encoded whole.
struct EventEncodingTests {
    @Test func sameTextAsTheWholeList() {
        let argSets: [[JSONValue]] = [
            [], [7], ["x"], [["level": 3, "seq": 12]], [.null, true, 1.5, -0.0, "é\u{1}\"", [1, [2, []]]],
            [["blob": .binary([1, 2, 3])], "after"], [.binary([])],
        ]
        for name in ["alert", "", "a\"b", "événement"] {
            for namespace in ["/", "/admin", ""] {
                for id in [nil, 0, 42] as [Int?] {
                    for args in argSets {
                        for prefix in [nil, UInt8(ascii: "4")] as [UInt8?] {
                            var list: [JSONValue] = [.string(name)]
                            list.append(contentsOf: args)
                            let whole = SocketIOCodec.encode(SocketIOPacket(.event, namespace: namespace, id: id, data: .array(list)), prefix: prefix)
                            let parts = SocketIOCodec.encodeEvent(name, args, namespace: namespace, id: id, prefix: prefix)
                            #expect(parts.text == whole.text, "\(name) \(namespace) \(String(describing: id)) \(args)")
                            #expect(parts.attachments == whole.attachments)
                        }
                    }
                }
            }
        }
    }
}
