"""The "best on a CPU" recipe on real FER2013 images: AdamW, cosine with warm-up, mixed precision.

The preset's whole path runs on a small slice: the warm-up reaches the peak rate after its epochs,
a resume for more epochs stretches the cosine so it still ends at zero, and whatever the training
precision, the saved inference model is float32 and honours the model contract.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from app.emotions import INPUT_SHAPE, NUM_CLASSES
from app.runs import read_run
from model.architectures import build_model
from training.config import PRESETS, TrainConfig
from training.precision import MIXED, choose_policy, cpu_has_bf16, dtype_policy
from training.train import inference_copy, resume, train

BATCH = 16


def test_cpu_preset_warms_up_then_a_longer_resume_still_anneals_to_zero(
    fer2013_dir: Path, tmp_path: Path
) -> None:
    config = TrainConfig.from_preset(
        "cpu",
        data_dir=fer2013_dir,
        run_name="recipe",
        runs_dir=tmp_path,
        epochs=2,
        warmup_epochs=1,
        batch_size=BATCH,
        limit_per_class=12,
    )
    peak = PRESETS["cpu"].settings["learning_rate"]

    run_dir = train(config, verbose=0)

    first = read_run(run_dir)
    assert first.state == "finished"
    assert [row["lr"] for row in first.history] == pytest.approx([0.0, peak])  # rates at epoch starts
    last = keras.saving.load_model(run_dir / "last.keras")
    assert isinstance(last.optimizer, keras.optimizers.AdamW)
    assert float(last.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # annealed at epoch 2

    resume(run_dir, epochs=4, verbose=0)

    history = read_run(run_dir).history
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert 0 < history[2]["lr"] < peak and history[3]["lr"] < history[2]["lr"]  # stretched cosine
    resumed = keras.saving.load_model(run_dir / "last.keras")
    assert float(resumed.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    best = keras.saving.load_model(run_dir / "best.keras")
    assert {layer.dtype_policy.name for layer in best.layers} == {"float32"}


def test_a_mixed_precision_model_is_saved_for_inference_in_float32_without_augmentation() -> None:
    with dtype_policy(MIXED):
        mixed = build_model("resnet", augment=True, erasing=0.5, lighting=0.2)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert mixed.layers[-2].compute_dtype == "bfloat16"
    x = np.random.default_rng(0).uniform(0, 255, size=(4, *INPUT_SHAPE)).astype(np.float32)

    copy = inference_copy(mixed)

    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    assert all(weight.dtype == "float32" for weight in copy.weights)
    assert not [layer for layer in copy.layers if type(layer).__name__.startswith("Random")]
    np.testing.assert_array_equal(copy(x), copy(x))  # an outside model(x) is not augmented
    got, expected = copy.predict(x, verbose=0), mixed.predict(x, verbose=0)
    assert got.shape == (4, NUM_CLASSES) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=0.05)  # bfloat16 keeps ~3 significant digits


def test_mixed_precision_falls_back_to_float32_on_a_cpu_without_bfloat16(tmp_path: Path) -> None:
    with_bf16, without = tmp_path / "bf16", tmp_path / "plain"
    with_bf16.write_text("processor : 0\nflags : fpu sse avx2 avx512f avx512_bf16\n")
    without.write_text("processor : 0\nflags : fpu sse avx2\n")
    assert cpu_has_bf16(with_bf16) and not cpu_has_bf16(without)
    assert not cpu_has_bf16(tmp_path / "missing")
    policy, why = choose_policy(False)
    assert policy == "float32" and "off" in why
    policy, why = choose_policy(True)
    if not cpu_has_bf16() and not any("gpu" in d.lower() for d in keras.distribution.list_devices()):
        assert policy == "float32" and "no bfloat16" in why
    else:
        assert policy == MIXED
