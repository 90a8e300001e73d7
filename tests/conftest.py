"""Shared pytest fixtures.

Browser fixtures: ``app_url`` (the real app served by ``streamlit run``, with the environment the
test run started with) and ``chromium`` (headless Debian Chromium), one of each for the whole test
run: starting a server loads TensorFlow and the model, which is most of a browser test's time on
2 cores. Tests stay independent through a fresh browser context (a new Streamlit session) each and
change nothing of the shared server beyond it. The Live tests' fake webcam: ``laughing_chromium``
(Chromium whose camera plays the laughing part of the test clip, one per module) and ``camera_page``
(a fresh page in it). A module that needs other ones (its own settings, a fresh server per test)
defines its own, which pytest then uses instead.

TURN fixtures: ``turn_server`` (a static user) and ``turn_rest_server`` (a REST-API shared secret),
Debian's coturn on a loopback port (tests/turn_relay.py), one of each per test module.

FER2013 fixtures: tests that need the real dataset read its folder (Kaggle layout: train/<class>/,
test/<class>/) from the environment variable FER2013_DIR and are skipped, with that reason, when
it is unset. Nothing from the dataset is ever written into the repository: copies go to pytest's
temporary folders.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# Before anything imports TensorFlow: aiortc's SRTP library segfaults the process when it is
# imported after TensorFlow, and AppTest runs app/streamlit_app.py (which imports it) inside pytest.
import streamlit_webrtc  # noqa: F401

from app.emotions import CLASS_NAMES, REPO_ROOT

if TYPE_CHECKING:  # Playwright is optional: the browser tests skip without it.
    from playwright.sync_api import Browser, Page
    from turn_relay import TurnServer

FER2013_ENV = "FER2013_DIR"
#: Images per class in the tiny real training run shared by the train and evaluate CLI tests: a real
#: epoch and a real model, and no test needs more (an epoch of 40 a class took twice as long).
TINY_RUN_IMAGES_PER_CLASS = 20


@pytest.fixture(scope="session")
def fer2013_dir() -> Path:
    """The real FER2013 folder; skips the test when FER2013_DIR is unset."""
    value = os.environ.get(FER2013_ENV)
    if not value:
        pytest.skip(f"needs the FER2013 dataset: set {FER2013_ENV} to its folder (train/, test/)")
    path = Path(value)
    if not (path / "train").is_dir() or not (path / "test").is_dir():
        pytest.fail(f"{FER2013_ENV}={value} is not a FER2013 folder with train/ and test/")
    return path


@pytest.fixture(scope="session")
def fer2013_mini(fer2013_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few real FER2013 images per class in the Kaggle layout, in a temporary folder.

    Per class: the first 3 training images and the first 2 PublicTest_ and 2 PrivateTest_ images.
    Session-scoped and shared, so tests that break a layout must copy it first (``copytree``).
    """
    root = tmp_path_factory.mktemp("fer2013_mini")
    for name in CLASS_NAMES:
        train_files = sorted((fer2013_dir / "train" / name).glob("Training_*.jpg"))[:3]
        test_files = [
            f
            for prefix in ("PublicTest_", "PrivateTest_")
            for f in sorted((fer2013_dir / "test" / name).glob(f"{prefix}*.jpg"))[:2]
        ]
        for folder, files in (("train", train_files), ("test", test_files)):
            target = root / folder / name
            target.mkdir(parents=True)
            for file in files:
                shutil.copy2(file, target / file.name)
    return root


@dataclass(frozen=True)
class TinyRun:
    """A finished ``python -m training.train`` run: its folder and what the CLI printed."""

    run_dir: Path
    stdout: str
    images_per_class: int


@pytest.fixture(scope="session")
def tiny_run(fer2013_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """One real training run through the CLI: classic, 1 epoch, 20 FER2013 images per class."""
    runs_dir = tmp_path_factory.mktemp("runs")
    command = [
        sys.executable,
        "-m",
        "training.train",
        "--data",
        str(fer2013_dir),
        "--arch",
        "classic",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--limit-per-class",
        str(TINY_RUN_IMAGES_PER_CLASS),
        "--run-name",
        "tiny",
        "--runs-dir",
        str(runs_dir),
    ]
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, f"training CLI failed:\n{result.stdout}\n{result.stderr}"
    return TinyRun(runs_dir / "tiny", result.stdout, TINY_RUN_IMAGES_PER_CLASS)


@pytest.fixture(scope="session")
def app_url() -> Iterator[str]:
    """The real app, served once for every browser test that needs no settings of its own."""
    import browser

    with browser.streamlit_server() as url:
        yield url


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Headless Chromium for the test run; each test opens its own context in it."""
    import browser

    with browser.chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def laughing_chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Chromium whose webcam plays the laughing part of the test clip, for a module's Live tests:
    the fake camera is a launch switch, so it is a browser of its own."""
    import browser

    with browser.laughing_camera_chromium(tmp_path_factory.mktemp("camera")) as launched:
        yield launched


@pytest.fixture
def camera_page(laughing_chromium: Browser) -> Iterator[Page]:
    """A fresh page (a new Streamlit session) in ``laughing_chromium``."""
    import browser

    with browser.new_page(laughing_chromium) as page:
        yield page


@pytest.fixture(scope="module")
def turn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnServer]:
    """coturn on a loopback port with a static user and long-term credential (TURN_USERNAME /
    TURN_CREDENTIAL); skips without ``turnserver``."""
    import turn_relay

    if (reason := turn_relay.missing_coturn()) is not None:
        pytest.skip(reason)
    with turn_relay.coturn(tmp_path_factory.mktemp("coturn"), user=("emojify", "relay-pass")) as server:
        yield server


@pytest.fixture(scope="module")
def turn_rest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnServer]:
    """coturn with a REST-API shared secret (use-auth-secret), the form TURN providers hand out;
    skips without ``turnserver``."""
    import turn_relay

    if (reason := turn_relay.missing_coturn()) is not None:
        pytest.skip(reason)
    with turn_relay.coturn(tmp_path_factory.mktemp("coturn"), secret="shared-rest-secret") as server:
        yield server


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh runs folder for the Training page and app.runs, and a FER2013 folder that is not
    there: a page test never finds the real dataset by chance."""
    from app.runs import RUNS_DIR_ENV

    path = tmp_path / "runs"
    monkeypatch.setenv(RUNS_DIR_ENV, str(path))
    monkeypatch.setenv("FER2013_DIR", str(tmp_path / "fer2013"))
    return path
