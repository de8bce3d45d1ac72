import Logging
import NIOCore
import NIOPosix
import SocketIO

struct EmitCommand: Command {
    static let spec = CommandSpec(
        name: "emit",
        abstract: "Connect, emit one event, print the ack's arguments or an awaited event, and exit.",
        discussion: """
            Arguments are JSON values; bytes are written {"$binary":"<base64>"}.
            --ack [DURATION] asks for an acknowledgement (default wait 10s) and prints its arguments
            as a JSON array. --wait EVENT prints the first EVENT received afterwards as a JSON line.
            Exit codes: 0 success; 1 connection refused, CONNECT_ERROR, ack or wait timeout; 2 bad usage.
            """,
        arguments: [
            ClientOptions.urlArgument,
            ArgumentSpec(name: "event", help: "Event name."),
            ArgumentSpec(name: "json-args", help: "Event arguments, each a JSON value.", optional: true, variadic: true),
        ],
        options: ClientOptions.options + [
            .option("ack", value: "duration", "Wait for an acknowledgement (optionally with a timeout, default 10s)."),
            .option("wait", "Wait for this event from the server and print it."),
            .option("timeout", "Longest time to connect and to wait for --wait (default 10s)."),
        ]
    )

    static let defaultAckTimeout = "10s"

    var client: ClientOptions
    var event: String
    var jsonArgs: [String]
    var ack: DurationArgument?
    var wait: String?
    var timeout: DurationArgument

    init(_ arguments: ParsedArguments) throws(ValidationError) {
        client = try ClientOptions(arguments)
        event = arguments.argument("event") ?? ""
        jsonArgs = arguments.arguments("json-args")
        ack = try arguments.value("ack", valueName: "duration")
        wait = arguments.string("wait")
        timeout = try arguments.value("timeout") ?? DurationArgument(duration: .seconds(10))
    }

    func validate() throws(ValidationError) {
        try client.validate()
        for arg in jsonArgs {
            guard let value = try? JSONValue(parsing: arg), value.decodingBinaryMarkers() != nil else {
                throw ValidationError("not a JSON value: \(arg)")
            }
        }
        if socketIOReservedEventNames.contains(event) {
            throw ValidationError("'\(event)' is a reserved event name")
        }
        if client.namespaceList.count > 1 {
            throw ValidationError("emit takes at most one --namespace")
        }
    }

    /// `--ack` takes an optional value: `--ack` alone becomes `--ack=10s`. Applied to the raw
    /// arguments before parsing when the subcommand is `emit`.
    static func rewriteArguments(_ arguments: [String]) -> [String] {
        guard arguments.first == "emit" else { return arguments }
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" {
                out.append(contentsOf: arguments[i...])
                break
            }
            if a == "--ack" {
                if i + 1 < arguments.count, DurationArgument(argument: arguments[i + 1]) != nil,
                    (try? JSONValue(parsing: arguments[i + 1])) == nil || arguments[i + 1].allSatisfy({ $0.isNumber || $0 == "." })
                {
                    out.append("--ack=" + arguments[i + 1])
                    i += 2
                    continue
                }
                out.append("--ack=" + defaultAckTimeout)
                i += 1
                continue
            }
            out.append(a)
            i += 1
        }
        return out
    }

    func run() async throws {
        let namespace = client.namespaceList[0]
        let args = jsonArgs.map { try! JSONValue(parsing: $0).decodingBinaryMarkers()! }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let awaited = loop.makePromise(of: SocketIOEvent.self)
        let waitName = wait
        let socket = SocketIOClient(configuration: client.configuration(), eventLoop: loop, logger: client.logger()) { event in
            if case .event(let e) = event, e.name == waitName, e.namespace == namespace {
                awaited.succeed(e)
            }
        }
        socket.connect()
        do {
            try await socket.waitUntilConnected(namespace: namespace, timeout: timeout.duration, failFast: true)
        } catch {
            awaited.fail(error)
            await socket.disconnect()
            throw fail("\(error)")
        }
        do {
            if let ack {
                let reply = try await socket.emitWithAck(event, args, namespace: namespace, timeout: ack.duration)
                printLine(JSONValue.array(reply).jsonString())
            } else {
                try await socket.emit(event, args, namespace: namespace)
            }
            if wait != nil {
                let deadline = loop.scheduleTask(in: timeout.timeAmount) { awaited.fail(WaitTimeout()) }
                let e = try await awaited.futureResult.get()
                deadline.cancel()
                printLine(e.jsonLine)
            } else {
                awaited.fail(SocketIOError.disconnected)
            }
        } catch is WaitTimeout {
            await socket.disconnect()
            throw fail("timed out after \(timeout.duration) waiting for event '\(wait ?? "")'")
        } catch {
            awaited.fail(error)
            await socket.disconnect()
            throw fail("\(error)")
        }
        await socket.disconnect()
    }
}

private struct WaitTimeout: Error {}
