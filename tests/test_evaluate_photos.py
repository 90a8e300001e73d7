"""``python -m training.evaluate_photos``: real photos through the whole pipeline, scored per set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.emotions import CLASS_NAMES, REPO_ROOT

from bad_inputs import FIXTURES


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training.evaluate_photos", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_portraits_and_their_tight_crops_are_scored_face_by_face(fer2013_dir: Path) -> None:
    done = run(FIXTURES / "faces", "--fer2013", fer2013_dir, "--per-class", "3", "--json")

    assert done.returncode == 0, done.stderr
    sets = {result["set"]: result for result in map(json.loads, done.stdout.splitlines())}
    assert list(sets) == ["faces original", "faces tight", "fer2013-480"]
    for name in ("faces original", "faces tight"):
        result = sets[name]
        assert result["n"] == 24 and result["faces_found"] == 1.0
        assert result["accuracy"] >= 0.6  # neutral vs happy, through detection and framing
        assert set(result["recall"]) == {"happy", "neutral"}
        assert sum(sum(row.values()) for row in result["confusion"].values()) == 24
    fer = sets["fer2013-480"]
    assert fer["n"] == 3 * len(CLASS_NAMES) and set(fer["recall"]) == set(CLASS_NAMES)
    assert fer["faces_found"] >= 0.5


def test_a_folder_with_a_bad_label_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("file,label\nsmile.jpg,smiling\n", encoding="utf-8")

    done = run(tmp_path)

    assert done.returncode == 2
    assert "labels.csv line 2" in done.stderr and "Traceback" not in done.stderr


def test_calibrating_on_each_persons_neutral_photo_is_scored_beside_the_generic_verdicts() -> None:
    done = run(FIXTURES / "faces", "--calibrate", "neutral", "--json")

    assert done.returncode == 0, done.stderr
    sets = {result["set"]: result for result in map(json.loads, done.stdout.splitlines())}
    generic, calibrated = sets["faces same person, generic"], sets["faces same person, calibrated"]
    assert generic["n"] == calibrated["n"] == 24  # 12 happy photos, 12 tight crops of the references
    assert calibrated["recall"]["happy"] > generic["recall"]["happy"]
    # Every London neutral crop is already neutral to the shipped model; calibrating must keep them.
    assert calibrated["recall"]["neutral"] >= generic["recall"]["neutral"]
