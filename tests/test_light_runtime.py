"""The LiteRT runtime (app.light_runtime) answers as the Keras model it is derived from, or not at all.

The pages serve the shipped model through its derived ``.tflite`` so that a cold server does not
import TensorFlow before its first photo result (issue 23, item 15). These tests hold it to the
Keras model on real faces, refuse a stale or broken file, and check that both runtimes live in
one process, in either import order, and with many calling threads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from app.classifier import EmotionClassifier
from app.detection import FaceDetector
from app.emotions import DEFAULT_MODEL_PATH, INPUT_SHAPE, NUM_CLASSES, REPO_ROOT
from app.images import read_image
from app.light_runtime import TOLERANCE, derive, derived_path, stale_derived
from app.pipeline import Pipeline
from training.data import load_split

FACES = Path(__file__).parent / "fixtures" / "faces"


@pytest.fixture(scope="module")
def shipped() -> tuple[EmotionClassifier, EmotionClassifier]:
    """The shipped model through LiteRT and through Keras."""
    light = EmotionClassifier.load(DEFAULT_MODEL_PATH)
    assert light.runtime == "LiteRT", (
        "model/ has no valid .tflite for emotion_cnn.keras: run app.light_runtime"
    )
    return light, EmotionClassifier.load(DEFAULT_MODEL_PATH, light=False)


def small_model(path: Path, seed: int) -> Path:
    """A small contract-keeping model with random weights (a trained one takes minutes)."""
    from app.keras_env import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def test_the_shipped_model_has_its_derived_file_and_no_stale_one() -> None:
    assert derived_path(DEFAULT_MODEL_PATH).is_file()
    assert stale_derived(DEFAULT_MODEL_PATH, keep=derived_path(DEFAULT_MODEL_PATH)) == []


def test_litert_answers_as_keras_on_fer2013_private_test(fer2013_dir: Path, shipped) -> None:
    light, keras_served = shipped
    crops = load_split(fer2013_dir, "private_test", limit_per_class=150).x

    got = np.concatenate([light(batch) for batch in np.array_split(crops, 16)])
    expected = np.concatenate([keras_served(batch) for batch in np.array_split(crops, 16)])

    assert got.shape == (len(crops), NUM_CLASSES) and len(crops) > 900
    assert np.abs(got - expected).max() <= TOLERANCE
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_photos_get_the_same_verdicts_through_the_pipeline(shipped) -> None:
    light, keras_served = shipped
    detector = FaceDetector()
    seen = 0
    for photo in sorted(FACES.glob("*.jpg")):
        rgb = read_image(photo.read_bytes())
        light_faces = Pipeline(detector, light).analyze(rgb)
        keras_faces = Pipeline(detector, keras_served).analyze(rgb)
        assert [face.emotion for face in light_faces] == [face.emotion for face in keras_faces], photo.name
        for a, b in zip(light_faces, keras_faces, strict=True):
            assert np.abs(np.subtract(a.probabilities, b.probabilities)).max() <= TOLERANCE
        seen += len(light_faces)
    assert seen >= 20


def test_threads_calling_one_classifier_at_once_each_get_their_own_answers(shipped) -> None:
    light, _ = shipped
    rng = np.random.default_rng(7)
    batches = [rng.uniform(0, 255, (size, *INPUT_SHAPE)).astype(np.float32) for size in (1, 2, 3, 5, 8, 1)]
    expected = [light(batch) for batch in batches]
    wrong: list[int] = []
    start = threading.Barrier(len(batches))

    def call(index: int) -> None:
        start.wait()
        for _ in range(25):
            if not np.allclose(light(batches[index]), expected[index], atol=1e-6):
                wrong.append(index)

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_stale_or_broken_derived_file_is_never_used(tmp_path: Path) -> None:
    model = small_model(tmp_path / "best.keras", seed=1)
    # The shipped model's file, named as if best.keras had been that model before a retraining.
    stale = tmp_path / f"best.{'0' * 16}.tflite"
    shutil.copyfile(derived_path(DEFAULT_MODEL_PATH), stale)
    assert stale_derived(model) == [stale]
    served = EmotionClassifier.load(model)
    assert served.runtime == "Keras"
    x = np.random.default_rng(2).uniform(0, 255, (3, *INPUT_SHAPE)).astype(np.float32)
    np.testing.assert_allclose(served(x), np.asarray(served.model(x)), atol=1e-6)

    derived_path(model).write_bytes(b"not a flatbuffer")  # the right name, broken contents
    assert EmotionClassifier.load(model).runtime == "Keras"


def test_derive_writes_a_checked_file_beside_the_model_and_drops_stale_ones(tmp_path: Path) -> None:
    model = small_model(tmp_path / "best.keras", seed=3)
    stale = tmp_path / f"best.{'a' * 16}.tflite"
    stale.write_bytes(b"from an earlier best.keras")
    (tmp_path / "last.keras").write_bytes(b"")  # another model's files stay
    kept = tmp_path / f"last.{'b' * 16}.tflite"
    kept.write_bytes(b"")

    written = derive(model)

    assert written == derived_path(model) and written.is_file()
    assert not stale.exists() and kept.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["best.keras", written.name, "last.keras", kept.name]
    )
    light = EmotionClassifier.load(model)
    assert light.runtime == "LiteRT"
    x = np.random.default_rng(4).uniform(0, 255, (4, *INPUT_SHAPE)).astype(np.float32)
    assert np.abs(light(x) - EmotionClassifier.load(model, light=False)(x)).max() <= TOLERANCE


def test_deleting_a_run_deletes_the_litert_files_derived_from_its_models(tmp_path: Path) -> None:
    from app.runs import delete_run, write_status

    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    write_status(run_dir, "finished")
    for name in ("best", "last"):
        (run_dir / f"{name}.keras").write_bytes(name.encode())
        derived_path(run_dir / f"{name}.keras").write_bytes(b"derived")

    delete_run(run_dir, tmp_path)

    assert not run_dir.exists()  # nothing of the run is left behind


#: The server imports streamlit-webrtc (aiortc) before TensorFlow, whose bundled crypto libraries
#: clash with aiortc's SRTP library the other way round (a segfault). A LiteRT model starts loading
#: before that import (app/streamlit_app.py), so LiteRT comes before aiortc too; TensorFlow comes
#: later for Grad-CAM, or before the model's load when something else (training) had imported it.
BOTH_RUNTIMES = """
import json, os, sys
import numpy as np
from app.emotions import DEFAULT_MODEL_PATH
from app import model_loading

