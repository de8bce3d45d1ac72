import NIOCore
import NIOPosix
import SIOCore

/// Which HTTP proxy the client uses.
public enum ProxySetting: Sendable, Equatable {
    /// `https_proxy` (for https/wss) or `http_proxy` (for http/ws), lower or upper case, unless
    /// `no_proxy`/`NO_PROXY` names the server (the default).
    case environment
    /// No proxy, whatever the environment says.
    case direct
    /// This proxy: `http://[user:password@]host[:port]` (the environment is not read).
    case url(String)
}

/// An HTTP proxy: where it is and, when given, the Basic credentials for it.
///
/// Its ``description`` never shows the credentials, so it can go into logs and errors.
public struct ProxyURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    var username: String?
    var password: String?

    /// Parses `http://[user:password@]host[:port]` (port 80 when left out; a value without a
    /// scheme is taken as http, as curl does). User and password may be percent-encoded.
    public init(_ text: String) throws(SocketIOError) {
        let trimmed = text.trimmingCharacters(in: " \t")
        var rest = Substring(trimmed)
        if let scheme = rest.firstRange(ofText: "://") {
            let name = rest[..<scheme.lowerBound].lowercased()
            guard name == "http" else {
                throw .invalidURL("proxy \(Self.redacted(text)): only http:// proxies are supported")
            }
            rest = rest[scheme.upperBound...]
        }
        if let (offset, character) = Self.unencodedReservedCharacter(inUserInfoOf: rest, within: trimmed) {
            let encoded = "%" + String(character.asciiValue ?? 0, radix: 16, uppercase: true)
            throw .invalidURL(
                "proxy \(Self.redacted(text)): the user name or password holds an unencoded '\(character)' "
                    + "(character \(offset + 1) of the URL); percent-encode it as \(encoded)")
        }
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<slash] }
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                username = percentDecode(userinfo[..<colon])
                password = percentDecode(userinfo[userinfo.index(after: colon)...])
            } else {
                username = percentDecode(userinfo)
                password = ""
            }
        }
        var hostPart = rest
        var portValue = 80
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw .invalidURL("proxy \(Self.redacted(text)): bad IPv6 address") }
            hostPart = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw .invalidURL("proxy \(Self.redacted(text)): bad port") }
                portValue = p
            } else if !after.isEmpty {
                throw .invalidURL("proxy \(Self.redacted(text)): bad address")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            hostPart = rest[..<colon]
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw .invalidURL("proxy \(Self.redacted(text)): bad port")
            }
            portValue = p
        }
        guard !hostPart.isEmpty else { throw .invalidURL("proxy \(Self.redacted(text)): no host") }
        host = String(hostPart)
        port = portValue
    }

    /// Where `authority` (what follows `scheme://`) puts a character that RFC 3986 does not allow
    /// unencoded in user info (`/ ? # [ ] @`) before its last `@`: the offset in `text`
    /// (characters) and the character. A password such as `pa/ss` would otherwise end the
    /// authority early, and the proxy would be a different host.
    static func unencodedReservedCharacter(inUserInfoOf authority: Substring, within text: String) -> (Int, Character)? {
        guard let at = authority.lastIndex(of: "@") else { return nil }
        for i in authority[..<at].indices where "/?#[]@".contains(authority[i]) {
            return (text.distance(from: text.startIndex, to: i), authority[i])
        }
        return nil
    }

    /// Where the user info of the proxy URL `text` holds an unencoded reserved character (the
    /// offset in `text`, in characters), for a configuration error's column.
    public static func reservedCharacterOffset(_ text: String) -> Int? {
        var rest = Substring(text)
        if let scheme = rest.firstRange(ofText: "://") { rest = rest[scheme.upperBound...] }
        return unencodedReservedCharacter(inUserInfoOf: rest, within: text)?.0
    }

    /// `http://host:port`, without credentials.
    public var description: String {
        "http://" + (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
    }

    /// The `Proxy-Authorization` value, when credentials were given.
    var authorization: String? {
        guard let username else { return nil }
        return "Basic " + Base64.encode(Array((username + ":" + (password ?? "")).utf8))
    }

    /// `text` with any user info replaced by `***`, for error messages.
    static func redacted(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@") else { return text }
        let start = text.firstRange(ofText: "://")?.upperBound ?? text.startIndex
        guard start <= at else { return text }
        return String(text[..<start]) + "***" + String(text[at...])
    }

    /// The proxy to use for `server`: the explicit one, none, or the environment's.
    static func resolve(_ setting: ProxySetting, for server: ServerURL, environment: [String: String]) throws(SocketIOError) -> ProxyURL? {
        switch setting {
        case .direct:
            return nil
        case .url(let text):
            return try ProxyURL(text)
        case .environment:
            let names = server.secure ? ["https_proxy", "HTTPS_PROXY"] : ["http_proxy", "HTTP_PROXY"]
            guard let text = names.lazy.compactMap({ environment[$0] }).first(where: { !$0.isEmpty }) else { return nil }
            let noProxy = environment["no_proxy"].flatMap { $0.isEmpty ? nil : $0 } ?? environment["NO_PROXY"] ?? ""
            if bypasses(noProxy, host: server.host, port: server.port) { return nil }
            return try ProxyURL(text)
        }
    }

    /// Whether `no_proxy` names `host`, as curl reads it. Entries are separated by commas or
    /// white space, case-insensitive:
    /// - `*` alone: every host;
    /// - a host name: that host and every name below it, at a dot boundary (`example.com` and
    ///   `.example.com` both match `example.com` and `a.example.com`, never `badexample.com`;
    ///   a leading `*.` is read as `.`);
    /// - an IP address (`192.168.0.1`, `::1`, `[::1]`): that address only, when the server is
    ///   given by that address (never by suffix: `0.1` does not match `192.168.0.1`);
    /// - a CIDR block (`10.0.0.0/8`, `fd00::/8`): every address in it.
    /// An entry with `:port` (`example.com:8443`, `[::1]:8443`) matches only that port. Names are
    /// not resolved: a host name never matches an address entry.
    static func bypasses(_ noProxy: String, host: String, port: Int) -> Bool {
        var host = host.lowercased()
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        host = host.trimmingCharacters(in: ".")
        let hostAddress = IPAddressBytes(host)
        for raw in noProxy.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" || $0 == "\n" }) {
            var entry = Substring(raw.lowercased())
            if entry == "*" { return true }
            var entryPort: Int?
            if entry.hasPrefix("[") {
                // [v6], [v6]:port, [v6]/bits
                guard let close = entry.firstIndex(of: "]") else { continue }
                let after = entry[entry.index(after: close)...]
                var inside = entry[entry.index(after: entry.startIndex)..<close]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()) else { continue }
                    entryPort = p
                } else if after.hasPrefix("/") {
                    inside = entry[entry.index(after: entry.startIndex)...].filter { $0 != "]" }[...]
                } else if !after.isEmpty {
                    continue
                }
                entry = inside
            } else if entry.filter({ $0 == ":" }).count == 1, let colon = entry.lastIndex(of: ":") {
                guard let p = Int(entry[entry.index(after: colon)...]) else { continue }
                entryPort = p
                entry = entry[..<colon]
            }
            if let entryPort, entryPort != port { continue }
            // An address or a block of addresses: compared as addresses, never as text.
            if let slash = entry.firstIndex(of: "/") {
                guard let hostAddress, let network = IPAddressBytes(String(entry[..<slash])),
                    let bits = Int(entry[entry.index(after: slash)...])
                else { continue }
                if hostAddress.isIn(network, prefixBits: bits) { return true }
                continue
            }
            if let address = IPAddressBytes(String(entry)) {
                if let hostAddress, hostAddress == address { return true }
                continue
            }
            if hostAddress != nil { continue }
            if entry.hasPrefix("*.") { entry = entry.dropFirst() }
            let name = String(entry).trimmingCharacters(in: ".")
            guard !name.isEmpty else { continue }
            if host == name || host.hasSuffix("." + name) { return true }
        }
        return false
    }
}

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address, parsed by `inet_pton`.
struct IPAddressBytes: Equatable {
    var bytes: [UInt8]

