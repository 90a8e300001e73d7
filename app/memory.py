"""Give the memory that big jobs free back to the system, so a long-running server stays small.

A training, an evaluation or a video job allocates hundreds of megabytes from many threads and
frees them when it ends, but glibc's allocator keeps freed memory in the arena of the thread that
used it: after three tiny trainings the server's resident memory had grown by ~400 MB that
nothing used (``python -m benchmarks.memory_walk``). :func:`release` returns it (``malloc_trim``),
and :func:`limit_arenas` caps how many arenas there are, so freed memory is reused rather than
kept per thread. Both do nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc

#: glibc's ``mallopt`` parameter for the most arenas (malloc.h: M_ARENA_MAX).
M_ARENA_MAX = -8
#: Arenas kept: enough that threads rarely wait for one another's allocations on a small server.
ARENAS = 2


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def limit_arenas(arenas: int = ARENAS) -> None:
    """Cap glibc's malloc arenas for threads from now on (as ``MALLOC_ARENA_MAX`` would at start-up)."""
    if (libc := _glibc()) is not None:
        libc.mallopt(M_ARENA_MAX, arenas)


def release() -> None:
    """Collect garbage cycles, then hand the allocator's free memory back to the system."""
    gc.collect()
    if (libc := _glibc()) is not None:
        libc.malloc_trim(0)
