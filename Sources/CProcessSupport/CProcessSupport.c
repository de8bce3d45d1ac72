#define _GNU_SOURCE
#include "CProcessSupport.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every Linux architecture */
#endif
#ifndef SYS_close_range
#define SYS_close_range 436 /* Linux 5.9; the same number on every architecture */
#endif
#ifndef SYS_getdents64
#error "getdents64 is needed"
#endif

int sioagent_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int sioagent_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int sioagent_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

/* Resolved at run time, so that one binary runs on glibc 2.28 (which has neither) and uses them
   where they exist. A direct call would make the binary refuse to start on older glibc. */
typedef int (*closefrom_fn)(posix_spawn_file_actions_t *, int);
typedef int (*chdir_fn)(posix_spawn_file_actions_t *, const char *);

static closefrom_fn resolved_closefrom(void) {
    static closefrom_fn fn;
    static int done;
    if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        closefrom_fn f = (closefrom_fn)dlsym(RTLD_DEFAULT, "posix_spawn_file_actions_addclosefrom_np");
        __atomic_store_n(&fn, f, __ATOMIC_RELAXED);
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&fn, __ATOMIC_RELAXED);
}

static chdir_fn resolved_chdir(void) {
    static chdir_fn fn;
    static int done;
    if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        chdir_fn f = (chdir_fn)dlsym(RTLD_DEFAULT, "posix_spawn_file_actions_addchdir_np");
        __atomic_store_n(&fn, f, __ATOMIC_RELAXED);
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&fn, __ATOMIC_RELAXED);
}

int sioagent_spawn_has_closefrom(void) {
    return resolved_closefrom() != NULL;
}

int sioagent_spawn_has_chdir(void) {
    return resolved_chdir() != NULL;
}

int sioagent_spawn_closefrom(posix_spawn_file_actions_t *actions, int from) {
    closefrom_fn f = resolved_closefrom();
    return f ? f(actions, from) : ENOSYS;
}

int sioagent_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    chdir_fn f = resolved_chdir();
    return f ? f(actions, path) : ENOSYS;
}

void sioagent_name_thread(const char *name) {
    pthread_setname_np(pthread_self(), name);
}

/* ---- The fallback: vfork and exec. Between them the child calls only async-signal-safe
   functions (system calls), as a multi-threaded parent requires. ---- */

struct child_failure {
    int step;
    int code;
};

static void child_fail(int status_fd, int step) {
    struct child_failure f = {step, errno};
    ssize_t n;
    do { n = write(status_fd, &f, sizeof f); } while (n < 0 && errno == EINTR);
    _exit(127);
}

/* Closes every descriptor from 3 up, except `keep`, by reading /proc/self/fd with getdents64
   (no malloc). Passes again after closing, since closing changes the listing. Without /proc:
   every number below the descriptor limit. */
static void close_by_listing(int keep) {
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        struct rlimit limit;
        long top = 65536;
        if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (rlim_t)top) {
            top = (long)limit.rlim_cur;
        }
        for (long fd = 3; fd < top; fd++) {
            if (fd != keep) close((int)fd);
        }
        return;
    }
    char buffer[4096] __attribute__((aligned(8)));
    for (int pass = 0; pass < 64; pass++) {
        int closed = 0;
        lseek(dir, 0, SEEK_SET);
        for (;;) {
            long n = syscall(SYS_getdents64, dir, buffer, sizeof buffer);
            if (n <= 0) break;
            for (long offset = 0; offset < n;) {
                /* struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name */
                unsigned short reclen;
                memcpy(&reclen, buffer + offset + 16, sizeof reclen);
                const char *name = buffer + offset + 19;
                offset += reclen;
                if (name[0] < '0' || name[0] > '9') continue;
                int fd = 0;
                for (const char *p = name; *p >= '0' && *p <= '9'; p++) fd = fd * 10 + (*p - '0');
                if (fd >= 3 && fd != dir && fd != keep) {
                    close(fd);
                    closed++;
                }
            }
        }
        if (closed == 0) break;
    }
    close(dir);
}

/* The child's side, between vfork and exec: system calls only, on the parent's memory (the
   parent is suspended until exec or _exit), with every signal blocked until the dispositions
   are back to their defaults, so that no handler of the agent runs here. Never returns. */
__attribute__((noinline, noreturn)) static void run_child(const char *path, char *const argv[], char *const envp[],
                                                           const int sources[3], const char *directory,
                                                           int use_close_range, int status_fd,
                                                           const struct sigaction *fallback, const sigset_t *none) {
    setpgid(0, 0);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, fallback, NULL);
    }
    /* The pipes are above 2 (0-2 are open in the agent); dup2 clears close-on-exec. */
    for (int target = 0; target < 3; target++) {
        if (sources[target] == target) {
            fcntl(target, F_SETFD, 0);
        } else if (dup2(sources[target], target) < 0) {
            child_fail(status_fd, 3);
        }
    }
    /* Every other descriptor: close_range (Linux 5.9) around the status pipe, else the listing. */
    int ranged = 0;
    if (use_close_range) {
        ranged = (status_fd <= 3 || syscall(SYS_close_range, 3u, (unsigned)(status_fd - 1), 0u) == 0)
            && syscall(SYS_close_range, (unsigned)(status_fd + 1), ~0u, 0u) == 0;
    }
    if (!ranged) close_by_listing(status_fd);
    if (directory && chdir(directory) != 0) child_fail(status_fd, 1);
    pthread_sigmask(SIG_SETMASK, none, NULL);
    execve(path, argv, envp);
    child_fail(status_fd, 2);
    _exit(127);
}

pid_t sioagent_fork_exec(const char *path, char *const argv[], char *const envp[], int stdin_fd, int stdout_fd,
                         int stderr_fd, const char *directory, int use_close_range, int *failed_step, int *error_code) {
    *failed_step = 0;
    *error_code = 0;
    int status[2];
    if (pipe2(status, O_CLOEXEC) != 0) {
        *error_code = errno;
        return -1;
    }
    int null_fd = -1;
    if (stdin_fd < 0) {
        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0) {
            *error_code = errno;
            close(status[0]);
            close(status[1]);
            return -1;
        }
        stdin_fd = null_fd;
    }
    const int sources[3] = {stdin_fd, stdout_fd, stderr_fd};
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigset_t all, previous, none;
    sigfillset(&all);
    sigemptyset(&none);
    /* No signal handler of the agent may run in the child before exec. */
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    /* vfork, not fork: no copy of the agent's page tables (posix_spawn does the same with clone). */
    pid_t pid = vfork();
    if (pid == 0) run_child(path, argv, envp, sources, directory, use_close_range, status[1], &fallback, &none);
    int fork_error = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    close(status[1]);
    if (null_fd >= 0) close(null_fd);
    if (pid < 0) {
        close(status[0]);
        *error_code = fork_error;
        return -1;
    }
    /* Closed by exec (close-on-exec): nothing to read. Otherwise the step that failed. */
    struct child_failure failure;
    ssize_t n;
    do { n = read(status[0], &failure, sizeof failure); } while (n < 0 && errno == EINTR);
    close(status[0]);
    if (n == (ssize_t)sizeof failure) {
        int ignored;
        while (waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {}
        *failed_step = failure.step;
        *error_code = failure.code;
        return -1;
    }
    return pid;
}
