"""training.data on real FER2013 images: what comes out, and what a broken dataset says."""

from __future__ import annotations

import csv
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.emotions import CLASS_NAMES, INPUT_SHAPE
from training.analysis import load_folder
from training.data import (
    CSV_COLUMNS,
    CSV_EMOTIONS,
    SPLITS,
    DatasetError,
    check_dataset,
    load_split,
    set_data_root,
)

KAGGLE_SPLIT_SIZES = {"train": 28_709, "public_test": 3_589, "private_test": 3_589, "test": 7_178}
USAGE_OF_PREFIX = {"Training_": "Training", "PublicTest_": "PublicTest", "PrivateTest_": "PrivateTest"}


@pytest.fixture
def mini(fer2013_mini: Path, tmp_path: Path) -> Path:
    """A private copy of the mini dataset that a test may break."""
    return Path(shutil.copytree(fer2013_mini, tmp_path / "fer2013"))


def write_fer_csv(root: Path, path: Path) -> Path:
    """Write the images of a Kaggle-layout folder as Kaggle's fer2013.csv (its emotion codes, its Usage).

    Rows go in the folder loader's order (split, class, file name), so both loaders must agree.
    """
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["emotion", "pixels", "Usage"])
        for folder in ("train", "test"):
            for name in CLASS_NAMES:
                for image_path in sorted((root / folder / name).iterdir()):
                    pixels = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
                    usage = next(
                        u for prefix, u in USAGE_OF_PREFIX.items() if image_path.name.startswith(prefix)
                    )
                    writer.writerow([CSV_EMOTIONS.index(name), " ".join(map(str, pixels.ravel())), usage])
    return path


def test_slice_is_model_input_with_labels_in_class_order(fer2013_dir: Path) -> None:
    dataset = load_split(fer2013_dir, "train", limit_per_class=5)

    assert dataset.x.shape == (35, *INPUT_SHAPE)
    assert dataset.x.dtype == np.float32
    assert dataset.x.min() >= 0 and dataset.x.max() <= 255 and dataset.x.max() > 1  # pixels, not rescaled
    assert dataset.y.tolist() == [label for label in range(len(CLASS_NAMES)) for _ in range(5)]
    assert [Path(source).parent.name for source in dataset.sources] == [CLASS_NAMES[y] for y in dataset.y]
    assert dataset.class_counts() == dict.fromkeys(CLASS_NAMES, 5)


def test_same_slice_every_time(fer2013_dir: Path) -> None:
    first = load_split(fer2013_dir, "public_test", limit_per_class=4)
    second = load_split(fer2013_dir, "public_test", limit_per_class=4)

    assert first.sources == second.sources
    np.testing.assert_array_equal(first.x, second.x)


def test_full_folder_has_the_kaggle_split_sizes(fer2013_dir: Path) -> None:
    started = time.perf_counter()
    datasets = {split: load_split(fer2013_dir, split) for split in SPLITS}
    seconds = time.perf_counter() - started
    total = sum(len(d) for d in datasets.values())
    print(f"\nloaded all FER2013 splits ({total:,} images) in {seconds:.1f} s")

    assert {split: len(d) for split, d in datasets.items()} == KAGGLE_SPLIT_SIZES
    assert all(not d.skipped and not d.note for d in datasets.values())
    assert all(Path(s).name.startswith("PublicTest_") for s in datasets["public_test"].sources)
    assert all(Path(s).name.startswith("PrivateTest_") for s in datasets["private_test"].sources)
    assert set(datasets["test"].sources) == set(datasets["public_test"].sources) | set(
        datasets["private_test"].sources
    )


def test_test_folder_without_kaggle_prefixes_serves_both_test_splits(mini: Path) -> None:
    for image in (mini / "test").rglob("*.jpg"):
        image.rename(image.with_name(image.name.split("_", 1)[1]))

    whole = load_split(mini, "test")
    for split in ("public_test", "private_test"):
        dataset = load_split(mini, split)
        assert dataset.sources == whole.sources
        assert "no PublicTest_/PrivateTest_ file names" in dataset.note


