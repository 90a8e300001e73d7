"""``python -m training.export``: mirror averaging and ensembles inside one contract-keeping file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from app.classifier import EmotionClassifier, ModelError
from app.emotions import INPUT_SHAPE, NUM_CLASSES, REPO_ROOT
from app.explain import GradCam
from app.light_runtime import derived_path
from app.model_card import read_card, write_card
from model.architectures import build_model
from training.analysis import score
from training.data import load_split
from training.export import (
    BALANCE_GRID,
    BALANCE_MAX_ACCURACY_LOSS,
    averaged_model,
    balance,
    balance_shift,
    class_shares,
    serving_model,
    tune_balance,
    tuning_truth,
)
from training.votes import NO_MAJORITY

LOAD_AND_PREDICT = """
import sys, keras, numpy as np
model = keras.saving.load_model(sys.argv[1])
print(np.asarray(model.predict(np.load(sys.argv[2]), verbose=0)).tolist())
"""


def faces(n: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, size=(n, *INPUT_SHAPE)).astype(np.float32)


def trained_looking(name: str, seed: int) -> keras.Model:
    """An untrained model with random (not symmetric) weights: mirroring must change its answers."""
    keras.utils.set_random_seed(seed)
    return build_model(name)


def test_the_mirror_average_is_exactly_the_mean_over_face_and_mirror_image() -> None:
    member = trained_looking("resnet", 3)
    x = faces(5)

    averaged = averaged_model([member])

    expected = (member.predict(x, verbose=0) + member.predict(x[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(averaged.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(member.predict(x, verbose=0), expected, atol=1e-4)  # the mirror did count


@pytest.mark.parametrize("name", ["resnet", "vgg_bn"])
def test_the_served_member_has_no_augmentation_or_conv_batch_norm_and_the_same_answers(name: str) -> None:
    keras.utils.set_random_seed(4)
    member = build_model(name, augment=True, erasing=0.5, lighting=0.1)  # as training builds it
    rng = np.random.default_rng(4)
    for layer in member.layers:  # statistics as training leaves them, not the identity they start as
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, w.shape) if i != 1 else rng.normal(0, 0.5, w.shape)
                               for i, w in enumerate(layer.get_weights())])  # fmt: skip
    x = faces(6)
    assert not np.allclose(member(x), member(x), atol=1e-3)  # a plain call augments: Keras' default

    served = serving_model(member)

    kinds = [type(layer).__name__ for layer in served.layers]
    assert not [kind for kind in kinds if kind.startswith("Random")]
    convs = kinds.count("Conv2D")
    assert (
        sum(isinstance(layer, keras.layers.BatchNormalization) for layer in member.layers)
        - kinds.count("BatchNormalization")
        == convs
        > 0
    )  # every conv's normalisation went (vgg_bn's after its Dense stays)
    np.testing.assert_allclose(served(x), member.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_array_equal(served(x), served(x))


def test_cli_writes_an_ensemble_that_loads_without_the_project(tmp_path: Path) -> None:
    paths = []
    for index, name in enumerate(("resnet", "classic")):
        path = tmp_path / f"{name}.keras"
        trained_looking(name, index).save(path)
        write_card(path, {"architecture": name, "training": {"epochs_run": index + 1}})
        paths.append(path)
    out = tmp_path / "export" / "emotion_cnn.keras"

    done = subprocess.run(
        [sys.executable, "-m", "training.export", *map(str, paths), "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    classifier = EmotionClassifier.load(out)
    assert classifier.runtime == "LiteRT"  # the export derived the file the pages serve it with
    assert json.loads(done.stdout.splitlines()[-1])["litert"] == str(derived_path(out))
    np.save(tmp_path / "x.npy", faces(3))
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", LOAD_AND_PREDICT, str(out), str(tmp_path / "x.npy")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    outside = np.array(json.loads(loaded.stdout))
    np.testing.assert_allclose(outside, classifier(faces(3)), rtol=1e-4, atol=1e-6)
    assert outside.shape == (3, NUM_CLASSES)
    card = read_card(out)
    assert card["architecture"] == "ensemble" and card["export"]["mirror_average"] is True
    assert [member["architecture"] for member in card["export"]["members"]] == ["resnet", "classic"]
    assert card["training"] == {"epochs_run": 1}  # the first member's, for the pages
    assert GradCam(classifier.model)(faces(1), [3]).shape == (1, 48, 48)  # explained through one member


def test_a_broken_member_is_refused_with_a_message(tmp_path: Path) -> None:
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a model")

    done = subprocess.run(
        [sys.executable, "-m", "training.export", str(broken), "--out", str(tmp_path / "out.keras")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 2 and "not a readable Keras model" in done.stderr
    assert not (tmp_path / "out.keras").exists()


def test_balance_adds_minus_tau_log_share_to_every_logit() -> None:
    member = trained_looking("resnet", 4)
    x = faces(6)
    before = member.predict(x, verbose=0)
    shares = np.array([0.14, 0.015, 0.14, 0.25, 0.17, 0.17, 0.11])
    shares /= shares.sum()

    balance(member, balance_shift(shares, 0.5))

    weights = shares**-0.5
    expected = before * weights / (before * weights).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(member.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-6)
    assert expected[:, 1].mean() > before[:, 1].mean()  # the rare class gained


def test_auto_balance_is_tuned_on_public_test_and_keeps_accuracy(fer2013_dir: Path) -> None:
    shipped = EmotionClassifier.load(REPO_ROOT / "model" / "emotion_cnn.keras").model
    public = load_split(fer2013_dir, "public_test", limit_per_class=25)
    shares = class_shares(read_card(REPO_ROOT / "model" / "emotion_cnn.keras"))

    tau, tried = tune_balance([shipped], public, shares, mirror=False)

    assert [row["tau"] for row in tried] == list(BALANCE_GRID)
    chosen = next(row for row in tried if row["tau"] == tau)
    plain = tried[0]
    assert plain["accuracy"] == pytest.approx(
        score(public.y, shipped.predict(public.x, verbose=0))["accuracy"]
    )
    assert chosen["accuracy"] >= plain["accuracy"] - BALANCE_MAX_ACCURACY_LOSS
    assert chosen["macro_f1"] >= plain["macro_f1"]


def test_members_trained_on_votes_are_balanced_against_the_annotators_majority(fer2013_dir: Path) -> None:
    shipped = EmotionClassifier.load(REPO_ROOT / "model" / "emotion_cnn.keras").model
    public = load_split(fer2013_dir, "public_test", limit_per_class=25)
    voted = {"training": {"labels": {"source": "ferplus"}}}

    labels, labels_name = tuning_truth({"training": {"labels": {"source": "fer2013"}}}, public)
    majority, majority_name = tuning_truth(voted, public)
    _, tried = tune_balance([shipped], public, np.full(NUM_CLASSES, 1 / NUM_CLASSES), truth=majority)

    assert labels_name == "FER2013 labels" and np.array_equal(labels, public.y)
    assert majority_name == "FER+ annotators' majority"
    clear = majority != NO_MAJORITY
    assert 0.8 * len(public) < clear.sum() < len(public)  # ties and contempt/unknown are left out
    assert 0.2 < np.mean(majority[clear] != public.y[clear]) < 0.5  # another truth than the labels
    predicted = shipped.predict(public.x, verbose=0).argmax(axis=1)
    assert tried[0]["accuracy"] == pytest.approx(np.mean(predicted[clear] == majority[clear]))


def test_balance_refuses_a_member_without_a_softmax_layer() -> None:
    averaged = averaged_model([trained_looking("classic", 5)])
    with pytest.raises(ModelError, match="softmax"):
        balance(averaged, np.zeros(NUM_CLASSES))
