import Testing
@testable import SocketIO

struct PlaceholderTests {
    @Test func builds() { #expect(Bool(true)) }
}
