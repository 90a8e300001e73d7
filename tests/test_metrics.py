"""training.analysis on hand-built predictions whose metrics were worked out on paper.

The confusion matrix below (rows = true, columns = predicted) fixes every count; the expected
precision, recall and F1 are written as the fractions TP/(TP+FP), TP/(TP+FN) and
2TP/(2TP+FP+FN) of those counts, not computed by the code under test.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from fractions import Fraction as F
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.emotions import CLASS_NAMES, NUM_CLASSES
from training.analysis import (
    ResultError,
    card_result,
    cell_examples,
    check_result,
    compare_frame,
    confusion_frame,
    confusion_png,
    file_stem,
    load_folder,
    load_zip,
    per_class_csv,
    per_class_frame,
    predict_dataset,
    score,
    summary_deltas,
)
from training.data import Dataset, DatasetError

#          angry disgust fear happy neutral sad surprise   (predicted)
CONFUSION = [
    [3, 0, 1, 0, 0, 0, 0],  # angry     support 4
    [1, 1, 0, 0, 0, 0, 0],  # disgust   support 2
    [0, 0, 2, 0, 0, 1, 0],  # fear      support 3
    [0, 0, 0, 5, 0, 0, 0],  # happy     support 5
    [0, 0, 0, 1, 2, 1, 0],  # neutral   support 4
    [0, 0, 1, 0, 1, 2, 0],  # sad       support 4
    [0, 0, 1, 0, 0, 0, 1],  # surprise  support 2
]
# Column sums (predicted): 4, 1, 5, 6, 3, 4, 1; diagonal 16 of 24 images.
PRECISION = [F(3, 4), F(1, 1), F(2, 5), F(5, 6), F(2, 3), F(2, 4), F(1, 1)]
RECALL = [F(3, 4), F(1, 2), F(2, 3), F(5, 5), F(2, 4), F(2, 4), F(1, 2)]
F1 = [F(6, 8), F(2, 3), F(4, 8), F(10, 11), F(4, 7), F(4, 8), F(2, 3)]
SUPPORT = [4, 2, 3, 5, 4, 4, 2]


def predictions_from(confusion: list[list[int]], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax-like probabilities whose argmax reproduces ``confusion`` exactly (shuffled)."""
    rng = np.random.default_rng(seed)
    y_true, y_pred = [], []
    for t, row in enumerate(confusion):
        for p, count in enumerate(row):
            y_true += [t] * count
            y_pred += [p] * count
    order = rng.permutation(len(y_true))
    y_true, y_pred = np.array(y_true)[order], np.array(y_pred)[order]
    probabilities = rng.uniform(0.0, 0.1, size=(len(y_true), NUM_CLASSES))
    probabilities[np.arange(len(y_true)), y_pred] = rng.uniform(0.3, 0.9, size=len(y_true))
    return y_true, probabilities / probabilities.sum(axis=1, keepdims=True)


def test_score_matches_the_hand_computed_metrics() -> None:
    y_true, probabilities = predictions_from(CONFUSION)

    result = score(y_true, probabilities)

    assert result["confusion"] == CONFUSION
    assert result["n"] == 24
    assert result["accuracy"] == pytest.approx(16 / 24)
    for name, precision, recall, f1, support in zip(CLASS_NAMES, PRECISION, RECALL, F1, SUPPORT, strict=True):
        row = result["per_class"][name]
        assert row["precision"] == pytest.approx(float(precision)), name
        assert row["recall"] == pytest.approx(float(recall)), name
        assert row["f1"] == pytest.approx(float(f1)), name
        assert row["support"] == support, name
    assert result["macro_f1"] == pytest.approx(float(sum(F1) / 7))
    assert result["balanced_accuracy"] == pytest.approx(float(sum(RECALL) / 7))
    assert check_result(result) == result  # the shape cards store


