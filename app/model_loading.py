"""Load emotion models once per process, in the background, so pages never wait blank for them.

Importing TensorFlow and loading a model took ~10 s on a small server (a model served through
LiteRT, app.light_runtime, takes a fraction of a second). A page that did it before drawing
anything stayed white that long at a cold start, and the Photo page's uploader appeared after
half a minute. Here the first page a visitor opens starts the load on a worker thread and
draws itself at once; only the step that needs the model waits for it, with a message. Models
are kept per file version (path and modification time), the newest few only, and shared by all
sessions: an :class:`~app.classifier.EmotionClassifier` is read-only once loaded.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from app import light_runtime, memory
from app.classifier import EmotionClassifier
from app.emotions import INPUT_SHAPE

log = logging.getLogger(__name__)

#: Model versions kept loaded: the active one, the shipped one and a couple being compared.
KEPT = 4

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
_lock = threading.Lock()
_loads: OrderedDict[tuple[str, int], Future[EmotionClassifier]] = OrderedDict()


def model_key(path: str | Path) -> tuple[str, int]:
    """Which file version ``path`` is now: resolved path and mtime; OSError if it is missing."""
    path = Path(path).resolve()
    return str(path), path.stat().st_mtime_ns


def load_in_background(path: str | Path) -> Future[EmotionClassifier]:
    """The (possibly still running) load of ``path``'s current version; starts it if needed.

    A failed load is forgotten once its error has been delivered, so a fixed file can be retried.
    OSError (missing file) is raised at once, before anything is queued.
    """
    key = model_key(path)
    with _lock:
        future = _loads.get(key)
        if future is None or (future.done() and future.exception() is not None):
            future = _executor.submit(_load, key[0])
            _loads[key] = future
        _loads.move_to_end(key)
        dropped = [_loads.popitem(last=False) for _ in range(len(_loads) - KEPT)]
    if dropped:
        del dropped
        memory.release()  # a model's weights and compiled graph are garbage once nothing uses them
    return future


def _load(path: str) -> EmotionClassifier:
    """Load a model, then move everything alive into the collector's permanent generation.

    With TensorFlow loaded the process holds millions of long-lived objects. Streamlit's post-run
    ``gc.collect`` is off (.streamlit/config.toml: it starved the Live page), and Python's own
    full collections run only when that huge population grows by a quarter: a stream's garbage
    cycles piled up between them (server memory rose ~20 MB a minute after 5 minutes of
    streaming). ``gc.freeze`` takes the loaded libraries and model out of every later collection,
    so collections stay cheap and come as often as the stream's own garbage needs.

    A model with a valid LiteRT file (app.light_runtime) loads in a fraction of a second without
    TensorFlow; one served with Keras (~5 s of CPU for importing TensorFlow on 2 cores) gets its
    LiteRT file derived in the background, for the next server start. The first call builds the
    compiled graph or the interpreter's buffers: made here, it is not the first photo's wait.

    The first load is also where the allocator's arenas are capped (:func:`app.memory.limit_arenas`),
    before the server's jobs start threads of their own.
    """
    log.info("Loading the emotion model %s", path)
    started = time.perf_counter()
    memory.limit_arenas()
    classifier = EmotionClassifier.load(path)
    read = time.perf_counter()
    classifier(np.zeros((1, *INPUT_SHAPE), dtype=np.float32))
    called = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info(
        "Emotion model ready in %.1f s with %s (loading %.1f s, first call %.1f s)",
        time.perf_counter() - started,
        classifier.runtime,
        read - started,
        called - read,
    )
    if classifier.runtime != "LiteRT":
        light_runtime.derive_in_background(Path(path))
    return classifier


def load_now_if_light(path: str | Path) -> None:
    """Start ``path``'s load at once if LiteRT will serve it (a fraction of a second, no TensorFlow).

    For the very start of a server's first script run, before its imports: the model is then
    ready by the time the first page asks, so that page never says it loads. A model that needs
    Keras is left to :func:`load_in_background` after the page is drawn: TensorFlow's import would
    slow the page down, and must not run before aiortc's (app/streamlit_app.py).
    """
    path = Path(path)
    with contextlib.suppress(OSError):
        if light_runtime.derived_path(path).is_file() and light_runtime.interpreter_available():
            load_in_background(path)


def loaded(path: str | Path) -> EmotionClassifier:
    """``path``'s classifier, waiting for its background load; ModelError if the file is unusable."""
    return load_in_background(path).result()


def is_ready(path: str | Path) -> bool:
    """Whether ``path``'s current version is loaded (or failed) already, i.e. ``loaded`` won't wait
    for a load in progress. Starts the load if none was started; a failed one is not restarted
    here, so a page polling this learns that it failed (``loaded`` retries it)."""
    try:
        key = model_key(path)
    except OSError:
        return True  # nothing to wait for: loading it fails at once
    with _lock:
        future = _loads.get(key)
    if future is not None and future.done():
        return True
    return load_in_background(path).done()
