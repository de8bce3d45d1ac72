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
    /// How to start it (tests force the fallback).
    var method: SpawnMethod = .automatic
}

/// How children are started.
///
/// `posix_spawn` does everything when glibc has `posix_spawn_file_actions_addclosefrom_np`
/// (2.34+) and `…_addchdir_np` (2.29+). Without them it could neither keep the agent's other
/// descriptors out of the child (swift-nio opens its sockets without `SOCK_CLOEXEC`: the server
/// connection and the metrics listener would leak into every command) nor start it in `cwd`.
/// There the agent vforks and execs itself: the child closes every descriptor above 2
/// (`close_range`, Linux 5.9+, else by reading /proc/self/fd) and changes directory before
/// `execve`, with nothing between fork and exec but system calls. Marking descriptors
/// close-on-exec from the parent instead would race with threads opening new ones, and `cd` in
/// a shell would turn `run:` argv into shell code, so neither is used. Both functions are found
/// at run time (dlsym), so one binary does the right thing on glibc 2.28 and on 2.36.
enum SpawnMethod: Sendable, Equatable {
    /// posix_spawn where glibc has both functions, otherwise fork and exec.
    case automatic
    /// Fork and exec, as on older glibc; `closeRange: false` also as on kernels before 5.9.
    case forkExec(closeRange: Bool)

    /// What `automatic` is on this system.
    static let posixSpawnComplete = sioagent_spawn_has_closefrom() != 0 && sioagent_spawn_has_chdir() != 0
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
    switch request.method {
    case .automatic where SpawnMethod.posixSpawnComplete:
        return spawnWithPosixSpawn(request)
    case .automatic:
        return spawnWithFork(request, closeRange: true)
    case .forkExec(let closeRange):
        return spawnWithFork(request, closeRange: closeRange)
    }
}

/// The child's pipes, made close-on-exec; the parent's ends later become non-blocking.
private struct ChildPipes {
    var input: (read: Int32, write: Int32)?
    var output: (read: Int32, write: Int32)
    var error: (read: Int32, write: Int32)

    static func make(hasInput: Bool) -> Result<ChildPipes, SpawnFailure> {
        var made: [Int32] = []
        func makePipe() -> (read: Int32, write: Int32)? {
            var fds: [Int32] = [-1, -1]
            guard sioagent_pipe_cloexec(&fds) == 0 else { return nil }
            made += fds
            return (fds[0], fds[1])
        }
        let input = hasInput ? makePipe() : nil
        guard !hasInput || input != nil, let output = makePipe(), let error = makePipe() else {
            let code = errno
            for fd in made { close(fd) }
            return .failure(SpawnFailure(code: code, context: "pipe"))
        }
        return .success(ChildPipes(input: input, output: output, error: error))
    }

    /// After the start: the child's ends are the child's now; on failure the parent's go too.
    func finish(started: Bool) {
        if let input { close(input.read) }
        close(output.write)
        close(error.write)
        if !started {
            if let input { close(input.write) }
            close(output.read)
            close(error.read)
        }
    }

    func parentEnds(pid: pid_t) -> SpawnedProcess {
        for fd in [input?.write, output.read, error.read].compactMap({ $0 }) {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        return SpawnedProcess(pid: pid, stdin: input?.write ?? -1, stdout: output.read, stderr: error.read)
    }
}

/// The fallback of ``SpawnMethod``: fork and exec, with the same child as posix_spawn gives.
private func spawnWithFork(_ request: SpawnRequest, closeRange: Bool) -> Result<SpawnedProcess, SpawnFailure> {
    let pipes: ChildPipes
    switch ChildPipes.make(hasInput: request.hasInput) {
    case .success(let p): pipes = p
    case .failure(let f): return .failure(f)
    }
    var step: Int32 = 0
    var code: Int32 = 0
    let pid = withCStringArray(request.argv) { argv in
        withCStringArray(request.environment) { envp in
            let run = { (directory: UnsafePointer<CChar>?) in
                sioagent_fork_exec(
                    request.path, argv, envp, pipes.input?.read ?? -1, pipes.output.write, pipes.error.write, directory,
                    closeRange ? 1 : 0, &step, &code)
            }
            if let directory = request.directory { return directory.withCString { run($0) } }
            return run(nil)
        }
    }
    pipes.finish(started: pid > 0)
    guard pid > 0 else {
        let context = switch step {
        case 1: "working directory \(request.directory ?? "")"
        case 2: "execve \(request.path)"
        case 3: "dup2"
        default: "fork"
        }
        return .failure(SpawnFailure(code: code, context: context))
    }
    return .success(pipes.parentEnds(pid: pid))
}

private func spawnWithPosixSpawn(_ request: SpawnRequest) -> Result<SpawnedProcess, SpawnFailure> {
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
