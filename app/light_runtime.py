"""Serve a Keras emotion model through LiteRT, from a ``.tflite`` file derived from it and checked.

Importing TensorFlow costs ~5.5 s of CPU on two cores: more than a cold start's whole budget for a
first photo result (issue 23, item 15). LiteRT (``ai-edge-litert``) runs the same computation from
a ``.tflite`` file and imports in ~0.05 s. The ``.keras`` file stays the one source of truth (the
contract, training, Grad-CAM); the ``.tflite`` beside it is derived from it:

- its name holds a hash of the ``.keras`` file's bytes (``emotion_cnn.keras`` →
  ``emotion_cnn.<16 hex digits>.tflite``), so a ``.keras`` that was replaced or retrained no longer
  finds it, and its own stale siblings are deleted when a new one is written;
- it is written (atomically) only after its answers matched the Keras model's on a check batch
  (:data:`TOLERANCE`, same argmax);
- a missing, stale or unreadable one, or LiteRT not installed, means the Keras model is served
  (:func:`load` returns None), never another model's file.

``python -m app.light_runtime MODEL.keras`` derives the file (TensorFlow needed, ~5-20 s); the
server runs it in a separate, low-priority process for a model it had to serve with Keras
(:func:`derive_in_background`), so its own memory and threads are not touched.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import importlib.util
import logging
import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from app.emotions import INPUT_SHAPE, NUM_CLASSES, REPO_ROOT
from app.keras_env import stderr_without
from app.model_card import atomic_output

log = logging.getLogger(__name__)

#: Largest difference in any probability between LiteRT and Keras that a derived file may show.
TOLERANCE = 1e-4
#: Hex digits of the ``.keras`` file's SHA-256 in the derived file's name.
DIGEST_CHARS = 16
#: What LiteRT prints to the process's stderr when it builds an interpreter (not a problem).
LITERT_NOISE = ("XNNPACK delegate for CPU",)
#: Threads per interpreter, as TensorFlow uses both cores of the 2-core servers Emojify is sized
#: for: on a busy machine the CPU time per call is the same with 1 or 2, and a batch of faces on a
#: quiet one is split over both.
THREADS = 2
#: Most images one interpreter runs at once; a longer batch is run in slices of this many. An
#: interpreter's buffers grow to the largest batch it was resized for and never shrink, and a pooled
#: one lives as long as its model is cached: one evaluation in batches of 256 left ~200 MB in the
#: server for good (issue 23, item 20). At 32 it keeps ~25 MB, for the same CPU time per image
#: (~4 ms from batches of 8 to 256 on the 2-core machine).
MAX_BATCH = 32


class DeriveError(RuntimeError):
    """A model that cannot be derived, or whose derived file does not answer as Keras does."""


def digest(keras_path: Path) -> str:
    """The first :data:`DIGEST_CHARS` hex digits of the SHA-256 of the file's bytes."""
    sha = hashlib.sha256()
    with keras_path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:DIGEST_CHARS]


def derived_path(keras_path: Path, file_digest: str | None = None) -> Path:
    """Where the ``.tflite`` derived from ``keras_path``'s current bytes lives (it may not exist)."""
    file_digest = file_digest or digest(keras_path)
    return keras_path.with_name(f"{keras_path.stem}.{file_digest}.tflite")


def stale_derived(keras_path: Path, keep: Path | None = None) -> list[Path]:
    """The files derived from earlier versions of ``keras_path`` (all but ``keep``)."""
    pattern = re.compile(rf"{re.escape(keras_path.stem)}\.[0-9a-f]{{{DIGEST_CHARS}}}\.tflite")
    return [
        path
        for path in keras_path.parent.glob(f"{keras_path.stem}.*.tflite")
        if pattern.fullmatch(path.name) and path != keep
    ]


