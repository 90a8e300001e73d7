"""Keras the way a long-running Streamlit server needs it: quiet, loaded once, never reset.

Streamlit calls ``keras.backend.clear_session()`` after every script run, fragment reruns included
(``_clean_problem_modules`` in its script runner). That call does a full ``gc.collect()``, which
with TensorFlow loaded holds the GIL for tens of milliseconds: a side panel refreshing three times
a second starved the Live page's frame callback down to 1-3 frames/s. It also replaces Keras'
per-thread global state for every thread, so a training thread building its model while a page
refreshed lost its layer-name counters ("The name "dropout" is used 2 times in the model").
Emojify loads each model once per server and shares it (``st.cache_resource``); nothing in it
needs that reset, so :func:`import_keras` turns it into a no-op for the whole process.

TensorFlow's C++ start-up lines are printed when it is first imported, so the log level must be
in the environment before that; ``app/__init__`` sets it for every entry point (CLI and server).
Some lines ignore that level: absl's "All log messages before absl::InitializeLog()" and, on CPUs
with AVX-512, "oneDNN custom operations are on" (turning oneDNN off would silence them, but it
made the shipped model 40 % slower). Those are dropped from whatever TensorFlow's import writes to
stderr; everything else it writes there is passed on.

The same import hook loads aiortc's SRTP library (pylibsrtp) just before TensorFlow: the other
way round their bundled crypto libraries clash and the first SRTP session segfaults the whole
process (the server died when a Live stream started after the Photo page had imported
TensorFlow). With the order kept here, whichever thread imports TensorFlow first, the server is
free to import streamlit-webrtc when it suits it (pages.shared.warm_up: after the first page).

``import keras`` also imports scikit-learn, and with it most of SciPy, when they are installed
(they are: training uses them), only for ``keras.wrappers``' scikit-learn estimators, which
Emojify never uses: a fifth of a cold start's import time and ~60 MB of the server's memory.
:func:`import_keras` imports Keras with scikit-learn out of its sight; anything that imports
scikit-learn itself (training, evaluation) still gets it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

#: TensorFlow's C++ log threshold: 2 hides INFO and WARNING (start-up notes), keeps errors.
TF_LOG_LEVEL = "2"


#: Start-up lines TensorFlow prints on import whatever the log level (see the module docstring).
START_UP_NOISE = ("before absl::InitializeLog() is called", "oneDNN custom operations are on")


#: Libraries that must be loaded before TensorFlow when they are installed (see the module docstring).
BEFORE_TENSORFLOW = ("pylibsrtp",)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up chatter off stderr (a user's own log level wins), and load
    :data:`BEFORE_TENSORFLOW` before it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


@contextlib.contextmanager
def stderr_without(noise: Sequence[str]) -> Iterator[None]:
    """Run the block with file descriptor 2 captured, then pass on the lines that hold none of ``noise``.

    At the descriptor, not ``sys.stderr``: TensorFlow's C++ code writes there directly.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not any(n in line for n in noise)))
            sys.stderr.flush()


@contextlib.contextmanager
def _hidden_from_this_thread(packages: Sequence[str]) -> Iterator[None]:
    """Within the block, importing ``packages`` from this thread fails as if they were not installed.

    Only this thread's imports: another thread (a training job, say) importing one of them at the
    same moment gets it as usual. A package imported already is simply there, as before.
    """
    hider = _Hidden(tuple(packages), threading.get_ident())
    sys.meta_path.insert(0, hider)
    try:
        yield
    finally:
        sys.meta_path.remove(hider)


class _Hidden(importlib.abc.MetaPathFinder):
    def __init__(self, packages: tuple[str, ...], thread: int) -> None:
        self.packages = packages
        self.thread = thread

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name.split(".")[0] in self.packages and threading.get_ident() == self.thread:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden from Keras)", name=name)
        return None


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` the usual way, once, after loading :data:`BEFORE_TENSORFLOW`, and
    imports it under :func:`stderr_without`."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        for first in BEFORE_TENSORFLOW:
            with contextlib.suppress(ImportError):  # not installed: nothing can clash
                importlib.import_module(first)
        spec = importlib.util.find_spec(name)
        if spec is not None and isinstance(spec.loader, importlib.abc.Loader):
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with stderr_without(START_UP_NOISE):
            self.loader.exec_module(module)
        # The module keeps its own loader (resources, source lookups), not this wrapper.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader


#: Packages Keras imports when they are installed, for features Emojify does not use.
NOT_FOR_KERAS = ("sklearn",)


def import_keras() -> ModuleType:
    """``import keras``, with ``keras.backend.clear_session`` made a no-op in this process."""
    quiet_tensorflow()
    with _hidden_from_this_thread(NOT_FOR_KERAS):
        import keras

    keep_keras_state(keras)
    return keras


def keep_keras_state(keras: ModuleType) -> None:
    """Replace ``keras.backend.clear_session`` by a no-op (once; see the module docstring)."""
    original = keras.backend.clear_session
    if getattr(original, "kept_by_emojify", False):
        return

    @functools.wraps(original)
    def clear_session(*args: Any, **kwargs: Any) -> None:
        return None

    clear_session.kept_by_emojify = True  # type: ignore[attr-defined]
    keras.backend.clear_session = clear_session
