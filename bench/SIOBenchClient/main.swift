// Benchmark client: connects, says `ready`, answers every `tick` with a `tock` carrying the same
// index (from the event hook, on the event loop), exits on `done`.
// Usage: sio-bench-client URL websocket|polling|auto
import Logging
import NIOCore
import NIOPosix
import SocketIO
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
guard arguments.count >= 3, let mode = TransportMode(rawValue: arguments[2]) else {
    print("usage: sio-bench-client URL websocket|polling|auto")
    exit(2)
}
var logger = Logger(label: "bench") { StreamLogHandler.standardError(label: $0) }
logger.logLevel = .warning
let loop = MultiThreadedEventLoopGroup.singleton.next()
let finished = loop.makePromise(of: Void.self)
let holder = ClientHolder()
let client = SocketIOClient(
    configuration: SocketIOClientConfiguration(url: arguments[1], transports: mode),
    eventLoop: loop,
    logger: logger
) { event in
    guard case .event(let e) = event else { return }
    switch e.name {
    case "tick":
        _ = holder.client?.send("tock", e.args)
    case "done":
        finished.succeed()
    default:
        break
    }
}
holder.client = client
client.connect()
try await client.waitUntilConnected(timeout: .seconds(30))
try await client.emit("ready", [])
try await finished.futureResult.get()
await client.disconnect()

final class ClientHolder: @unchecked Sendable {
    // Set once before connecting; read on the event loop afterwards.
    nonisolated(unsafe) var client: SocketIOClient?
}
