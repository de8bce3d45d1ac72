import SIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Speaks systemd's notification protocol (sd_notify(3)) without libsystemd: each message is
/// one datagram of `KEY=VALUE` lines sent to the Unix socket named by `NOTIFY_SOCKET`. A name
/// that starts with `@` is in the abstract namespace.
///
/// Sending never blocks (`MSG_DONTWAIT`): a full or missing receiver drops the message, which
/// systemd's protocol allows. Safe from any thread.
public final class SystemdNotifier: Sendable {
    private let fd: Int32
    private let address: [UInt8]
    /// Half the watchdog period (`WATCHDOG_USEC`/2), when this process is the one to ping.
    public let watchdogInterval: Duration?

    /// Nil when `NOTIFY_SOCKET` is unset, empty or unusable (then nothing is sent, as sd_notify).
    public init?(environment: [String: String]) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty,
            path.hasPrefix("/") || path.hasPrefix("@")
        else { return nil }
        var bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        guard bytes.count < capacity else { return nil }
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
        #if canImport(Darwin)
        let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
        #else
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #endif
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.address = bytes
        self.watchdogInterval = Self.watchdogInterval(environment)
    }

    deinit {
        close(fd)
    }

    /// `WATCHDOG_USEC`/2, or nil when the watchdog is off or meant for another process
    /// (`WATCHDOG_PID`).
    static func watchdogInterval(_ environment: [String: String]) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"], !pid.isEmpty, Int32(pid) != getpid() { return nil }
        // Ranges: at least 1 ms, at most a day between pings.
        let half = min(max(usec / 2, 1000), 86_400_000_000)
        return .microseconds(Int64(half))
    }

    /// Sends `message` (lines of `KEY=VALUE`). Returns false when it could not be sent.
    @discardableResult
    public func send(_ message: String) -> Bool {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let count = address.count
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: address)
            if count < raw.count { raw[count] = 0 }
        }
        // Abstract names are exactly as long as given; paths include their terminating NUL.
        let length = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + count + (address[0] == 0 ? 0 : 1)
        let bytes = Array(message.utf8)
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), sa, socklen_t(length))
                }
            }
        }
        return sent == bytes.count
    }

    /// `STATUS=` text: one line (the shared sanitiser: no CR, LF, NEL, line separator or other
    /// control can end the line and start a forged `KEY=`), at most 256 bytes, cut on a scalar.
    static func statusLine(_ text: String) -> String {
        OutsideText.truncated(OutsideText.escaped(text), maxBytes: 256)
    }
}
