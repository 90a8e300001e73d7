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
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any

#: TensorFlow's C++ log threshold: 2 hides INFO and WARNING (start-up notes), keeps errors.
TF_LOG_LEVEL = "2"


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up chatter off stderr (a user's own setting wins)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)


def import_keras() -> ModuleType:
    """``import keras``, with ``keras.backend.clear_session`` made a no-op in this process."""
    quiet_tensorflow()
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
