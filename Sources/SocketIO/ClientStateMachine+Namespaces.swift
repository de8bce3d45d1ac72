import SIOCore

/// Namespace answers: CONNECT accepted, refused or unanswered, DISCONNECT from the server, and
/// the retries that follow (at most one timer per namespace).
extension ClientStateMachine {
    /// The server accepted the namespace CONNECT.
    package mutating func namespaceConnected(_ i: Int) -> [Action] {
        guard phase == .open, namespaces[i].status == .connecting else { return [] }
        namespaces[i].status = .connected
        var actions: [Action] = [.cancel(.namespaceConnect(i))]
        if mutation == .backoffResetAtConnect { backoff.stable() }
        // The backoff starts over only once a namespace stayed connected for the stable period.
        if !stableArmed {
            stableArmed = true
            actions.append(.schedule(.stable, ReconnectBackoff.stabilityPeriod(pingInterval: pingInterval)))
        }
        // What waited in the offline buffer goes out before the hook hears of the connection,
        // so an emit made from the `connect` hook follows the older ones.
        actions.append(.flushBuffer(namespace: i))
        actions.append(.deliver(.connect(namespace: namespaces[i].name)))
        actions.append(.deliverEarlyEvents(namespace: i))
        actions.append(.succeedWaiters(namespace: i))
        return actions
    }

    /// The server refused the namespace (CONNECT_ERROR).
    package mutating func namespaceRefused(_ i: Int, message: String, data: JSONValue?) -> [Action] {
        guard phase == .open, namespaces[i].status == .connecting else { return [] }
        var actions: [Action] = []
        connectFailed(i, error: .connectionRefused(namespace: namespaces[i].name, message: message, data: data),
                      message: "namespace refused", refused: true, &actions)
        return actions
    }

    /// A namespace CONNECT was refused or not answered in time: reported, then retried later.
    /// A refusal fails every waiter of the namespace; a timeout only those that asked to fail fast.
    mutating func connectFailed(_ i: Int, error: SocketIOError, message: String, refused: Bool, _ actions: inout [Action]) {
        namespaces[i].status = .refused
        lastError = error
        actions.append(.cancel(.namespaceConnect(i)))
        actions.append(.dropEarlyEvents(namespace: i))
        actions.append(.log(.info, message, ["sio.namespace": "\(namespaces[i].name)", "error": "\(error)"]))
        actions.append(.deliver(.connectError(namespace: namespaces[i].name, error: error)))
        actions.append(.failWaiters(error, namespace: i, onlyFailFast: !refused))
        retryNamespace(i, &actions)
    }

    /// The server disconnected the namespace (DISCONNECT).
    package mutating func namespaceKicked(_ i: Int) -> [Action] {
        guard phase == .open, namespaces[i].status == .connected || namespaces[i].status == .connecting else { return [] }
        namespaces[i].status = .kicked
        var actions: [Action] = [.cancel(.namespaceConnect(i)), .dropEarlyEvents(namespace: i)]
        if !anyConnected {
            // The stable period counts only while some namespace is connected.
            actions.append(.cancel(.stable))
            stableArmed = false
        }
        let name = namespaces[i].name
        actions.append(.log(.info, "namespace disconnected by the server", ["sio.namespace": "\(name)"]))
        actions.append(.deliver(.disconnect(namespace: name, reason: .serverDisconnect)))
        if kickedNamespacesComeBack {
            retryNamespace(i, &actions)
        } else {
            actions.append(.failEmits(namespace: i, .disconnected))
            actions.append(.failWaiters(.disconnected, namespace: i, onlyFailFast: false))
            if namespaces.allSatisfy({ $0.status == .kicked }) { everyNamespaceKicked(&actions) }
        }
        return actions
    }

    /// Every namespace was disconnected by the server (and `reconnectAfterServerDisconnect` is
    /// off): rather than stay connected to nothing, connect them again on the slow path, or stop.
    private mutating func everyNamespaceKicked(_ actions: inout [Action]) {
        guard policy.enabled, policy.whenExhausted == .retrySlowly else {
            actions.append(.log(.error, "every namespace was disconnected by the server; stopping", [:]))
            stop(.disconnected, &actions)
            return
        }
        let delay = max(policy.slowDelay, ReconnectBackoff.minimumRepeatDelay)
        actions.append(.log(.warning, "every namespace was disconnected by the server; connecting them again later", ["delay": "\(delay)"]))
        actions.append(.schedule(.slow, delay))
    }

    /// Sends CONNECT again later (a refused, unanswered or kicked namespace), never sooner than
    /// a second; when the attempts run out, on the slow path or not at all (`whenExhausted`).
    mutating func retryNamespace(_ i: Int, _ actions: inout [Action]) {
        guard policy.enabled else { return }
        if namespaces[i].refusals < Int.max { namespaces[i].refusals += 1 }
        let refusals = namespaces[i].refusals
        var delay = max(policy.delay(forAttempt: refusals, random: random.next()), .seconds(1))
        if policy.attempts > 0 && refusals > policy.attempts {
            if policy.whenExhausted == .stop {
                if !anyConnected {
                    actions.append(.log(.error, "namespace CONNECT attempts used up and no namespace is connected; stopping",
                                        ["sio.namespace": "\(namespaces[i].name)"]))
                    stop(lastError ?? .disconnected, &actions)
                }
                return
            }
            delay = max(policy.slowDelay, .seconds(1))
        }
        actions.append(.schedule(.namespaceRetry(i), delay))
    }
}
