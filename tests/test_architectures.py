"""Every registered architecture honours the model contract the app and the trainer rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from app.emotions import INPUT_SHAPE, NUM_CLASSES
from model.architectures import ARCHITECTURES, build_model

# Loads each saved model in an isolated interpreter (-I: no cwd, no PYTHONPATH on sys.path), so it
# fails if loading needs any project code, and checks the answers match those of the original.
LOAD_WITHOUT_PROJECT = """
import json, sys
import keras, numpy as np
cases = json.loads(sys.argv[1])
for path, inputs, expected in cases:
    model = keras.saving.load_model(path)
    got = model.predict(np.load(inputs), verbose=0)
    np.testing.assert_allclose(got, np.load(expected), rtol=1e-5, atol=1e-6)
leaked = sorted({name.split(".")[0] for name in sys.modules} & {"app", "model", "training"})
assert not leaked, leaked
print("ok", len(cases))
"""


def pixels(n: int) -> np.ndarray:
    """A batch shaped like the models' input: float32 grayscale pixels in 0..255."""
    return np.random.default_rng(0).uniform(0, 255, size=(n, *INPUT_SHAPE)).astype(np.float32)


@pytest.mark.parametrize("augment", [False, True], ids=["plain", "augmented"])
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_model_maps_pixels_to_class_probabilities(name: str, augment: bool) -> None:
    model = build_model(name, augment=augment)
    x = pixels(5)

    probabilities = model.predict(x, verbose=0)

    assert model.name == name
    assert model.input_shape == (None, *INPUT_SHAPE)
    assert probabilities.shape == (5, NUM_CLASSES)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert (probabilities >= 0).all()
    # Augmentation must be inactive at inference: the same input gives the same answer.
    np.testing.assert_array_equal(model.predict(x, verbose=0), probabilities)


def test_saved_models_load_without_project_code(tmp_path: Path) -> None:
    cases = []
    for name in sorted(ARCHITECTURES):
        model = build_model(name, augment=True)
        path, inputs, expected = (tmp_path / f"{name}{suffix}" for suffix in (".keras", "_x.npy", "_p.npy"))
        model.save(path)
        np.save(inputs, pixels(4))
        np.save(expected, model.predict(np.load(inputs), verbose=0))
        cases.append([str(path), str(inputs), str(expected)])

    result = subprocess.run(
        [sys.executable, "-I", "-c", LOAD_WITHOUT_PROJECT, json.dumps(cases)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ok {len(cases)}" in result.stdout


def test_vgg_bn_saves_under_5_mb(tmp_path: Path) -> None:
    path = tmp_path / "vgg_bn.keras"
    build_model("vgg_bn").save(path)

    assert path.stat().st_size < 5_000_000


def test_classic_is_the_tutorial_cnn() -> None:
    model = build_model("classic")

    def describe(layer: keras.layers.Layer) -> tuple:
        config = layer.get_config()
        size = config.get("filters") or config.get("units") or config.get("rate") or config.get("pool_size")
        return type(layer).__name__, size, config.get("activation"), config.get("padding")

    assert [describe(layer) for layer in model.layers[2:]] == [
        ("Conv2D", 32, "relu", "valid"),
        ("Conv2D", 64, "relu", "valid"),
        ("MaxPooling2D", (2, 2), None, "valid"),
        ("Dropout", 0.25, None, None),
        ("Conv2D", 128, "relu", "valid"),
        ("MaxPooling2D", (2, 2), None, "valid"),
        ("Conv2D", 128, "relu", "valid"),
        ("MaxPooling2D", (2, 2), None, "valid"),
        ("Dropout", 0.25, None, None),
        ("Flatten", None, None, None),
        ("Dense", 1024, "relu", None),
        ("Dropout", 0.5, None, None),
        ("Dense", NUM_CLASSES, "softmax", None),
    ]
    assert [type(layer).__name__ for layer in model.layers[:2]] == ["InputLayer", "Rescaling"]


def test_unknown_architecture_lists_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match="unknown architecture 'resnet9000'; known: classic, vgg_bn, resnet, resnet_wide"
    ):
        build_model("resnet9000")


def test_the_catalog_the_pages_read_names_exactly_the_registered_architectures() -> None:
    from model.catalog import ARCHITECTURE_NOTES

    assert list(ARCHITECTURE_NOTES) == list(ARCHITECTURES)
