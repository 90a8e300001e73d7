"""Give the memory that big jobs free back to the system, so a long-running server stays small.

An evaluation or a video job allocates hundreds of megabytes from many threads and frees them
when it ends, but glibc's allocator keeps freed memory in the arena of the thread that used it:
after three tiny trainings (which ran in the server then; a training has its own process now,
training.jobs) the server's resident memory had grown by ~400 MB that nothing used (``python -m
benchmarks.memory_walk``). :func:`release` returns it (``malloc_trim``), and :func:`limit_arenas`
caps how many arenas there are, so freed memory is reused rather than kept per thread. Both do
nothing where the C library is not glibc.

:func:`release` also looks at what :mod:`app.model_loading` froze. Each model load ends with
``gc.freeze()``, which moves *everything* alive at that moment out of the collector's reach, not
only the libraries and the model: a dropped model's, an evaluation's, every open session's. Keras
models and their graphs are reference cycles, which only the collector frees, so whatever of that
became garbage later stayed for good: a model dropped from the cache, an evaluation that ended
after a page had loaded a model. :func:`release` unfreezes, collects everything and freezes again
what is still alive. That full collection holds the GIL (2–5 s on two cores under a load of 12;
less on a quiet machine), so it runs only when a job ends or a model is dropped, never per frame
or per rerun.
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
#: How TensorFlow names a custom gradient traced in graph mode (custom_gradient.generate_name).
CUSTOM_GRADIENT = "CustomGradient-"


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
    """Collect every garbage cycle, frozen ones too, then hand the allocator's free memory back to
    the system (see the module docstring)."""
    frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    gc.collect()
    if frozen:
        gc.freeze()  # the living stay out of later collections, as app.model_loading wants
    if (libc := _glibc()) is not None:
        libc.malloc_trim(0)