def test_non_image_files_are_ignored(mini: Path) -> None:
    before = load_split(mini, "train")
    (mini / "train" / "happy" / "notes.txt").write_text("labelled by hand")
    (mini / "train" / "happy" / ".DS_Store").write_bytes(b"\0\0")

    after = load_split(mini, "train")

    assert after.sources == before.sources
    assert after.skipped == ()


def test_corrupt_images_are_skipped_and_counted(mini: Path) -> None:
    before = load_split(mini, "train")
    (mini / "train" / "sad" / "Training_broken.jpg").write_bytes(b"not a jpeg at all")
    (mini / "train" / "fear" / "Training_empty.jpg").write_bytes(b"")

    after = load_split(mini, "train")

    assert len(after) == len(before)
    assert sorted(Path(s).name for s in after.skipped) == ["Training_broken.jpg", "Training_empty.jpg"]
    assert after.describe()["skipped"] == 2


def test_larger_images_are_resized_to_48(mini: Path) -> None:
    image_path = next((mini / "train" / "happy").iterdir())
    cv2.imwrite(str(image_path.with_suffix(".png")), cv2.resize(cv2.imread(str(image_path)), (96, 96)))

    dataset = load_split(mini, "train")

    assert dataset.x.shape[1:] == INPUT_SHAPE
    assert dataset.class_counts()["happy"] == 4


def test_csv_gives_the_same_images_and_labels_as_the_folder(mini: Path, tmp_path: Path) -> None:
    csv_path = write_fer_csv(mini, tmp_path / "fer2013.csv")

    for split in SPLITS:
        from_folder, from_csv = load_split(mini, split), load_split(csv_path, split)
        np.testing.assert_array_equal(from_csv.y, from_folder.y)
        np.testing.assert_array_equal(from_csv.x, from_folder.x)


def _remove(path: str) -> Callable[[Path], object]:
    return lambda root: shutil.rmtree(root / path)


def _add_class(root: Path) -> None:
    shutil.copytree(root / "train" / "happy", root / "train" / "contempt")


def _empty_class(root: Path) -> None:
    for image in (root / "train" / "fear").iterdir():
        image.unlink()
    (root / "train" / "fear" / "README").write_text("no images here")


def _no_images(root: Path) -> None:
    for image in (root / "train").rglob("*.jpg"):
        image.unlink()


@pytest.mark.parametrize(
    ("break_it", "split", "message"),
    [
        (_remove(""), "train", "dataset path does not exist"),
        (_remove("train"), "train", "has no train/ folder"),
        (_remove("test"), "private_test", "has no test/ folder"),
        (_remove("train/disgust"), "train", "missing class folder(s): disgust"),
        (_add_class, "train", "unknown class folder(s): contempt"),
        (_empty_class, "train", "no images of class(es): fear"),
        (_no_images, "train", "no images for split train"),
    ],
    ids=["no-path", "no-train", "no-test", "missing-class", "extra-class", "empty-class", "no-images"],
)
def test_broken_layout_names_the_problem(
    mini: Path, break_it: Callable[[Path], object], split: str, message: str
) -> None:
    break_it(mini)

    with pytest.raises(DatasetError, match=re.escape(message)):
        load_split(mini, split)


def _rewrite_csv(path: Path, edit: Callable[[list[list[str]]], None]) -> None:
    with path.open(newline="") as file:
        rows = list(csv.reader(file))
    edit(rows)
    with path.open("w", newline="") as file:
        csv.writer(file).writerows(rows)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: rows[0].__setitem__(2, "usage"), "lacks column(s) Usage"),
        (lambda rows: rows[2].__setitem__(1, rows[2][1].replace(" ", ",", 1)), "line 3: pixels must be"),
        (lambda rows: rows[4].__setitem__(1, "0 0 0"), "line 5: expected 2304 pixels, got 3"),
        (lambda rows: rows[3].__setitem__(1, "256 " + rows[3][1].split(" ", 1)[1]), "line 4: pixel values"),
        (lambda rows: rows[2].__setitem__(0, "7"), "line 3: emotion must be"),
    ],
    ids=["wrong-columns", "malformed-pixels", "short-pixels", "pixel-range", "bad-emotion"],
)
def test_broken_csv_names_the_problem(
    mini: Path, tmp_path: Path, edit: Callable[[list[list[str]]], None], message: str
) -> None:
    csv_path = write_fer_csv(mini, tmp_path / "fer2013.csv")
    _rewrite_csv(csv_path, edit)

    with pytest.raises(DatasetError, match=re.escape(message)):
        load_split(csv_path, "train")


