"""Load an emotion model and classify a batch of face crops fast.

The model contract (see README): a ``.keras`` file that ``keras.saving.load_model`` opens without
project code, takes ``(N, 48, 48, 1)`` float32 pixels in 0..255 and returns ``(N, 7)`` softmax
probabilities in :data:`app.emotions.CLASS_NAMES` order. ``model.predict`` costs 60–80 ms per call
even for one face, so we call a compiled function of the model instead (~1 ms on a CPU).
Keras is imported lazily: the CLI's ``--help`` and the core tests don't pay for TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.emotions import INPUT_SHAPE, NUM_CLASSES
from app.keras_env import import_keras


class ModelError(ValueError):
    """A model file that is missing, unreadable or breaks the contract; message for users."""


class EmotionClassifier:
    """Callable ``crops (N,48,48,1) → probabilities (N,7)``; thread-safe once loaded."""

    def __init__(self, model: Any, name: str = "model") -> None:
        check_contract(model)
        self.model = model
        self.name = name
        self._forward = _compile(model)

    @classmethod
    def load(cls, path: str | Path) -> EmotionClassifier:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        if path.suffix != ".keras":
            raise ModelError(f"{path.name} is not a .keras model file")
        keras = import_keras()  # also keeps Streamlit's per-rerun clear_session from stalling us

        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as err:  # Keras raises many types for a bad file; all mean the same.
            raise ModelError(f"{path.name} is not a readable Keras model ({err})") from err
        return cls(model, name=path.stem)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops, dtype=np.float32)
        if crops.ndim != 4 or crops.shape[1:] != INPUT_SHAPE:
            raise ValueError(f"expected crops of shape (N, *{INPUT_SHAPE}), got {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, NUM_CLASSES), dtype=np.float32)
        return np.asarray(self._forward(crops), dtype=np.float32)


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
