#define _GNU_SOURCE
#include "CCodePages.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct code_segment {
    uintptr_t start;
    uintptr_t end;
    int text_relocations;
};

/// The first object dl_iterate_phdr reports is the main program: its executable, non-writable
/// PT_LOAD segment, and whether its dynamic section asks for text relocations.
static int find_code_segment(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct code_segment *segment = data;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && !(ph->p_flags & PF_W) && segment->end == 0) {
            segment->start = info->dlpi_addr + ph->p_vaddr;
            segment->end = segment->start + ph->p_memsz;
        } else if (ph->p_type == PT_DYNAMIC) {
            for (const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr); d->d_tag != DT_NULL; d++) {
                if (d->d_tag == DT_TEXTREL || (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_TEXTREL))) {
                    segment->text_relocations = 1;
                }
            }
        }
    }
    return 1;  // the main program only
}

/// Whether /proc/self/status names a tracer (TracerPid other than 0). Unreadable: assume one.
static int traced(void) {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 1;
    char buffer[4096];
    size_t used = 0;
    ssize_t n;
    while (used < sizeof buffer - 1 && (n = read(fd, buffer + used, sizeof buffer - 1 - used)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return 1;
        }
        used += (size_t)n;
    }
    close(fd);
    buffer[used] = '\0';
    const char *line = strstr(buffer, "\nTracerPid:");
    if (line == NULL) return 1;
    line += strlen("\nTracerPid:");
    while (*line == ' ' || *line == '\t') line++;
    return *line != '0';
}

long sioagent_release_code_pages(void) {
    const char *keep = getenv("SIOAGENT_KEEP_CODE_PAGES");
    if (keep != NULL && strcmp(keep, "1") == 0) return 0;
    struct code_segment segment = {0, 0, 0};
    dl_iterate_phdr(find_code_segment, &segment);
    if (segment.end == 0 || segment.text_relocations || traced()) return 0;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return 0;
    uintptr_t mask = (uintptr_t)page - 1;
    // Whole pages inside the segment only: the first and last may be shared with a neighbour.
    uintptr_t start = (segment.start + mask) & ~mask;
    uintptr_t end = segment.end & ~mask;
    if (end <= start) return 0;
    if (madvise((void *)start, end - start, MADV_DONTNEED) != 0) return -1;
    return (long)(end - start);
}
