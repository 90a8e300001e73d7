"""``python -m app``: batch emojify from the shell, one JSON line per image, errors don't stop it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from app.emotions import CLASS_NAMES
from app.images import encode_image, read_image

from bad_inputs import FIXTURES

ROOT = Path(__file__).resolve().parent.parent


#: Three portraits for a group photo, placed left to right, each larger than the one before it.
GROUP = [("london_010_happy.jpg", 220), ("london_013_neutral.jpg", 280), ("london_016_happy.jpg", 340)]


def group_photo(path: Path) -> Path:
    """Write a 1,000×360 PNG of three faces growing left to right: largest-first order is backwards."""
    canvas = np.full((360, 1000, 3), 255, np.uint8)
    left = 20
    for name, side in GROUP:
        picture = read_image(FIXTURES / "faces" / name)
        portrait = cv2.resize(picture, (side, side), interpolation=cv2.INTER_AREA)
        top = (360 - side) // 2
        canvas[top : top + side, left : left + side] = portrait
        left += side + 40
    path.write_bytes(encode_image(canvas, "png"))
    return path


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m app`` as a user's shell runs it: no log level set, so no TensorFlow start-up line
    may reach stderr on any run."""
    done = subprocess.run(
        [sys.executable, "-m", "app", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert not start_up_noise(done.stderr), (
        f"python -m app printed TensorFlow's start-up lines: {done.stderr}"
    )
    return done


def start_up_noise(stderr: str) -> list[str]:
    """TensorFlow's and absl's start-up lines in what a command wrote to stderr."""
    return [
        line
        for line in stderr.splitlines()
        if "absl" in line or "cpu_feature_guard" in line or "oneDNN" in line
    ]


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


def test_faces_are_listed_in_reading_order_as_numbered_on_the_copy(tmp_path):
    photo = group_photo(tmp_path / "group.png")
    done = run_cli(photo, "--json", "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    faces = json.loads(done.stdout)["faces"]
    assert len(faces) == 3
    lefts = [face["box"][0] for face in faces]
    assert lefts == sorted(lefts)  # left to right, although the largest face is on the right


def test_help_and_default_output_folder(tmp_path):
    done = run_cli("--help", cwd=tmp_path)
    assert done.returncode == 0 and "(default: ./emojified/)" in " ".join(done.stdout.split())

    done = run_cli(FIXTURES / "astronaut.png", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    output = Path(json.loads(done.stdout)["output"])
    assert output == Path("emojified") / "astronaut_emojify.png" and (tmp_path / output).is_file()


def test_training_cli_keeps_tensorflows_start_up_lines_off_the_console() -> None:
    """Without a log level set by the caller, no TensorFlow/absl start-up line reaches stderr
    (``python -m app`` is checked on each of its runs above, by ``run_cli``)."""
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    # --help imports Keras at once, before anything of app/.
    result = subprocess.run(
        [sys.executable, "-m", "training.train", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    noise = start_up_noise(result.stderr)
    assert not noise, f"python -m training.train printed TensorFlow's start-up lines: {noise}"


def test_only_the_start_up_noise_is_dropped_from_what_the_import_writes_to_stderr(capfd) -> None:
    from app.keras_env import START_UP_NOISE, stderr_without

    with stderr_without(START_UP_NOISE):
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written\n")
        os.write(2, b"E0000 something TensorFlow really wants you to know\n")
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see slightly different\n")
    assert capfd.readouterr().err == "E0000 something TensorFlow really wants you to know\n"


def test_an_unexpected_failure_in_one_file_is_that_files_error_line(tmp_path, monkeypatch, capsys) -> None:
    """Any error while processing one photo (here OpenCV's, as a 1×2000 PNG once gave) is reported
    for that photo, and the batch goes on to the next."""
    from app import __main__ as cli
    from app.pipeline import Pipeline

    analyze = Pipeline.analyze

    def fails_on_the_odd_one(self, rgb, settings=None):
        if rgb.shape[:2] == (2, 3):
            raise cv2.error("OpenCV(4) resize.cpp:4017: error: (-215:Assertion failed)\n inv_scale_x > 0")
        return analyze(self, rgb, settings)

    monkeypatch.setattr(Pipeline, "analyze", fails_on_the_odd_one)
    odd = tmp_path / "odd.png"
    odd.write_bytes(encode_image(np.full((2, 3, 3), 128, np.uint8), "png"))
    portrait = FIXTURES / "faces" / "london_014_happy.jpg"

    code = cli.main([str(odd), str(portrait), "--out", str(tmp_path / "out")])

    output = capsys.readouterr()
    assert code == 1
    assert output.err.splitlines() == [
        f"{odd}: error: could not process it (error: OpenCV(4) resize.cpp:4017: error: "
        "(-215:Assertion failed) inv_scale_x > 0)"
    ]
    assert output.out.startswith(f"{portrait}: ") and "→" in output.out
