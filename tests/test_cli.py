"""``python -m app``: batch emojify from the shell, one JSON line per image, errors don't stop it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.emotions import CLASS_NAMES
from app.images import read_image

from bad_inputs import FIXTURES

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_json_batch_with_a_bad_file(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    portrait = FIXTURES / "faces" / "london_014_happy.jpg"
    done = run_cli(portrait, bad, FIXTURES / "coffee.png", "--json", "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # something failed, and the batch still finished
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(portrait), str(bad), str(FIXTURES / "coffee.png")]
    face = lines[0]["faces"][0]
    assert set(face) == {"box", "emotion", "confidence", "probabilities"}
    assert face["emotion"] in CLASS_NAMES and list(face["probabilities"]) == list(CLASS_NAMES)
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-3
    assert "not an image" in lines[1]["error"]
    assert lines[2]["faces"] == []
    annotated = read_image(lines[0]["output"])
    assert annotated.shape == read_image(portrait).shape


def test_results_are_never_overwritten(tmp_path):
    portrait = FIXTURES / "astronaut.png"
    for _ in range(2):
        done = run_cli(portrait, "--out", tmp_path, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astronaut_emojify-1.png", "astronaut_emojify.png"]
    assert "→" in done.stdout


def test_missing_model_is_a_clear_error(tmp_path):
    done = run_cli(FIXTURES / "astronaut.png", "--model", tmp_path / "gone.keras", cwd=tmp_path)
    assert done.returncode == 2
    assert "model file not found" in done.stderr and "Traceback" not in done.stderr
