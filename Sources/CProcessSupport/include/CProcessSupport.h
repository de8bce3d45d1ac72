#ifndef SIOAGENT_C_PROCESS_SUPPORT_H
#define SIOAGENT_C_PROCESS_SUPPORT_H

// Calls the agent's command runner needs that Swift's Glibc module does not offer: GNU
// extensions (declared only with _GNU_SOURCE) and a variadic syscall(2).

#include <spawn.h>
#include <sys/types.h>

/// pidfd_open(2). -1 with errno ENOSYS on kernels before 5.3.
int sioagent_pidfd_open(pid_t pid);

/// pipe2(fds, O_CLOEXEC).
int sioagent_pipe_cloexec(int fds[2]);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
int sioagent_eventfd(void);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+; ENOSYS before). Found at run time.
int sioagent_spawn_closefrom(posix_spawn_file_actions_t *actions, int from);

/// posix_spawn_file_actions_addchdir_np (glibc 2.29+; ENOSYS before). Found at run time.
int sioagent_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path);

/// Whether this glibc has posix_spawn_file_actions_addclosefrom_np (1) or not (0).
int sioagent_spawn_has_closefrom(void);

/// Whether this glibc has posix_spawn_file_actions_addchdir_np (1) or not (0).
int sioagent_spawn_has_chdir(void);

/// Starts `path` with vfork and execve where posix_spawn cannot do all the agent needs (glibc
/// before 2.34 or 2.29): in a process group of its own, every signal at its default action and
/// unblocked, `stdin_fd` (-1: /dev/null), `stdout_fd` and `stderr_fd` on 0-2, every other
/// descriptor closed (close_range when `use_close_range` and the kernel has it, else by reading
/// /proc/self/fd), in `directory` (NULL: the agent's). Returns the pid once the child has called
/// exec, or -1 with `error_code` (errno) and `failed_step` (0 before fork, 1 chdir, 2 execve,
/// 3 dup2). The parent's descriptors are left open.
pid_t sioagent_fork_exec(const char *path, char *const argv[], char *const envp[], int stdin_fd, int stdout_fd,
                         int stderr_fd, const char *directory, int use_close_range, int *failed_step, int *error_code);

/// Names the calling thread (seen in `top -H`, /proc/PID/task/*/comm).
void sioagent_name_thread(const char *name);

#endif
