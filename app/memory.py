"""Give the memory that big jobs free back to the system, so a long-running server stays small.

A training, an evaluation or a video job allocates hundreds of megabytes from many threads and
frees them when it ends, but glibc's allocator keeps freed memory in the arena of the thread that
used it: after three tiny trainings the server's resident memory had grown by ~400 MB that
nothing used (``python -m benchmarks.memory_walk``). :func:`release` returns it (``malloc_trim``),
and :func:`limit_arenas` caps how many arenas there are, so freed memory is reused rather than
kept per thread. Both do nothing where the C library is not glibc.

:func:`release` also looks at what :mod:`app.model_loading` froze. Each model load ends with
``gc.freeze()``, which moves *everything* alive at that moment out of the collector's reach, not
only the libraries and the model: a training's model and graphs if one was running, a dropped
model's, every open session's. Keras models and their graphs are reference cycles, which only
the collector frees, so whatever of that became garbage later stayed for good: a model dropped
from the cache, a training that ended after a page had loaded a model. :func:`release` unfreezes,
collects everything and freezes again what is still alive. That full collection holds the GIL
(2–5 s on two cores under a load of 12; less on a quiet machine), so it runs only when a
job ends or a model is dropped, never per frame or per rerun.

A training also leaves its step graphs behind, whoever holds the model: TensorFlow keeps every
``tf.custom_gradient`` traced in graph mode in a process-wide gradient registry, under a fresh
name ("CustomGradient-N"), for good, and the gradient function it keeps there holds tensors of
the graph being traced. Keras' optimizer sums the gradients through such a function
(``ReplicaContext.all_reduce``), so every trace of a training step pinned that step's graph with
its ops, constants and functions: two graphs per training, ~150 MB of the server per walk of
three (TensorFlow issues 27492 and 97697). :func:`custom_gradients_dropped` drops the entries a
job added once its graphs are traced; those gradients are looked up only while their graph is
being differentiated, which is over by then.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import sys
from collections.abc import Iterator

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


def _gradient_registry() -> dict[str, object] | None:
    """TensorFlow's registry of gradient functions by op type name, if TensorFlow is loaded and
    still keeps it where TensorFlow 2.x does (a private attribute: another layout finds nothing)."""
    ops = sys.modules.get("tensorflow.python.framework.ops")
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


@contextlib.contextmanager
def custom_gradients_dropped() -> Iterator[None]:
    """Run the block (a training), then forget the custom gradients it traced (module docstring).

    Every entry registered while the block ran goes, so nothing else may trace a custom gradient
    in graph mode meanwhile and differentiate it later: in this app only a training does (one at
    a time), the Photo page's heatmap differentiates eagerly, which registers nothing.
    """
    registry = _gradient_registry()
    before = set(registry) if registry is not None else set()
    try:
        yield
    finally:
        registry = _gradient_registry()  # the block may have imported TensorFlow
        if registry is not None:
            for name in set(registry) - before:
                if name.startswith(CUSTOM_GRADIENT):
                    registry.pop(name, None)
