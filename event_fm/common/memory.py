"""Returning freed memory to the system. A node under a burst of events holds hundreds of MB of
packets and buffered events; glibc keeps freed blocks of that size in its heaps (its mmap
threshold grows with the largest block freed), so RSS stays at the peak long after the burst.
Large blocks served by mmap go back on free, and a trim returns what the heaps still hold."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: mallopt parameter numbers (glibc malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: blocks above this size are mapped and unmapped on their own (event packets are ~1 MB)
MMAP_THRESHOLD_BYTES = 256 * 1024


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
            return None  # glibc only (not musl, not macOS)
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def bound_heap_growth() -> bool:
    """Fix the mmap threshold (no dynamic growth) so freed large arrays leave the process.
    Returns False where the C library has no mallopt."""
    libc = _libc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    return bool(libc.mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD_BYTES) == 1 and ok)


def release_free_memory() -> bool:
    """Give the heaps' free pages back (malloc_trim); True if anything was released."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
