"""What the server lets go of: a model dropped from the cache, a training once its job ends.

Every model load freezes whatever is alive at that moment (``gc.freeze`` in app.model_loading).
Keras models are reference cycles that only the collector frees, so a model frozen while in use
stayed for good once it became garbage: a walk through the pages with three trainings and a few
evaluations ended with the server at ~1.9 GB (issue 23, item 20). These tests hold a weak
reference to the model and check it is gone once its owner let go, without unfreezing anything
themselves (that would hide the leak).

A training's step graphs outlived it even once its model was freed: TensorFlow's gradient
registry kept them, ~150 MB per walk of three trainings, and TensorFlow's allocator kept what its
largest batch took. A training now runs in a child process (training.jobs); a test looks for
graphs and functions a real job left in the server once it has ended.

An evaluation on the Analysis page ran the model in batches of 256, and what serves a model keeps
memory sized for the largest batch it ran: a LiteRT interpreter its buffers (~200 MB, for as long
as the model is cached), TensorFlow's oneDNN allocator its pool (~250 MB, for good). The last tests
hold both to small batches.
"""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app import light_runtime, model_loading
from app.emotions import DEFAULT_MODEL_PATH, INPUT_SHAPE, NUM_CLASSES
from training import evaluation_jobs
from training.config import TrainConfig
from training.data import load_split


def small_models(folder: Path, count: int) -> list[Path]:
    """``count`` files of a small model that meets the app's contract: distinct file versions,
    each loaded and cached on its own (a trained one would take minutes to make on a busy machine)."""
    from app.keras_env import import_keras

    keras = import_keras()
    layers = [keras.layers.Flatten(), keras.layers.Dense(NUM_CLASSES, activation="softmax")]
    model = keras.Sequential([keras.Input(INPUT_SHAPE), *layers])
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "model0.keras"
    model.save(first)
    return [first, *(Path(shutil.copyfile(first, folder / f"model{n}.keras")) for n in range(1, count))]


def tiny_run(data_dir: Path, tmp_path: Path, name: str) -> TrainConfig:
    """A one-epoch Tutorial CNN run of the few images of ``data_dir``: seconds, once traced."""
    return TrainConfig(
        data_dir=data_dir,
        run_name=name,
        arch="classic",
        epochs=1,
        batch_size=8,
        augment=False,
        runs_dir=tmp_path / "runs",
    )


def test_a_model_dropped_from_the_cache_is_freed(tmp_path: Path) -> None:
    first, *others = small_models(tmp_path, model_loading.KEPT + 1)
    dropped = weakref.ref(model_loading.loaded(first).model)
    for path in others:  # each load freezes what is alive, the first model too
        model_loading.loaded(path)
    assert dropped() is None, "a model dropped from the cache stays in memory"


def traced() -> list[Any]:
    """The graphs and functions TensorFlow traced that are alive now, frozen ones too."""
    from tensorflow.python.eager.polymorphic_function.atomic_function import AtomicFunction
    from tensorflow.python.framework.func_graph import FuncGraph

    frozen = gc.get_freeze_count() > 0
    gc.unfreeze()  # gc.get_objects() leaves out what a model load froze
    gc.collect()
    alive = [thing for thing in gc.get_objects() if isinstance(thing, FuncGraph | AtomicFunction)]
    if frozen:
        gc.freeze()
    return alive


def test_a_finished_training_leaves_none_of_its_graphs(fer2013_mini: Path, tmp_path: Path) -> None:
    from training.jobs import manager

    before = traced()
    progress = manager().start(tiny_run(fer2013_mini, tmp_path, "traced")).wait(timeout=600)
    assert progress.state == "finished", progress.message
    left = [str(thing.name) for thing in traced() if not any(thing is old for old in before)]
    assert left == [], "the training's step graphs and their functions outlive its job"


def test_a_litert_interpreter_is_never_sized_for_more_than_max_batch_images(fer2013_dir: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    sizes: list[int] = []

    class Recording(Interpreter):  # type: ignore[misc]
        """LiteRT's interpreter, noting every batch size it is resized for."""

        def resize_tensor_input(self, index: int, shape: Any, strict: bool = False) -> None:
            sizes.append(int(shape[0]))
            super().resize_tensor_input(index, shape, strict=strict)

    content = light_runtime.derived_path(DEFAULT_MODEL_PATH).read_bytes()
    forward = light_runtime.LiteRTForward(content, Recording)
    faces = load_split(fer2013_dir, "private_test", limit_per_class=40).x  # 280 real faces

    answers = forward(faces)

    assert max(sizes) <= light_runtime.MAX_BATCH, "an interpreter kept the buffers of a whole long batch"
    in_fives = np.concatenate([forward(faces[at : at + 5]) for at in range(0, len(faces), 5)])
    np.testing.assert_allclose(answers, in_fives, atol=1e-6)  # every face's answer, in order


def test_an_evaluation_gives_the_model_no_more_than_32_images_at_once(
    fer2013_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [path] = small_models(tmp_path, 1)  # served with Keras, as a run trained on the server is
    batches: list[int] = []

    def recorded(model_path: Path) -> Any:
        classifier = model_loading.loaded(model_path)

        def predict(crops: np.ndarray) -> np.ndarray:
            batches.append(len(crops))
            return classifier(crops)

        return predict

    monkeypatch.setattr(evaluation_jobs, "loaded", recorded)
    work = evaluation_jobs.evaluate_split(
        path, lambda: load_split(fer2013_dir, "private_test", limit_per_class=40), "PrivateTest", votes=False
    )
    job = evaluation_jobs.start(("bounded", str(path)), "PrivateTest", work)
    evaluation = job.future.result(timeout=600)

    assert len(evaluation.y_true) == sum(batches) == 280
    assert max(batches) <= 32, "TensorFlow's oneDNN pool keeps memory sized for the largest batch"
