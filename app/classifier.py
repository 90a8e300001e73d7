"""Load an emotion model and classify a batch of face crops fast.

The model contract (see README): a ``.keras`` file that ``keras.saving.load_model`` opens without
project code, takes ``(N, 48, 48, 1)`` float32 pixels in 0..255 and returns ``(N, 7)`` softmax
probabilities in :data:`app.emotions.CLASS_NAMES` order. ``model.predict`` costs 60–80 ms per call
even for one face, so we call a compiled function of the model instead (~1 ms on a CPU).

Where the ``.keras`` file has a checked LiteRT file derived from it (:mod:`app.light_runtime`),
the classifier answers through LiteRT and TensorFlow is not imported at all until something
needs the Keras model itself (:attr:`EmotionClassifier.model`: Grad-CAM, training, export):
importing TensorFlow was most of a cold start. Otherwise Keras answers, imported lazily too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.emotions import INPUT_SHAPE, NUM_CLASSES
from app.keras_env import import_keras


class ModelError(ValueError):
    """A model file that is missing, unreadable or breaks the contract; message for users."""


class EmotionClassifier:
    """Callable ``crops (N,48,48,1) → probabilities (N,7)``; thread-safe once loaded.

    Made from a Keras model, or by :meth:`load` from a file: then through LiteRT when the file
    has a valid derived ``.tflite`` (``runtime`` says which), its Keras model read on first use.
    """

    def __init__(
        self,
        model: Any = None,
        name: str = "model",
        *,
        light: Callable[[np.ndarray], np.ndarray] | None = None,
        keras_path: Path | None = None,
    ) -> None:
        """From a Keras ``model``, or from a LiteRT forward pass (``light``) of ``keras_path``'s model."""
        if model is None and (light is None or keras_path is None):
            raise TypeError("EmotionClassifier needs a Keras model, or a LiteRT forward pass and its file")
        if model is not None:
            check_contract(model)
        self._model = model
        self._keras_path = keras_path
        self._model_lock = threading.Lock()
        self.name = name
        self.runtime = "Keras" if light is None else "LiteRT"
        self._forward: Callable[[np.ndarray], Any] = light or _compile(model)

    @classmethod
    def load(cls, path: str | Path, *, light: bool = True) -> EmotionClassifier:
        """The classifier of a ``.keras`` file: through LiteRT if ``light`` and it has a valid derived
        file, else Keras. ModelError for a missing or unusable file."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        if path.suffix != ".keras":
            raise ModelError(f"{path.name} is not a .keras model file")
        if light:
            from app import light_runtime

            if (forward := light_runtime.load(path)) is not None:
                return cls(name=path.stem, light=forward, keras_path=path)
        return cls(_read_keras(path), name=path.stem)

    @property
    def model(self) -> Any:
        """The Keras model (read from the file on first use when LiteRT answers the calls)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    assert self._keras_path is not None  # only load() leaves the model unread
                    model = _read_keras(self._keras_path)
                    check_contract(model)
                    self._model = model
        return self._model

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops, dtype=np.float32)
        if crops.ndim != 4 or crops.shape[1:] != INPUT_SHAPE:
            raise ValueError(f"expected crops of shape (N, *{INPUT_SHAPE}), got {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, NUM_CLASSES), dtype=np.float32)
        return np.asarray(self._forward(crops), dtype=np.float32)


def _read_keras(path: Path) -> Any:
    keras = import_keras()  # also keeps Streamlit's per-rerun clear_session from stalling us
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a bad file; all mean the same.
        raise ModelError(f"{path.name} is not a readable Keras model ({err})") from err


def check_contract(model: Any) -> None:
    """Refuse a model whose input or output shape isn't the contract's, with a clear message."""
    try:
        input_shape = tuple(model.inputs[0].shape[1:])
        output_shape = tuple(model.outputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError) as err:
        raise ModelError("the file holds no functional Keras model with one input and output") from err
    if input_shape != INPUT_SHAPE or output_shape != (NUM_CLASSES,):
        raise ModelError(
            f"the model takes {input_shape} and returns {output_shape}; "
            f"Emojify needs {INPUT_SHAPE} → ({NUM_CLASSES},)"
        )


def _compile(model: Any) -> Callable[[np.ndarray], Any]:
    """A graph-compiled forward pass for the active Keras backend (plain call as fallback)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec((None, *INPUT_SHAPE), tf.float32)
        return tf.function(lambda x: model(x, training=False), input_signature=[spec])
    if backend == "jax":
        import jax

        return jax.jit(lambda x: model(x, training=False))
    return lambda x: keras.ops.convert_to_numpy(model(x, training=False))