def test_a_class_never_predicted_scores_zero_not_nan() -> None:
    confusion = [row[:] for row in CONFUSION]
    confusion[1] = [2, 0, 0, 0, 0, 0, 0]  # disgust: both images called angry, and nothing else says disgust
    y_true, probabilities = predictions_from(confusion)

    result = score(y_true, probabilities)

    assert result["per_class"]["disgust"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert result["per_class"]["angry"]["precision"] == pytest.approx(3 / 5)


def test_per_class_table_and_csv_hold_the_same_rows() -> None:
    result = score(*predictions_from(CONFUSION))

    frame = per_class_frame(result)
    lines = per_class_csv(result).splitlines()

    assert list(frame.columns) == ["class", "precision", "recall", "f1", "support"]
    assert frame["class"].tolist() == list(CLASS_NAMES)
    assert frame["support"].tolist() == SUPPORT
    assert lines[0] == "class,precision,recall,f1,support"
    assert lines[1] == "angry,0.7500,0.7500,0.7500,4"
    assert lines[4] == "happy,0.8333,1.0000,0.9091,5"
    assert len(lines) == 1 + NUM_CLASSES


def test_confusion_frame_counts_and_row_shares() -> None:
    frame = confusion_frame(score(*predictions_from(CONFUSION))).set_index(["true", "predicted"])

    assert len(frame) == NUM_CLASSES**2
    assert frame.loc[("neutral", "sad"), "count"] == 1
    assert frame.loc[("neutral", "sad"), "share"] == pytest.approx(1 / 4)
    assert frame.loc[("happy", "happy"), "share"] == 1.0
    assert frame.groupby(level="true")["share"].sum().tolist() == pytest.approx([1.0] * NUM_CLASSES)


def test_comparison_is_second_minus_first() -> None:
    first = score(*predictions_from(CONFUSION))
    better = [row[:] for row in CONFUSION]
    better[0] = [4, 0, 0, 0, 0, 0, 0]  # angry now always right; fear loses a false positive
    second = score(*predictions_from(better))

    table = compare_frame(first, second).set_index("class")

    assert table.loc["angry", "Δ recall"] == pytest.approx(1 - 3 / 4)
    assert table.loc["fear", "Δ precision"] == pytest.approx(2 / 4 - 2 / 5)
    assert table.loc["happy", "Δ f1"] == 0
    assert table.loc["angry", "recall A"] == pytest.approx(3 / 4) and table.loc["angry", "recall B"] == 1
    assert summary_deltas(first, second)["accuracy"] == pytest.approx(1 / 24)


def test_cell_examples_are_most_confident_first() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    probabilities = np.full((6, NUM_CLASSES), 0.01)
    # image: 0 right (0.5), 1 wrong→1 (0.6), 2 wrong→1 (0.9), 3 right (0.7), 4 wrong→0 (0.8), 5 right (0.4)
    for index, (predicted, confidence) in enumerate(
        [(0, 0.5), (1, 0.6), (1, 0.9), (1, 0.7), (0, 0.8), (2, 0.4)]
    ):
        probabilities[index, predicted] = confidence
    evaluation = predict_dataset(lambda x: probabilities[: len(x)], _dataset(y_true))

    assert cell_examples(evaluation, 0, 1).tolist() == [2, 1]  # angry called disgust, surest first
    assert cell_examples(evaluation, 0, 0).tolist() == [0]  # the diagonal holds the correct ones
    assert cell_examples(evaluation, 0, None).tolist() == [2, 1]  # a row alone: its mistakes
    assert cell_examples(evaluation, None, 0).tolist() == [4]
    assert cell_examples(evaluation).tolist() == [2, 4, 1]  # every mistake
    assert cell_examples(evaluation, limit=2).tolist() == [2, 4]
    assert cell_examples(evaluation, 3, 3).tolist() == []


def test_predict_dataset_batches_and_reports_progress() -> None:
    y_true = np.arange(10) % NUM_CLASSES
    calls: list[int] = []
    progress: list[tuple[int, int]] = []

    def predict(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return np.eye(NUM_CLASSES)[(x[:, 0, 0, 0].astype(int) + 1) % NUM_CLASSES]  # always one class off

    evaluation = predict_dataset(
        predict, _dataset(y_true), batch_size=4, on_progress=lambda d, t: progress.append((d, t))
    )

    assert calls == [4, 4, 2]
    assert progress == [(4, 10), (8, 10), (10, 10)]
    assert evaluation.y_pred.tolist() == ((y_true + 1) % NUM_CLASSES).tolist()
    assert evaluation.result()["accuracy"] == 0.0
    assert evaluation.pixels.shape == (10, 48, 48) and evaluation.pixels.dtype == np.uint8


def _dataset(y_true: np.ndarray) -> Dataset:
    """A dataset whose first pixel of each image is its true label (so a fake model can 'see' it)."""
    x = np.zeros((len(y_true), 48, 48, 1), np.float32)
    x[:, 0, 0, 0] = y_true
    return Dataset(
        x=x, y=y_true, sources=tuple(f"img{i}.png" for i in range(len(y_true))), split="t", root=Path(".")
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("confusion"), "missing confusion"),
        (lambda r: r.update(confusion=[[1, 2], [3, 4]]), "7×7"),
        (lambda r: r["per_class"].pop("sad"), "per_class must list"),
        (lambda r: r["per_class"]["sad"].update(f1="high"), "per_class.sad"),
    ],
    ids=["no-confusion", "small-matrix", "missing-class", "text-metric"],
)
def test_a_malformed_card_result_is_refused_with_the_reason(change, message: str) -> None:
    result = score(*predictions_from(CONFUSION))
    change(result)

    with pytest.raises(ResultError, match=message):
        card_result({"evaluation": {"private_test": result}}, "private_test")


def test_card_without_the_split_has_no_result() -> None:
    result = score(*predictions_from(CONFUSION))
    assert card_result({"evaluation": {"public_test": result}}, "private_test") is None
    assert card_result(None, "private_test") is None
    assert card_result({"evaluation": {"private_test": result}}, "private_test") == result


