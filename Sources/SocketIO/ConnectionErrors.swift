import NIOCore
import NIOPosix
import NIOSSL
import SIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Connection failures as sentences that name the cause and the fix: no library type names, no
/// build paths. Used for every error the client reports (logs, systemd STATUS=, the CLI).
enum ConnectionErrorWording {
    /// A TLS failure in words, or nil when `error` is not one. `host`/`port`: the server tried.
    /// `certificate`: the server's certificate, when the handshake got that far.
    static func tls(_ error: any Error, host: String, port: Int, certificate: NIOSSLCertificate?) -> String? {
        let server = port == 0 ? "the server" : (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        if let extra = error as? NIOSSLExtraError {
            guard extra == .failedToValidateHostname else {
                return "TLS with \(server) failed: \(words(of: "\(extra)"))"
            }
            var text = "the TLS certificate of \(server) does not name \(host)"
            if let leaf = certificate {
                let names = subjectNames(leaf)
                text += names.isEmpty ? " (it holds no subject alternative names)" : "; it is for \(names.joined(separator: ", "))"
            }
            return text + ": use a name the certificate holds in the server URL, or give the server a certificate for \(host)"
        }
        let reason: String
        switch error {
        case let e as NIOSSLError:
            switch e {
            case .handshakeFailed(let boring): reason = "\(boring)"
            case .uncleanShutdown:
                return closedDuringHandshake(server)
            case .noCertificateToValidate:
                return "\(server) sent no TLS certificate"
            default: reason = "\(e)"
            }
        case let e as BoringSSLError:
            reason = "\(e)"
        default:
            return nil
        }
        // A server that accepts no version the client offers often just closes (OpenSSL does).
        if reason.contains(text: "EOF during handshake") { return closedDuringHandshake(server) }
        let code = boringSSLReason(reason)
        switch code {
        case "CERTIFICATE_VERIFY_FAILED":
            return certificateFailure(server: server, certificate: certificate)
        case "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_TOO_LARGE":
            return "\(server) did not answer in TLS (a plain http server?): use an http:// or ws:// URL for it, or the server's TLS port"
        case "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "PROTOCOL_VERSION", "WRONG_SSL_VERSION":
            return "\(server) and the agent have no TLS version in common: the agent speaks TLS 1.2 and 1.3; the server must offer one of them"
        case "NO_SHARED_CIPHER", "SSLV3_ALERT_HANDSHAKE_FAILURE", "NO_CIPHERS_AVAILABLE", "NO_COMMON_SIGNATURE_ALGORITHMS":
            return "\(server) and the agent have no TLS cipher suite in common (the server's TLS settings are too old or too narrow)"
        case "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED":
            return "\(server) refused the TLS connection (\(code.lowercased().replacingUnderscores())): it may want a client certificate, which the agent does not send"
        default:
            return "TLS handshake with \(server) failed" + (code.isEmpty ? "" : " (\(code.lowercased().replacingUnderscores()))") 
        }
    }

    private static func closedDuringHandshake(_ server: String) -> String {
        "\(server) closed the connection during the TLS handshake: most likely the two have no TLS version in common "
            + "(the agent speaks TLS 1.2 and 1.3; the server must offer one of them), or it is not a TLS server"
    }

    /// Why verification failed, from the server's certificate: its dates, or else its issuer
    /// is not trusted.
    static func certificateFailure(server: String, certificate: NIOSSLCertificate?, now: time_t = time(nil)) -> String {
        guard let failed = certificate else {
            return "the TLS certificate of \(server) is not trusted: give the CA that signed it in server.tls.ca_file (--ca-file on the command line)"
        }
        let names = subjectNames(failed)
        let whose = names.isEmpty ? "the TLS certificate of \(server)" : "the TLS certificate of \(server) (for \(names.joined(separator: ", ")))"
        let from = date(failed.notValidBefore), until = date(failed.notValidAfter)
        if now > failed.notValidAfter {
            return "\(whose) expired on \(until) (valid from \(from) to \(until)): the server needs a renewed certificate, or this device's clock is wrong"
        }
        if now < failed.notValidBefore {
            return "\(whose) is not valid before \(from) (valid from \(from) to \(until)): this device's clock is behind, or the certificate was issued for later"
        }
        return "\(whose) is not signed by a CA the agent trusts: give the CA's certificate in server.tls.ca_file (--ca-file on the command line)"
    }

    /// DNS names and IP addresses of the certificate's subject alternative names (at most 16,
    /// each sanitised: they come from the server).
    static func subjectNames(_ certificate: NIOSSLCertificate) -> [String] {
        var out: [String] = []
        for name in certificate._subjectAlternativeNames() {
            guard out.count < 16 else { break }
            switch name.nameType {
            case .dnsName:
                out.append(OutsideText.escaped(utf8: Array(name.contents)))
            case .ipAddress:
                let bytes = Array(name.contents)
                if let text = addressText(bytes) { out.append(text) }
            default:
                break
            }
        }
        return out
    }

    private static func addressText(_ bytes: [UInt8]) -> String? {
        let family = bytes.count == 4 ? AF_INET : bytes.count == 16 ? AF_INET6 : -1
        guard family >= 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: 64)
        let ok = bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil }
        guard ok else { return nil }
        let length = buffer.firstIndex(of: 0) ?? buffer.count
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `YYYY-MM-DD HH:MM:SS UTC`.
    static func date(_ t: time_t) -> String {
        var seconds = t
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ n: Int32, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2)) "
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)) UTC"
    }

    /// BoringSSL's reason code (`CERTIFICATE_VERIFY_FAILED`) from an error's text, without the
    /// file and line it carries.
    static func boringSSLReason(_ text: String) -> String {
        // "error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at /path:320"
        guard let marker = text.firstRange(ofText: "OPENSSL_internal:") else { return "" }
        let isCodeCharacter: (Unicode.Scalar) -> Bool = { c in
            (c.value >= 0x41 && c.value <= 0x5A) || (c.value >= 0x30 && c.value <= 0x39) || c == "_"
        }
        return String(String.UnicodeScalarView(text[marker.upperBound...].unicodeScalars.prefix(while: isCodeCharacter)))
    }

    /// Text of an error from a library, cut to words: no type prefixes or file paths.
    private static func words(of text: String) -> String {
        let code = boringSSLReason(text)
        if !code.isEmpty { return code.lowercased().replacingUnderscores() }
        if let dot = text.firstIndex(of: "."), text[..<dot].allSatisfy({ $0.isLetter || $0.isNumber }) {
            return String(text[text.index(after: dot)...])
        }
        return text
    }

    /// A failure to connect (before any TLS) in words, or nil when `error` is not one.
    static func connect(_ error: any Error) -> String? {
        if let e = error as? NIOConnectionError {
            let server = (e.host.contains(":") ? "[\(e.host)]" : e.host) + ":\(e.port)"
            if let first = e.connectionErrors.first {
                return connect(first.error, server: server)
            }
            // No address was tried: the name gave none (an error, or empty answers).
            return "the name \(OutsideText.escaped(e.host)) does not resolve (DNS found no address): check the host in the server URL and the device's DNS settings"
        }
        if let e = error as? ChannelError, case .connectTimeout(let t) = e {
            return "connecting timed out after \(seconds(t)): no answer from the server (host down, or a firewall drops the packets)"
        }
        if error is SocketAddressError {
            return "the server's name does not resolve (DNS found no address): check the host in the server URL and the device's DNS settings"
        }
        return nil
    }

    private static func connect(_ error: any Error, server: String) -> String {
        if let e = error as? ChannelError, case .connectTimeout(let t) = e {
            return "connecting to \(server) timed out after \(seconds(t)): no answer (host down, or a firewall drops the packets)"
        }
        if let e = error as? IOError {
            switch e.errnoCode {
            case ECONNREFUSED:
                return "connection to \(server) refused: nothing listens on that port (or a firewall rejects it)"
            case ETIMEDOUT:
                return "connecting to \(server) timed out: no answer (host down, or a firewall drops the packets)"
            case ENETUNREACH, EHOSTUNREACH:
                return "\(server) is unreachable: no route to it from this device"
            default:
                return "cannot connect to \(server): \(errnoText(e.errnoCode))"
            }
        }
        return "cannot connect to \(server)"
    }

    /// The client's own deadline for the connection and the Engine.IO handshake passed.
    static func handshakeTimeout(_ target: ConnectionTarget) -> String {
        let server = (target.url.host.contains(":") ? "[\(target.url.host)]" : target.url.host) + ":\(target.url.port)"
        return "connecting to \(server) timed out after \(seconds(target.connectTimeout)): no answer "
            + "(host down, a firewall that drops the packets, or a server that accepts and never replies)"
    }

    private static func seconds(_ t: TimeAmount) -> String {
        let ms = t.nanoseconds / 1_000_000
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(Double(ms) / 1000) s"
    }
}

func errnoText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "error \(code)" }
    return String(cString: text)
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        String(unicodeScalars.map { $0 == "_" ? " " : Character($0) })
    }
}

/// Replaces TLS errors with ``ConnectionErrorWording``'s sentences as they pass (right after
/// NIOSSL's handler), with the server's certificate when the handshake got that far (BoringSSL
/// keeps it until the connection closes, which comes after the error).
final class TLSErrorWording: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let host: String
    private let port: Int
    private let tls: NIOSSLClientHandler

    init(host: String, port: Int, tls: NIOSSLClientHandler) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let text = ConnectionErrorWording.tls(error, host: host, port: port, certificate: tls.peerCertificate) {
            context.fireErrorCaught(SocketIOError.transport(text))
        } else {
            context.fireErrorCaught(error)
        }
    }
}
