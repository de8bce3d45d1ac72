import CCodePages
import SocketIO

/// Once the client is connected, the code that only ran to get there (the command line, the
/// configuration and rule loading, TLS set-up, the handshake) no longer needs to be resident:
/// `sioagent_release_code_pages` unmaps the executable's code pages, and the ones the agent runs
/// from then on come back on their first use (from the page cache; nothing is read from disk).
/// Set SIOAGENT_KEEP_CODE_PAGES=1 to keep them mapped. docs/benchmarks.md has the figures.
///
/// Called from a task, never on the event loop: the call reads /proc/self/status.
func releaseStartupCode(after socket: SocketIOClient, namespace: String) async {
    // Not connected within a minute (the server is down, the agent keeps retrying): start-up is
    // over all the same.
    try? await socket.waitUntilConnected(namespace: namespace, timeout: .seconds(60))
    if Task.isCancelled { return }
    _ = sioagent_release_code_pages()
}