def test_confusion_png_shades_cells_by_row_share() -> None:
    result = score(*predictions_from(CONFUSION))

    image = cv2.imdecode(np.frombuffer(confusion_png(result, "hand-built"), np.uint8), cv2.IMREAD_COLOR)

    assert image is not None and image.shape[0] > 600 and image.shape[1] > 600
    happy_diagonal = _cell_colour(image, 3, 3)  # 100 % of happy
    angry_as_disgust = _cell_colour(image, 0, 1)  # 0 %
    assert happy_diagonal.sum() < angry_as_disgust.sum() - 300  # dark blue vs. near white


def _cell_colour(image: np.ndarray, row: int, column: int) -> np.ndarray:
    """Mean BGR of a cell's top-right corner (clear of its text), found from the drawing's layout."""
    from training import analysis

    y = analysis._TOP + row * analysis._CELL + 6
    x = analysis._LEFT + (column + 1) * analysis._CELL - 14
    return image[y : y + 6, x : x + 6].reshape(-1, 3).mean(axis=0)


def test_file_stem_is_safe_for_names_and_folders() -> None:
    assert file_stem("private_test") == "private_test"
    assert file_stem("/data/my faces/test") == "test"
    assert file_stem("/data/Friends & family") == "Friends___family"


# --- folders a user points at -------------------------------------------------------------------


def _write_faces(folder: Path, per_class: int, classes=CLASS_NAMES) -> None:
    for index, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            cv2.imwrite(str(folder / name / f"{k}.png"), np.full((48, 48), 20 * index + k, np.uint8))


def test_a_folder_of_class_folders_loads_as_one_split(tmp_path: Path) -> None:
    _write_faces(tmp_path / "faces", per_class=2)
    (tmp_path / "faces" / "happy" / "notes.txt").write_text("not an image")

    dataset = load_folder(tmp_path / "faces")

    assert len(dataset) == 14 and dataset.class_counts() == dict.fromkeys(CLASS_NAMES, 2)
    assert dataset.sources[0] == str(tmp_path / "faces" / "angry" / "0.png")
    assert dataset.x[0, 0, 0, 0] == 0 and dataset.x[-1, 0, 0, 0] == 20 * 6 + 1
    assert load_folder(tmp_path / "faces", limit_per_class=1).class_counts()["sad"] == 1


def test_a_dataset_root_means_its_test_folder(tmp_path: Path) -> None:
    _write_faces(tmp_path / "root" / "test", per_class=1)
    assert len(load_folder(tmp_path / "root")) == NUM_CLASSES


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (lambda root: root.mkdir(), "has no class folders"),
        (lambda root: _write_faces(root, 1, (*CLASS_NAMES, "cats")), "unknown class folder.*cats"),
        (lambda root: _write_faces(root, 1, CLASS_NAMES[:5]), "missing class folder.*sad, surprise"),
        (lambda root: _write_faces(root, 0), "no images .*faces"),
        (
            lambda root: (_write_faces(root, 1), (root / "fear" / "0.png").unlink()),
            "no images of class.*fear",
        ),
        (lambda root: None, "no folder at"),
    ],
    ids=["empty", "unknown-class", "missing-classes", "no-images", "empty-class", "nothing-there"],
)
def test_an_unusable_folder_says_what_is_wrong(tmp_path: Path, layout, message: str) -> None:
    root = tmp_path / "faces"
    layout(root)
    with pytest.raises(DatasetError, match=message):
        load_folder(root)


def _zipped(folder: Path, wrapper: str = "faces") -> bytes:
    """``folder`` zipped inside a top folder ``wrapper``, as people zip a folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(folder.rglob("*")):
            archive.write(file, f"{wrapper}/{file.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def test_a_zipped_folder_reads_like_the_folder_and_leaves_nothing_behind(tmp_path: Path) -> None:
    _write_faces(tmp_path / "faces", per_class=2)
    leftovers_before = set(Path(tempfile.gettempdir()).glob("emojify-zip-*"))

    dataset = load_zip(_zipped(tmp_path / "faces"), "faces.zip")

    unzipped = load_folder(tmp_path / "faces")
    assert np.array_equal(dataset.x, unzipped.x) and np.array_equal(dataset.y, unzipped.y)
    assert dataset.sources[0] == "faces.zip:faces/angry/0.png"
    assert dataset.split == "faces.zip"
    assert set(Path(tempfile.gettempdir()).glob("emojify-zip-*")) == leftovers_before


def test_a_bad_zip_is_explained_in_terms_of_the_upload(tmp_path: Path) -> None:
    _write_faces(tmp_path / "faces", per_class=1, classes=(*CLASS_NAMES, "cats"))

    with pytest.raises(DatasetError) as error:
        load_zip(_zipped(tmp_path / "faces"), "faces.zip")

    assert "unknown class folder(s): cats" in str(error.value)
    assert "faces.zip:faces" in str(error.value) and "emojify-" not in str(error.value)
    with pytest.raises(DatasetError, match="not a readable zip"):
        load_zip(b"PK but not really", "broken.zip")
