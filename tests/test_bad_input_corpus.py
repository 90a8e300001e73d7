"""The committed corpus of hostile inputs (``scripts/make_bad_inputs.py``) through every entry point.

Photos go through the CLI and the Photo page in Chromium; videos through the video CLI; dataset
zips through the Analysis page's loader, the evaluation CLI and the Training page's upload store;
CSVs through the loaders and both training CLIs. None may end in a traceback: each bad file gets
a message naming its problem, and the odd-but-valid photos (colour modes, rotation, animation)
still give their face.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.emotions import DEFAULT_MODEL_PATH, REPO_ROOT
from training import evaluate, train
from training.analysis import load_zip
from training.archive import UPLOADS_DIR, stored_upload
from training.data import DatasetError, check_dataset, load_split

import browser

CORPUS = REPO_ROOT / "tests" / "fixtures" / "bad"
IMAGE_ERRORS = {
    "zero-byte.jpg": "empty",
    "text-named.png": "not an image",
    "truncated.jpg": "damaged or truncated",
    "huge-dimensions.png": "megapixels",
    "decompression-bomb.png": "megapixels",
    # Damaged or empty files of a format we read are not "not an image format we can read".
    "bad-checksum.png": "the file is a PNG image, but it is damaged",
    "truncated.gif": "the file is a GIF image, but it is damaged",
    "zero-size.png": "the PNG image is empty",
    "huge-16bit-rgba.png": "a PNG like this one is decoded whole",
}
IMAGE_FACES = {
    "tiny-1x1.png": 0,
    "strip-1x2000.png": 0,  # crashed the detector, ending the CLI's batch
    "cmyk.jpg": 1,
    "gray-16bit.png": 1,
    "alpha.png": 1,
    "animated.gif": 1,
    "exif-rotated.jpg": 1,
}
#: Each zip's refusal, as a regular expression (what a folder-less zip lacks is worded per caller).
ZIP_ERRORS = {
    "not-a-zip.zip": "not a readable zip",
    "path-escape.zip": r"points outside the folder it unpacks into \('\.\.'\)",
    "absolute-path.zip": "has an absolute path",
    "symlink.zip": "is a symbolic link; links are refused",
    "ten-thousand-files.zip": "has no class folders|holds neither train/ and test/",
    "one-gigabyte-declared.zip": "would unpack to 1.0 GB.*zip bomb",
}
CSV_ERRORS = {
    "wrong-columns.csv": "lacks column.*emotion, pixels, Usage",
    "malformed-pixels.csv": "line 3: pixels must be space-separated integers",
}
RESULT_TIMEOUT_MS = 90_000


def _make_bad_inputs():
    spec = importlib.util.spec_from_file_location(
        "make_bad_inputs", REPO_ROOT / "scripts" / "make_bad_inputs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_corpus_is_what_its_script_makes_and_every_file_has_an_expectation():
    made = _make_bad_inputs().corpus()
    committed = {str(path.relative_to(CORPUS)) for path in CORPUS.rglob("*") if path.is_file()}
    assert committed == set(made)
    for name, data in made.items():
        committed_bytes = (CORPUS / name).read_bytes()
        if name.startswith("videos/"):
            # x264's bytes vary between machines and runs (3,802, 3,804 and 3,842 bytes seen for
            # the cut clip): the same container header, a clip of about the same size.
            assert abs(len(committed_bytes) - len(data)) <= len(data) // 20, name
            assert committed_bytes[:64] == data[:64], name
        else:
            assert committed_bytes == data, name
    expected = {f"images/{n}" for n in [*IMAGE_ERRORS, *IMAGE_FACES]}
    expected |= {f"zips/{n}" for n in ZIP_ERRORS} | {f"csv/{n}" for n in CSV_ERRORS}
    expected |= {"videos/cut-off.mp4"}
    assert expected == committed


def test_photo_cli_reads_or_explains_every_photo(tmp_path: Path):
    photos = sorted((CORPUS / "images").iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "app", *map(str, photos), "--json", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1  # some files failed, and the batch still went through all of them
    reports = {Path(line["image"]).name: line for line in map(json.loads, result.stdout.splitlines())}
    assert set(reports) == {photo.name for photo in photos}
    for name, words in IMAGE_ERRORS.items():
        assert words in reports[name]["error"], reports[name]
    for name, faces in IMAGE_FACES.items():
        assert len(reports[name]["faces"]) == faces, reports[name]


def test_video_cli_keeps_what_came_before_the_damage_and_says_so(tmp_path: Path):
    """A video cut off partway once left a partial MP4 at --out, no CSV, and only an error."""
    out, table = tmp_path / "out.mp4", tmp_path / "out.csv"
    clip = CORPUS / "videos" / "cut-off.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "app.video", str(clip), "--out", str(out), "--csv", str(table)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
    assert "error: cut-off.mp4: the video is damaged after" in result.stderr
    assert "what came before it was processed and kept" in result.stderr
    frames = len({row["frame"] for row in csv.DictReader(table.open())})
    assert 0 < frames < 36
    assert f"wrote {out} (the {frames} frames before the damage)" in result.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.csv", "out.mp4"]


@pytest.mark.parametrize("name", sorted(ZIP_ERRORS))
def test_dataset_zip_is_refused_by_every_entry_point(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    upload = CORPUS / "zips" / name
    monkeypatch.chdir(tmp_path)  # where a relative escape would land
    with pytest.raises(DatasetError, match=ZIP_ERRORS[name]):
        load_zip(upload.read_bytes(), name)  # the Analysis page's uploaded zip
    with pytest.raises(DatasetError, match=ZIP_ERRORS[name]):
        stored_upload(name, upload.read_bytes(), tmp_path / "runs")  # the Training page's upload
    assert not any((tmp_path / "runs" / UPLOADS_DIR).iterdir())  # nothing half-unpacked is kept

    code = evaluate.main(["--model", str(DEFAULT_MODEL_PATH), "--split", str(upload)])
    output = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in output.err and len(output.err.strip().splitlines()) == 1, output.err
    assert name in output.err or "zip" in output.err
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == []
    assert not Path("/tmp/emojify-evil.txt").exists()


@pytest.mark.parametrize("name", sorted(CSV_ERRORS))
def test_broken_fer2013_csv_is_refused_by_every_entry_point(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    csv = CORPUS / "csv" / name
    with pytest.raises(DatasetError, match=CSV_ERRORS[name]):
        load_split(csv, "train")
    if name == "wrong-columns.csv":  # the check without decoding sees headers, not every row
        with pytest.raises(DatasetError, match=CSV_ERRORS[name]):
            check_dataset(csv)
    runs = tmp_path / "runs"
    cli_runs = [
        (evaluate.main, ["--model", str(DEFAULT_MODEL_PATH), "--data", str(csv), "--split", "train"]),
        (train.main, ["--data", str(csv), "--epochs", "1", "--runs-dir", str(runs), "--run-name", "bad"]),
    ]
    for main, argv in cli_runs:
        code = main(argv)
        output = capsys.readouterr()
        assert code == 2, (argv, output)
        assert "Traceback" not in output.err
        assert any(line for line in output.err.splitlines() if name in line), output.err
    assert not (runs / "bad" / "best.keras").exists()


# --- the Photo page in a real browser -------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(browser.missing_browser() is not None, reason=str(browser.missing_browser()))
def test_photo_page_explains_every_unreadable_photo_without_a_traceback(chromium, app_url: str):
    from playwright.sync_api import expect

    for name, words in IMAGE_ERRORS.items():
        context = chromium.new_context()  # a fresh session per file: no earlier upload on the page
        try:
            page = context.new_page()
            page.goto(f"{app_url}/photo")
            expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
            browser.upload(page, CORPUS / "images" / name)
            error = page.get_by_test_id("stAlertContentError")
            expect(error.first).to_be_visible(timeout=RESULT_TIMEOUT_MS)
            expect(error.first).to_contain_text(words)
            expect(error.first).to_contain_text(name)
            expect(page.get_by_test_id("stException")).to_have_count(0)
            expect(page.locator("body")).not_to_contain_text("Traceback")
        finally:
            context.close()
