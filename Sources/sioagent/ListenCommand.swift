import Logging
import NIOCore
import NIOPosix
import SocketIO
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct ListenCommand: Command {
    static let spec = CommandSpec(
        name: "listen",
        abstract: "Print every incoming event as one JSON line; stays connected through reconnects.",
        arguments: [ClientOptions.urlArgument],
        options: ClientOptions.options + [
            .option("count", "Exit 0 after this many events."),
            .option("timeout", "Give up (exit 1) if not connected, or if --count events did not arrive, within this time (e.g. 10s)."),
        ]
    )

    var client: ClientOptions
    var count: Int?
    var timeout: DurationArgument?

    init(_ arguments: ParsedArguments) throws(ValidationError) {
        client = try ClientOptions(arguments)
        count = try arguments.value("count")
        timeout = try arguments.value("timeout")
    }

    func validate() throws(ValidationError) {
        try client.validate()
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        let namespaces = Set(client.namespaceList)
        let limit = count
        let done = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
        let seen = Mutex(0)
        let socket = SocketIOClient(configuration: client.configuration(), logger: client.logger()) { event in
            switch event {
            case .event(let e):
                guard namespaces.contains(e.namespace) else { return }
                let n = seen.withLock { n -> Int in
                    n += 1
                    return n
                }
                if let limit, n > limit { return }
                printLine(e.jsonLine)
                if let limit, n == limit { done.succeed() }
            case .connectError(let ns, let error):
                if case .connectionRefused = error {
                    done.fail(error)
                } else {
                    FileHandleStderr.write("sioagent: \(ns): \(error)\n")
                }
            case .disconnect(let ns, let reason) where reason == .serverDisconnect:
                FileHandleStderr.write("sioagent: \(ns): disconnected by the server\n")
            case .reconnectFailed:
                done.fail(SocketIOError.disconnected)
            default:
                break
            }
        }
        let events = socket.events
        socket.connect()
        do {
            for ns in namespaces {
                try await socket.waitUntilConnected(namespace: ns, timeout: timeout?.duration ?? .seconds(30))
            }
        } catch {
            await socket.disconnect()
            throw fail("\(error)")
        }
        await releaseStartupCode(after: socket, namespace: namespaces.first ?? "/")
        // Ends when the client closes for good (e.g. every namespace kicked by the server).
        let closedWatcher = Task {
            for await _ in events {}
            done.fail(SocketIOError.disconnected)
        }
        defer { closedWatcher.cancel() }
        if let timeout {
            let deadline = done.futureResult.eventLoop.scheduleTask(in: timeout.timeAmount) {
                done.fail(SocketIOError.connectTimeout)
            }
            done.futureResult.whenComplete { _ in deadline.cancel() }
        }
        do {
            try await done.futureResult.get()
            await socket.disconnect()
        } catch SocketIOError.connectTimeout {
            await socket.disconnect()
            throw fail("timed out after \(timeout!.duration) waiting for \(limit.map(String.init) ?? "more") events")
        } catch {
            await socket.disconnect()
            throw fail("\(error)")
        }
    }
}
