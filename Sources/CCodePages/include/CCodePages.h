#ifndef SIOAGENT_CCODEPAGES_H
#define SIOAGENT_CCODEPAGES_H

/// Unmaps the pages of the executable's code segment from this process (madvise MADV_DONTNEED),
/// so that only the code that runs afterwards is mapped again, page fault by page fault. The
/// start-up code (option parsing, configuration, rule compilation, TLS set-up, the handshake)
/// and the pages the kernel mapped around it (fault-around) stop counting as resident; the file
/// stays in the page cache, so nothing is read from disk again.
///
/// Only clean, read-only, executable pages of the main program are touched: nothing is done when
/// the segment is writable or has text relocations, when a debugger or tracer is attached (its
/// breakpoints live in private copies of the code pages, which this would drop), or when the
/// environment sets SIOAGENT_KEEP_CODE_PAGES=1.
///
/// Returns the number of bytes released, 0 when it did nothing, -1 when madvise failed (errno).
long sioagent_release_code_pages(void);

#endif
