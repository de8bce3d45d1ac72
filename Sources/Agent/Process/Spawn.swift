import CProcessSupport

#if canImport(Glibc)
import Glibc
#endif

/// A child started by ``spawnProcess(_:)``: its pid (also its process group) and the parent's
/// ends of its pipes, non-blocking and close-on-exec (-1 where there is none).
struct SpawnedProcess {
    var pid: pid_t
    var stdin: Int32
    var stdout: Int32
    var stderr: Int32
}

/// Why a child could not be started: an errno and what was being done.
struct SpawnFailure: Error, CustomStringConvertible {
    var code: Int32
    var context: String

    var description: String { "\(context): \(errnoText(code))" }
}

/// What to start.
struct SpawnRequest {
    /// Already resolved (see ``resolveProgram(_:path:)``).
    var path: String
    var argv: [String]
    /// `NAME=value` strings.
    var environment: [String]
    var directory: String?
    /// Whether standard input is a pipe (otherwise /dev/null).
    var hasInput: Bool
}

/// Starts a child with `posix_spawn`:
/// - in a process group of its own (its pid), so that a signal to the group reaches every
///   process it started;
/// - with the signal mask cleared and every signal at its default action (the agent ignores
///   SIGTERM and SIGPIPE itself, and an ignored signal would stay ignored across exec);
/// - with pipes on 0, 1 and 2, and every other descriptor closed;
/// - in `directory`.
/// Must not run on an event loop: it waits until the child has called exec.
func spawnProcess(_ request: SpawnRequest) -> Result<SpawnedProcess, SpawnFailure> {
    var pipes: [Int32] = []
    func closeAll() { for fd in pipes where fd >= 0 { close(fd) } }

    // [read, write] pairs; the parent's ends become non-blocking.
    func makePipe() -> (read: Int32, write: Int32)? {
        var fds: [Int32] = [-1, -1]
        guard sioagent_pipe_cloexec(&fds) == 0 else { return nil }
        pipes += fds
        return (fds[0], fds[1])
    }
    var input: (read: Int32, write: Int32)? = nil
    if request.hasInput {
        guard let p = makePipe() else { return .failure(SpawnFailure(code: errno, context: "pipe")) }
        input = p
    }
    guard let output = makePipe(), let error = makePipe() else {
        let code = errno
        closeAll()
        return .failure(SpawnFailure(code: code, context: "pipe"))
    }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let input {
        posix_spawn_file_actions_adddup2(&actions, input.read, 0)
    } else {
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    }
    posix_spawn_file_actions_adddup2(&actions, output.write, 1)
    posix_spawn_file_actions_adddup2(&actions, error.write, 2)
    // Descriptors another thread opened without O_CLOEXEC must not leak into the child either.
    _ = sioagent_spawn_closefrom(&actions, 3)
    if let directory = request.directory {
        let code = sioagent_spawn_chdir(&actions, directory)
        if code != 0 {
            closeAll()
            return .failure(SpawnFailure(code: code, context: "working directory \(directory)"))
        }
    }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    posix_spawnattr_setpgroup(&attributes, 0)
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigdefault(&attributes, &all)

    var pid: pid_t = 0
    let result = withCStringArray(request.argv) { argv in
        withCStringArray(request.environment) { envp in
            posix_spawn(&pid, request.path, &actions, &attributes, argv, envp)
        }
    }
    // The child's ends are the child's now.
    if let input { close(input.read) }
    close(output.write)
    close(error.write)
    guard result == 0 else {
        if let input { close(input.write) }
        close(output.read)
        close(error.read)
        return .failure(SpawnFailure(code: result, context: "posix_spawn \(request.path)"))
    }
    for fd in [input?.write, output.read, error.read].compactMap({ $0 }) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }
    return .success(SpawnedProcess(pid: pid, stdin: input?.write ?? -1, stdout: output.read, stderr: error.read))
}

/// Finds `program` the way execvp does, in the child's `PATH` (default `/usr/bin:/bin`) when it
/// has no slash. Returns the path to start, or the errno to report (ENOENT, EACCES).
func resolveProgram(_ program: String, path: String?) -> Result<String, SpawnFailure> {
    if program.contains("/") { return .success(program) }
    var denied = false
    for dir in (path ?? "/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: false) {
        let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + program
        var info = stat()
        guard stat(candidate, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
        if access(candidate, X_OK) == 0 { return .success(candidate) }
        denied = true
    }
    return .failure(SpawnFailure(code: denied ? EACCES : ENOENT, context: "\(program) (looked up in PATH)"))
}

/// Runs `body` with a NULL-terminated array of C strings (freed afterwards).
private func withCStringArray<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for p in pointers { free(p) } }
    return body(pointers)
}

/// `strerror` text for `code`.
func errnoText(_ code: Int32) -> String {
    String(cString: strerror(code))
}