def test_unknown_split_is_refused(fer2013_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        load_split(fer2013_dir, "validation")


# --- more bad datasets, and the quick check the Training page runs on Start ---------------------------


def test_non_image_files_are_listed_in_the_run_record(mini: Path) -> None:
    (mini / "train" / "happy" / "notes.txt").write_text("labelled by hand")
    (mini / "train" / "sad" / "labels.csv").write_text("file,label\n")
    (mini / "train" / "sad" / ".DS_Store").write_bytes(b"\0\0")  # hidden: not worth a mention

    dataset = load_split(mini, "train")

    assert sorted(Path(p).name for p in dataset.ignored) == ["labels.csv", "notes.txt"]
    assert dataset.describe()["ignored"] == 2


def test_class_with_only_non_image_files_names_them(mini: Path) -> None:
    for image in (mini / "train" / "fear").iterdir():
        image.rename(image.with_suffix(".txt"))

    with pytest.raises(DatasetError) as error:
        load_split(mini, "train")

    message = str(error.value)
    assert "split train has no images of class(es): fear" in message
    assert "found only non-image files, e.g. fear/Training_" in message and ".txt" in message


def test_class_whose_images_are_all_unreadable_is_refused(mini: Path) -> None:
    for image in (mini / "train" / "sad").iterdir():
        image.write_bytes(b"\xff\xd8 truncated jpeg")

    with pytest.raises(DatasetError, match=re.escape("split train has no readable images of class(es): sad")):
        load_split(mini, "train")


def test_csv_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fer2013.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")

    with pytest.raises(DatasetError, match="is not a CSV text file"):
        load_split(path, "train")


def test_csv_without_a_class_in_the_split_is_refused(mini: Path, tmp_path: Path) -> None:
    csv_path = write_fer_csv(mini, tmp_path / "fer2013.csv")
    disgust = str(CSV_EMOTIONS.index("disgust"))
    _rewrite_csv(
        csv_path, lambda rows: rows.__setitem__(slice(1, None), [r for r in rows[1:] if r[0] != disgust])
    )

    with pytest.raises(DatasetError, match=re.escape("split train has no images of class(es): disgust")):
        load_split(csv_path, "train")


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (_remove(""), "dataset path does not exist"),
        (_remove("train"), "has no train/ folder"),
        (_remove("test"), "has no test/ folder"),
        (_remove("test/angry"), "missing class folder(s): angry"),
        (_add_class, "unknown class folder(s): contempt"),
        (_empty_class, "no images of class(es): fear"),
        (_no_images, "no images for split train"),
    ],
    ids=["no-path", "no-train", "no-test", "missing-class", "extra-class", "empty-class", "no-images"],
)
def test_quick_check_finds_layout_problems_without_decoding(
    mini: Path, break_it: Callable[[Path], object], message: str
) -> None:
    break_it(mini)

    with pytest.raises(DatasetError, match=re.escape(message)):
        check_dataset(mini, ("train", "public_test"))


def test_quick_check_passes_a_good_dataset_and_checks_a_csv_header(mini: Path, tmp_path: Path) -> None:
    check_dataset(mini)
    csv_path = write_fer_csv(mini, tmp_path / "fer2013.csv")
    check_dataset(csv_path)

    _rewrite_csv(csv_path, lambda rows: rows[0].__setitem__(0, "label"))
    with pytest.raises(DatasetError, match=re.escape("lacks column(s) emotion")):
        check_dataset(csv_path)
    _rewrite_csv(csv_path, lambda rows: rows.__setitem__(slice(None), [list(CSV_COLUMNS)]))
    with pytest.raises(DatasetError, match="has a header but no rows"):
        check_dataset(csv_path)


# --- what one load may cost, and where it may read --------------------------------------------------


