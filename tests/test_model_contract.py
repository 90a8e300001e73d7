"""The shipped model honours the contract every page and check relies on."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from app.classifier import EmotionClassifier, ModelError
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH, INPUT_SHAPE
from app.framing import crop_faces
from app.images import read_image, to_gray

from bad_inputs import FIXTURES

CONTRACT_CHECK = """
import json, sys
import numpy as np, keras
model = keras.saving.load_model(sys.argv[1])
x = np.random.default_rng(0).uniform(0, 255, (5, 48, 48, 1)).astype("float32")
p = np.asarray(model(x))  # the plain call an outside check makes: no training-time randomness
again, predicted = np.asarray(model(x)), model.predict(x, verbose=0)
print(json.dumps({"in": list(model.input_shape), "out": list(p.shape), "sums": p.sum(1).tolist(),
                  "min": float(p.min()), "dtype": str(p.dtype),
                  "drift": float(max(abs(p - again).max(), abs(p - predicted).max()))}))
"""


def test_model_loads_without_project_code_and_returns_probabilities(tmp_path):
    # Run from an empty folder with a clean path: only Keras, no `app` or `model` package.
    done = subprocess.run(
        [sys.executable, "-I", "-c", CONTRACT_CHECK, str(DEFAULT_MODEL_PATH)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["in"] == [None, *INPUT_SHAPE]
    assert result["out"] == [5, len(CLASS_NAMES)]
    assert result["dtype"] == "float32" and result["min"] >= 0
    assert np.allclose(result["sums"], 1.0, atol=1e-5)
    assert result["drift"] < 1e-5  # the same answers on every call, and predict's


def test_model_card_names_the_classes_in_output_order():
    card = json.loads(DEFAULT_MODEL_PATH.with_suffix(".json").read_text())
    assert card["classes"] == list(CLASS_NAMES)


def test_fast_path_matches_keras_predict():
    classifier = EmotionClassifier.load(DEFAULT_MODEL_PATH)
    gray = to_gray(read_image(FIXTURES / "astronaut.png"))
    from app.detection import FaceDetector

    crops = crop_faces(gray, FaceDetector().detect(gray))
    fast = classifier(crops)
    slow = classifier.model.predict(crops, verbose=0)
    assert fast.shape == (1, len(CLASS_NAMES)) and fast.dtype == np.float32
    assert np.allclose(fast, slow, atol=1e-5)
    assert classifier(np.zeros((0, *INPUT_SHAPE), np.float32)).shape == (0, len(CLASS_NAMES))


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "not found"), (b"not a zip", "not a readable Keras model")],
)
def test_bad_model_files_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / "broken.keras"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        EmotionClassifier.load(path)


def test_model_with_the_wrong_shape_is_refused(tmp_path):
    import keras

    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs))
    path = tmp_path / "wrong.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ModelError, match="needs"):
        EmotionClassifier.load(path)
