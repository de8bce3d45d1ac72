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

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+; ENOSYS before).
int sioagent_spawn_closefrom(posix_spawn_file_actions_t *actions, int from);

/// posix_spawn_file_actions_addchdir_np (glibc 2.29+; ENOSYS before).
int sioagent_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path);

/// Names the calling thread (seen in `top -H`, /proc/PID/task/*/comm).
void sioagent_name_thread(const char *name);

#endif
