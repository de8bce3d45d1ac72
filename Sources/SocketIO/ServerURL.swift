/// The parts of the server URL the transports need.
struct ServerURL: Sendable, Equatable {
    var secure: Bool
    var host: String
    var port: Int
    /// The query of the URL as written (without `?`), may be empty.
    var query: String

    init(_ text: String) throws(SocketIOError) {
        guard let colon = text.firstIndex(of: ":"), text[colon...].hasPrefix("://") else {
            throw .invalidURL("\(text): no scheme")
        }
        let scheme = text[..<colon].lowercased()
        var rest = text[text.index(colon, offsetBy: 3)...]
        switch scheme {
        case "http", "ws": secure = false
        case "https", "wss": secure = true
        default: throw .invalidURL("\(text): scheme must be http, https, ws or wss")
        }
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        var q = ""
        if let qm = rest.firstIndex(of: "?") {
            q = String(rest[rest.index(after: qm)...])
            rest = rest[..<qm]
        }
        query = q
        var authority = rest
        if let slash = rest.firstIndex(of: "/") { authority = rest[..<slash] }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var hostPart = authority
        var portValue = secure ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidURL("\(text): bad IPv6 address") }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw .invalidURL("\(text): bad port") }
                portValue = p
            } else if !after.isEmpty {
                throw .invalidURL("\(text): bad authority")
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else {
                throw .invalidURL("\(text): bad port")
            }
            portValue = p
        }
        guard !hostPart.isEmpty else { throw .invalidURL("\(text): no host") }
        host = String(hostPart)
        port = portValue
    }

    /// The `Host` header value.
    var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return (secure && port == 443) || (!secure && port == 80) ? h : "\(h):\(port)"
    }

    /// True when the host is an IP literal (no SNI then).
    var hostIsIPAddress: Bool {
        host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
    }
}

/// Percent-encodes a query component.
func percentEncodeQuery(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            let hex = Array("0123456789ABCDEF".unicodeScalars)
            out.unicodeScalars.append("%")
            out.unicodeScalars.append(hex[Int(b >> 4)])
            out.unicodeScalars.append(hex[Int(b & 0xF)])
        }
    }
    return out
}

/// Cookies the server set, kept for the whole client life and sent on every request of both
/// transports (sticky sessions behind load balancers). Only name and value are kept; a cookie set
/// with `Max-Age=0` or an empty value is removed. Accessed on the event loop only.
struct CookieJar {
    private(set) var cookies: [(name: String, value: String)] = []

    mutating func store(setCookie header: String) {
        let parts = header.split(separator: ";", omittingEmptySubsequences: false)
        guard let first = parts.first, let eq = first.firstIndex(of: "=") else { return }
        let name = first[..<eq].trimmingSpaces()
        let value = first[first.index(after: eq)...].trimmingSpaces()
        guard !name.isEmpty else { return }
        var expired = value.isEmpty
        for attribute in parts.dropFirst() {
            let a = attribute.trimmingSpaces().lowercased()
            if a.hasPrefix("max-age=") {
                if let n = Int(a.dropFirst(8)), n <= 0 { expired = true }
            }
        }
        cookies.removeAll { $0.name == name }
        if !expired { cookies.append((name, value)) }
    }

    /// The `Cookie` header value, or nil when there are none.
    var header: String? {
        cookies.isEmpty ? nil : cookies.map { "\($0.name)=\($0.value)" }.joined(separator: "; ")
    }
}