def webrtc():
    import pylibsrtp, streamlit_webrtc
    key, rtp = os.urandom(30), bytes([0x80, 8, 0, 1, 0, 0, 0, 1, 0x12, 0x34, 0x56, 0x78]) + b"x" * 40
    out, back = (pylibsrtp.Session(policy=pylibsrtp.Policy(key=key, ssrc_type=t))
                 for t in (pylibsrtp.Policy.SSRC_ANY_OUTBOUND, pylibsrtp.Policy.SSRC_ANY_INBOUND))
    assert back.unprotect(out.protect(rtp)) == rtp

x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype("float32")
if sys.argv[1] != "litert-before-aiortc":
    webrtc()
if sys.argv[1] == "tensorflow-first":
    from app.keras_env import import_keras
    import_keras()
classifier = model_loading.loaded(DEFAULT_MODEL_PATH)
light = classifier(x)
tensorflow_before_model = "tensorflow" in sys.modules
if sys.argv[1] == "litert-before-aiortc":
    webrtc()
keras_answer = np.asarray(classifier.model(x, training=False))
print(json.dumps({"runtime": classifier.runtime, "tensorflow_before_model": tensorflow_before_model,
                  "tensorflow_after_model": "tensorflow" in sys.modules,
                  "difference": float(np.abs(light - keras_answer).max())}))
"""


@pytest.mark.parametrize("order", ["litert-before-aiortc", "litert-first", "tensorflow-first"])
def test_litert_and_tensorflow_live_in_one_server_in_either_order(order: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BOTH_RUNTIMES, order],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["runtime"] == "LiteRT" and result["difference"] <= TOLERANCE
    # The model served the pages without TensorFlow; Grad-CAM's Keras model brought it in.
    assert result["tensorflow_before_model"] == (order == "tensorflow-first")
    assert result["tensorflow_after_model"]
    assert "XNNPACK" not in done.stderr  # LiteRT's start-up line stays out of the server's log
