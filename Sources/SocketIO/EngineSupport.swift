import Logging
import NIOCore
import NIOHTTP1

/// Settings an Engine.IO session needs, derived once from the client configuration.
struct EngineSettings: Sendable {
    var target: ConnectionTarget
    var path: String
    var mode: TransportMode
    /// URL query and configured query, already encoded, joined by `&` (may be empty).
    var baseQuery: String
    var headers: [(name: String, value: String)]
    var upgradeTimeout: TimeAmount
    /// The most bytes accepted in one polling body, WebSocket message or packet's attachments,
    /// whatever the server's maxPayload says.
    var payloadCeiling: Int = 1_000_000
    /// The Engine.IO revision this session speaks.
    var revision: EngineIORevision = .eio4
    /// Engine.IO 3 only: the namespaces' auth as query parameters, encoded (may be empty).
    var legacyAuthQuery: String = ""
}

/// Cookies shared by every request of a client (loop only).
final class CookieStore {
    var jar = CookieJar()
    private var warned = false

    func absorb(_ headers: HTTPHeaders, logger: Logger) {
        for value in headers["Set-Cookie"] {
            if !jar.store(setCookie: value), !warned {
                warned = true
                logger.warning("ignoring cookies beyond the jar's limits", metadata: [
                    "max_cookies": "\(CookieJar.maxCookies)", "max_cookie_bytes": "\(CookieJar.maxCookieBytes)",
                ])
            }
        }
    }
}

/// One encoded Engine.IO packet ready for a transport: text bytes include the type digit.
package struct OutgoingFrame: Sendable, Equatable {
    package var bytes: [UInt8]
    package var isBinary: Bool

    package init(bytes: [UInt8], isBinary: Bool) {
        self.bytes = bytes
        self.isBinary = isBinary
    }
}

/// The first bytes of an HTTP body for a log line or an error: at most `limit` bytes, control
/// characters escaped, and the full size when it was cut.
func describeBody(_ body: ByteBuffer, limit: Int = 200) -> String {
    let bytes = body.readableBytesView.prefix(limit)
    var text = ""
    for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
        if scalar.value < 0x20 || scalar.value == 0x7F {
            text += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
            text.unicodeScalars.append(scalar)
        }
    }
    if body.readableBytes > limit { text += "… (\(body.readableBytes) bytes)" }
    return text
}