class LiteRTForward:
    """``crops (N,48,48,1) float32 → (N,7)`` through LiteRT; safe to call from any thread.

    A LiteRT interpreter is not thread-safe and keeps the buffers of one batch size. Each call
    takes an idle interpreter from a pool (or builds one: ~40 ms) and gives it back, so threads
    calling at once never share one, and a thread that keeps its batch size keeps its buffers.
    No interpreter ever holds more than :data:`MAX_BATCH` images' buffers.
    """

    def __init__(self, content: bytes, interpreter_class: Any) -> None:
        self._content = content
        self._interpreter_class = interpreter_class
        self._idle: queue.SimpleQueue[_Runner] = queue.SimpleQueue()
        self._idle.put(self._runner())  # builds and checks one now: a bad file fails at load

    def _runner(self) -> _Runner:
        with stderr_without(LITERT_NOISE):  # printed when the tensors are first allocated
            interpreter = self._interpreter_class(model_content=self._content, num_threads=THREADS)
            interpreter.allocate_tensors()
        return _Runner(interpreter)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        try:
            runner = self._idle.get_nowait()
        except queue.Empty:
            runner = self._runner()
        try:
            if len(crops) <= MAX_BATCH:
                return runner(crops)
            return np.concatenate(
                [runner(crops[at : at + MAX_BATCH]) for at in range(0, len(crops), MAX_BATCH)]
            )
        finally:
            self._idle.put(runner)