    init?(_ text: String) {
        if text.contains(":") {
            var a = in6_addr()
            guard inet_pton(AF_INET6, text, &a) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &a) { Array($0) }
        } else {
            // inet_pton takes only the dotted quad (not `10`, `10.1` or octal forms).
            var a = in_addr()
            guard inet_pton(AF_INET, text, &a) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &a) { Array($0) }
        }
    }

    /// Whether the first `prefixBits` bits equal `network`'s (same family; bits in range).
    func isIn(_ network: IPAddressBytes, prefixBits: Int) -> Bool {
        guard bytes.count == network.bytes.count, prefixBits >= 0, prefixBits <= bytes.count * 8 else { return false }
        var remaining = prefixBits
        for (a, b) in zip(bytes, network.bytes) {
            guard remaining > 0 else { return true }
            let take = min(remaining, 8)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if a & mask != b & mask { return false }
            remaining -= take
        }
        return true
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return s
    }
}

private func percentDecode(_ s: Substring) -> String {
    var bytes: [UInt8] = []
    var it = Array(s.utf8)[...]
    while let b = it.popFirst() {
        if b == UInt8(ascii: "%"), it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) {
            bytes.append(v)
            it = it.dropFirst(2)
        } else {
            bytes.append(b)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The process environment as a dictionary.
func processEnvironment() -> [String: String] {
    var out: [String: String] = [:]
    guard var p = environ as UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? else { return out }
    while let entry = p.pointee {
        let text = String(cString: entry)
        if let eq = text.firstIndex(of: "=") {
            out[String(text[..<eq])] = String(text[text.index(after: eq)...])
        }
        p += 1
    }
    return out
}
