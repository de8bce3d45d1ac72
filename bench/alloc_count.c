/* A counting allocator for the benchmarks: LD_PRELOAD it into a dynamically linked glibc program
 * (sioagent's release build links glibc dynamically) and every malloc, calloc, realloc,
 * posix_memalign, aligned_alloc and memalign call is counted (all threads), with the bytes asked
 * for, before glibc's own allocator does the work. SIGUSR2 appends one line
 * "allocations frees bytes" to the file named by ALLOC_COUNT_FILE; a benchmark signals before
 * and after a run and takes the difference.
 *
 *   cc -O2 -shared -fPIC -o alloc_count.so bench/alloc_count.c
 *   ALLOC_COUNT_FILE=/tmp/counts LD_PRELOAD=$PWD/alloc_count.so sioagent run ...
 *   kill -USR2 PID    # appends the counters so far
 *
 * Only for measuring: the process must not use SIGUSR2 for anything else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_ulong allocations, frees, bytes;

static inline void count(size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes, n, memory_order_relaxed);
}

void *malloc(size_t n) { count(n); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { count(a * b); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { count(n); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { count(n); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { count(n); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    count(n);
    void *p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
void free(void *p) {
    if (p) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    __libc_free(p);
}

/* Async-signal-safe: only atomics, open/write/close and integer formatting. */
static char *put(char *at, unsigned long v) {
    char tmp[24];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *at++ = tmp[--n];
    return at;
}

static void dump(int sig) {
    (void)sig;
    int saved = errno;
    const char *path = getenv("ALLOC_COUNT_FILE");
    if (path) {
        char line[96], *at = line;
        at = put(at, atomic_load(&allocations)); *at++ = ' ';
        at = put(at, atomic_load(&frees)); *at++ = ' ';
        at = put(at, atomic_load(&bytes)); *at++ = '\n';
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            ssize_t ignored = write(fd, line, (size_t)(at - line));
            (void)ignored;
            close(fd);
        }
    }
    errno = saved;
}

__attribute__((constructor)) static void install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dump;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}
