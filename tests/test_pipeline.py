"""The photo pipeline on real photos with the shipped model: faces found, emotions right."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from app.classifier import EmotionClassifier
from app.detection import Box, FaceDetector
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH, NUM_CLASSES
from app.images import read_image
from app.pipeline import Face, OverlayOptions, Pipeline

from bad_inputs import FIXTURES

FACES = FIXTURES / "faces"


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(FaceDetector(), EmotionClassifier.load(DEFAULT_MODEL_PATH))


def london_labels() -> dict[str, str]:
    with open(FACES / "labels.csv", newline="") as handle:
        return {row["file"]: row["label"] for row in csv.DictReader(handle)}


def test_smiling_astronaut_is_one_happy_face(pipeline):
    faces = pipeline.analyze(read_image(FIXTURES / "astronaut.png"))
    assert len(faces) == 1
    assert faces[0].emotion == "happy"
    x, y, w, h = faces[0].box.as_list()
    assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 170  # her face, not the flag or the rocket


def test_photo_without_a_face_gives_no_face(pipeline):
    assert pipeline.analyze(read_image(FIXTURES / "coffee.png")) == []


def test_london_portraits_read_mostly_right(pipeline):
    predictions = {name: pipeline.analyze(read_image(FACES / name)) for name in london_labels()}
    assert all(len(faces) == 1 for faces in predictions.values())
    correct = sum(faces[0].emotion == london_labels()[name] for name, faces in predictions.items())
    assert correct >= 16, f"only {correct}/{len(predictions)} portraits read right"


def test_every_persons_smile_raises_happy_well_above_their_neutral_face(pipeline):
    # Several smiles are closed-mouth and subtle, so the label may stay neutral; the
    # probability must still move clearly the right way for each person.
    # The shipped ensemble moves 11 of the 12 by 3.5× or more; london_018's barely visible smile
    # moves it 1.6× (the earlier classic CNN moved all 12 by 3×, but reads fewer photos right).
    people = {name.rsplit("_", 1)[0] for name in london_labels()}
    ratios = {}
    for person in sorted(people):
        smile, rest = (
            pipeline.analyze(read_image(FACES / f"{person}_{label}.jpg"))[0].to_dict()["probabilities"]
            for label in ("happy", "neutral")
        )
        ratios[person] = smile["happy"] / rest["happy"]
    assert all(ratio > 1.2 for ratio in ratios.values()), ratios
    assert sum(ratio >= 3 for ratio in ratios.values()) >= len(ratios) - 1, ratios


def test_several_faces_give_one_result_each_in_one_batch(pipeline):
    people = [read_image(FACES / f"london_0{n}_happy.jpg") for n in ("09", "14", "22")]
    group = np.concatenate(people, axis=1)  # three real people side by side
    calls = []

    def counting(crops: np.ndarray) -> np.ndarray:
        calls.append(len(crops))
        return pipeline.classifier(crops)

    faces = Pipeline(pipeline.detector, counting, pipeline.emojis).analyze(group)
    assert len(faces) == 3 and calls == [3]
    centres = sorted(face.box.center[0] // 675 for face in faces)
    assert centres == [0, 1, 2]  # one face in each portrait


def test_annotation_draws_over_the_face_only(pipeline):
    rgb = read_image(FIXTURES / "astronaut.png")
    faces = pipeline.analyze(rgb)
    out = pipeline.annotate(rgb, faces, OverlayOptions(labels=False))
    changed = np.argwhere(np.any(out != rgb, axis=2))
    (top, left), (bottom, right) = changed.min(0), changed.max(0)
    box = faces[0].box
    assert box.x - 5 <= left and right <= box.x + box.w + 5
    assert box.y - 5 <= top and bottom <= box.y + box.h + 5
    assert np.array_equal(rgb, read_image(FIXTURES / "astronaut.png"))  # input untouched


def test_emoji_at_the_frame_edge_is_clipped(pipeline):
    rgb = np.full((100, 120, 3), 90, dtype=np.uint8)
    uniform = tuple([1 / NUM_CLASSES] * NUM_CLASSES)
    faces = [Face(Box(-40, -30, 80, 80), uniform), Face(Box(90, 60, 80, 80), uniform)]
    out = pipeline.annotate(rgb, faces)
    assert out.shape == rgb.shape and not np.array_equal(out, rgb)


def test_face_checks_its_probabilities():
    with pytest.raises(ValueError, match="7 probabilities"):
        Face(Box(0, 0, 10, 10), (1.0,))
    with pytest.raises(ValueError, match="sum to 1"):
        Face(Box(0, 0, 10, 10), (0.5,) * NUM_CLASSES)
    face = Face(Box(1, 2, 3, 4), (0, 0, 0, 0.9, 0.1, 0, 0))
    assert face.to_dict() == {
        "box": [1, 2, 3, 4],
        "emotion": "happy",
        "confidence": 0.9,
        "probabilities": dict(zip(CLASS_NAMES, [0, 0, 0, 0.9, 0.1, 0, 0], strict=True)),
    }