class _Runner:
    """One interpreter, resized only when the batch size changes."""

    def __init__(self, interpreter: Any) -> None:
        [source], [result] = interpreter.get_input_details(), interpreter.get_output_details()
        expected_in, expected_out = [-1, *INPUT_SHAPE], [-1, NUM_CLASSES]
        if (
            list(source["shape_signature"]) != expected_in
            or list(result["shape_signature"]) != expected_out
            or source["dtype"] != np.float32
            or result["dtype"] != np.float32
        ):
            raise DeriveError(
                f"the file takes {list(source['shape_signature'])} and returns "
                f"{list(result['shape_signature'])}; expected {expected_in} → {expected_out} in float32"
            )
        self.interpreter = interpreter
        self.source, self.result = source["index"], result["index"]
        self.batch = -1

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) != self.batch:
            self.interpreter.resize_tensor_input(self.source, crops.shape, strict=True)
            self.interpreter.allocate_tensors()
            self.batch = len(crops)
        self.interpreter.set_tensor(self.source, np.ascontiguousarray(crops, dtype=np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.result)


def interpreter_class() -> Any | None:
    """LiteRT's ``Interpreter``, or None where ``ai-edge-litert`` is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    return Interpreter


def interpreter_available() -> bool:
    """Whether ``ai-edge-litert`` is installed, without importing it."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def load(keras_path: Path) -> LiteRTForward | None:
    """The LiteRT forward pass of ``keras_path``'s current version, or None (serve it with Keras):
    no derived file for these bytes, LiteRT missing, or a file LiteRT cannot run as the contract says."""
    interpreter = interpreter_class()
    if interpreter is None:
        return None
    try:
        path = derived_path(keras_path)
        content = path.read_bytes()
    except OSError:
        return None
    try:
        return LiteRTForward(content, interpreter)
    except Exception as err:  # LiteRT raises ValueError/RuntimeError for a bad file; all mean "not this"
        log.warning("Not using %s (%s): serving %s with Keras", path.name, err, keras_path.name)
        return None


def derive(keras_path: Path) -> Path:
    """Convert ``keras_path`` to LiteRT, check it against Keras and write it; the derived file's path.

    DeriveError when the model uses what LiteRT's built-in operations can't run, when the answers
    differ, or when the ``.keras`` file changed while it was read. Needs TensorFlow.
    """
    from app.classifier import EmotionClassifier

    before = digest(keras_path)
    keras_model = EmotionClassifier.load(keras_path, light=False)  # ModelError for a bad file
    content = _convert(keras_model.model)
    if digest(keras_path) != before:
        raise DeriveError(f"{keras_path.name} changed while it was converted")
    interpreter = interpreter_class()
    if interpreter is None:
        raise DeriveError("ai-edge-litert is not installed (pip install -r requirements.txt)")
    check_agreement(keras_model, LiteRTForward(content, interpreter))
    target = derived_path(keras_path, before)
    with atomic_output(target) as tmp:
        tmp.write_bytes(content)
    for stale in stale_derived(keras_path, keep=target):
        stale.unlink(missing_ok=True)
    return target


def check_agreement(keras_model: Any, light: LiteRTForward) -> float:
    """The largest probability difference on a fixed check batch; DeriveError above TOLERANCE or
    if any verdict differs. Random pixels and plain grey levels, at two batch sizes."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, (16, *INPUT_SHAPE)).astype(np.float32)
    flat = np.linspace(0, 255, 4, dtype=np.float32)[:, None, None, None] * np.ones(INPUT_SHAPE, np.float32)
    worst = 0.0
    for crops in (noise, flat, noise[:1]):
        expected, got = keras_model(crops), light(crops)
        worst = max(worst, float(np.abs(expected - got).max()))
        if worst > TOLERANCE or (expected.argmax(1) != got.argmax(1)).any():
            raise DeriveError(f"LiteRT's answers differ from Keras' by up to {worst:.2g}")
    return worst


def _convert(model: Any) -> bytes:
    """The model's inference call as a ``.tflite`` flatbuffer of LiteRT's built-in operations."""
    import tempfile

    import tensorflow as tf

    from app.keras_env import import_keras

    keras = import_keras()
    spec = tf.TensorSpec((None, *INPUT_SHAPE), tf.float32)
    with tempfile.TemporaryDirectory(prefix="emojify-litert-") as saved_model:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda pixels: model(pixels, training=False), input_signature=[spec])
        archive.write_out(saved_model, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            return converter.convert()
        except Exception as err:  # the converter raises ConverterError and others
            raise DeriveError(f"LiteRT cannot run this model ({str(err).strip().splitlines()[0]})") from err


_pending: queue.SimpleQueue[Path] = queue.SimpleQueue()
_asked: set[tuple[str, str]] = set()
_asked_lock = threading.Lock()
_worker: threading.Thread | None = None
_running: subprocess.Popen[str] | None = None


def derive_in_background(keras_path: Path) -> None:
    """Derive ``keras_path``'s LiteRT file in a low-priority child process, one model at a time.

    For a model the server had to serve with Keras (a run trained here, a re-exported file): the
    next server start serves it with LiteRT. Each version is asked once per process; a failure is
    logged (the model is simply served with Keras). A child still running when the server exits
    is stopped.
    """
    global _worker
    try:
        key = (str(keras_path.resolve()), digest(keras_path))
    except OSError:
        return
    with _asked_lock:
        if key in _asked or not interpreter_available():
            return
        _asked.add(key)
        _pending.put(Path(key[0]))
        if _worker is None:
            _worker = threading.Thread(target=_derive_pending, name="litert-derive", daemon=True)
            _worker.start()
            atexit.register(_stop_child)


def _derive_pending() -> None:
    global _running
    while True:
        keras_path = _pending.get()
        command = [sys.executable, "-m", "app.light_runtime", "--background", str(keras_path)]
        log.info("Deriving the LiteRT file of %s in the background", keras_path)
        _running = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        output, _ = _running.communicate()
        if _running.returncode == 0:
            log.info("Derived %s", output.strip().splitlines()[-1] if output.strip() else keras_path)
        else:
            log.warning("No LiteRT file for %s: %s", keras_path, output.strip()[-500:])
        _running = None


def _stop_child() -> None:
    child = _running
    if child is not None and child.poll() is None:
        child.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.light_runtime", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help=".keras files to derive a .tflite from")
    parser.add_argument("--background", action="store_true", help="run at a low CPU priority")
    args = parser.parse_args(argv)
    if args.background:
        os.nice(10)
    from app.classifier import ModelError

    for path in args.models:
        try:
            print(derive(path))
        except (ModelError, DeriveError, OSError) as err:
            print(f"error: {path}: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