def test_images_claiming_too_many_pixels_are_left_out_undecoded_and_counted(mini: Path) -> None:
    before = load_split(mini, "train")
    huge = np.zeros((5000, 5000), np.uint8)  # 25 megapixels of one grey: a 25 kB PNG
    cv2.imwrite(str(mini / "train" / "happy" / "Training_huge.png"), huge)

    after = load_split(mini, "train")

    assert len(after) == len(before) and after.skipped == ()
    assert [Path(s).name for s in after.too_large] == ["Training_huge.png"]
    assert after.describe()["too_large"] == 1
    assert "1 image(s) over 4096×4096 pixels left out undecoded" in after.note
    assert "Training_huge.png" in after.note  # the note reaches the CLI output and the card


def test_a_class_of_only_too_large_images_names_them(mini: Path) -> None:
    for image in (mini / "train" / "sad").iterdir():
        image.unlink()
    cv2.imwrite(str(mini / "train" / "sad" / "Training_huge.png"), np.zeros((4097, 4097), np.uint8))

    with pytest.raises(
        DatasetError, match=r"no readable images of class\(es\): sad \(0 unreadable and 1 too"
    ):
        load_split(mini, "train")


@pytest.fixture
def data_root(tmp_path: Path) -> Iterator[Path]:
    """A deployment's data root, confining reads for the test's duration."""
    root = tmp_path / "data"
    root.mkdir()
    set_data_root(root)
    yield root
    set_data_root(None)


def _outside_with_a_secret(tmp_path: Path, mini: Path) -> Path:
    outside = tmp_path / "outside"
    shutil.copytree(mini / "test" / "happy", outside)
    shutil.copy2(next(outside.iterdir()), outside / "secret.jpg")
    return outside


def test_a_folder_link_leading_out_of_the_data_root_is_refused(mini: Path, tmp_path: Path, data_root: Path):
    dataset = Path(shutil.copytree(mini, data_root / "fer"))
    outside = _outside_with_a_secret(tmp_path, mini)
    shutil.rmtree(dataset / "test" / "happy")
    (dataset / "test" / "happy").symlink_to(outside)

    for attempt in (lambda: load_split(dataset, "test"), lambda: check_dataset(dataset, ("test",))):
        with pytest.raises(DatasetError, match="test/happy is a link that leads outside the data folder"):
            attempt()
    with pytest.raises(DatasetError, match="leads outside the data folder"):  # as Analysis reads <class>/
        load_folder(dataset / "test")
    set_data_root(None)  # run locally, without a data root, the owner's links are followed
    assert "secret.jpg" in {Path(s).name for s in load_split(dataset, "test").sources}


def test_a_file_link_leading_out_of_the_data_root_is_refused(mini: Path, tmp_path: Path, data_root: Path):
    dataset = Path(shutil.copytree(mini, data_root / "fer"))
    outside = _outside_with_a_secret(tmp_path, mini)
    (dataset / "test" / "sad" / "PublicTest_secret.jpg").symlink_to(outside / "secret.jpg")

    with pytest.raises(DatasetError, match=r"PublicTest_secret\.jpg is a link that leads outside"):
        load_split(dataset, "public_test")


def test_links_inside_the_data_root_and_datasets_elsewhere_are_read(mini: Path, data_root: Path):
    dataset = Path(shutil.copytree(mini, data_root / "fer"))
    shutil.move(dataset / "test" / "happy", data_root / "happy")
    (dataset / "test" / "happy").symlink_to(data_root / "happy")

    assert load_split(dataset, "test").class_counts()["happy"] == 4
    assert len(load_split(mini, "test")) == len(load_split(dataset, "test"))  # mini is not under the root


def test_csv_rows_too_short_or_of_no_known_usage_are_counted(mini: Path, tmp_path: Path) -> None:
    csv_path = write_fer_csv(mini, tmp_path / "fer2013.csv")
    full = load_split(csv_path, "train")

    def spoil(rows: list[list[str]]) -> None:
        rows.append(["3", " ".join(["7"] * 2304)])  # no Usage column at all
        rows.append(["3", " ".join(["7"] * 2304), "Validation"])
        rows.append(["3"])

    _rewrite_csv(csv_path, spoil)
    dataset = load_split(csv_path, "train")

    assert len(dataset) == len(full)
    assert dataset.note.startswith("3 row(s) of fer2013.csv left out: too short or with a Usage other than")
    assert "line 51: too short" in dataset.note
    assert dataset.describe()["note"] == dataset.note
