"""A server's first visitor: the Photo page is usable while the model still loads in the background.

The module's own fresh servers (the shared ``app_url`` may have loaded the model already), opened
at once on the Photo page as a visitor arriving right after a start would. The shipped model is
served through its LiteRT file (app.light_runtime) and is ready in a moment; a model without one
(a run trained here) is served with Keras, which takes TensorFlow's import, and that is the load
the page must stay usable through. The menu is drawn before the server's imports, and the Live
page's library is imported by that page alone. Speed is measured by ``benchmarks.cold_start`` and
``benchmarks.page_load``, never asserted here.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import browser

pytestmark = pytest.mark.browser
if (_reason := browser.missing_browser()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402  (only once it is known to exist)

from app.classifier import EmotionClassifier  # noqa: E402
from app.emotions import DEFAULT_MODEL_PATH  # noqa: E402
from app.light_runtime import derived_path  # noqa: E402

SMILING = Path(__file__).parent / "fixtures" / "faces" / "london_009_happy.jpg"
LOADING = "Loading the emotion model"
#: TensorFlow's import and the model's load, on 2 busy cores.
LOAD_TIMEOUT_MS = 240_000
#: The page is idle (no script run, so no Stop button and nothing greyed out) and says that the
#: model is loading, both at one moment.
IDLE_WHILE_LOADING = f"""() => !!document.querySelector('{browser.APP_IDLE}')
    && document.querySelector('[data-testid="stMain"]').innerText.includes('{LOADING}')"""


#: Where the server serves streamlit-webrtc's player once the component is registered.
WEBRTC_PLAYER = "/component/streamlit_webrtc.component.webrtc_streamer/index.html"


@contextlib.contextmanager
def fresh_page(
    chromium: Browser, tmp_path: Path, runs: Path | None = None, path: str = "photo"
) -> Iterator[tuple[Page, Path]]:
    """The page at ``path`` (the Photo page) of a server started for this test (with ``runs`` as
    its runs folder), and the server's log."""
    log = tmp_path / "server.log"
    env = {"EMOJIFY_RUNS_DIR": str(runs or tmp_path / "runs")}
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        with browser.streamlit_server(log=log, env=env) as url:
            page = context.new_page()
            page.goto(f"{url}/{path}")
            yield page, log
    finally:
        context.close()


def active_run_without_litert_file(runs: Path) -> Path:
    """A runs folder whose active model is the shipped one's copy, as a run trained here would be:
    no LiteRT file beside it yet."""
    model = runs / "mine" / "best.keras"
    model.parent.mkdir(parents=True)
    shutil.copyfile(DEFAULT_MODEL_PATH, model)
    (runs / "active_model.json").write_text(json.dumps({"path": str(model)}))
    return model


def test_first_visit_can_choose_a_photo_while_the_model_loads_and_is_told_so(
    chromium: Browser, tmp_path: Path
):
    model = active_run_without_litert_file(tmp_path / "runs")
    with fresh_page(chromium, tmp_path, tmp_path / "runs") as (page, log):
        first_visit_while_the_model_loads(page, log)
        # The server derives the model's LiteRT file in the background, for its next start.
        deadline = time.monotonic() + LOAD_TIMEOUT_MS / 1000
        while not derived_path(model).is_file() and time.monotonic() < deadline:
            time.sleep(1)  # polling a child process's result, not a wait for time to pass
        assert derived_path(model).is_file(), log.read_text()[-3000:]
    assert EmotionClassifier.load(model).runtime == "LiteRT"


def test_the_shipped_model_serves_the_first_photo_through_litert(chromium: Browser, tmp_path: Path) -> None:
    with fresh_page(chromium, tmp_path) as (page, log):
        browser.upload(page, SMILING)
        expect(page.get_by_text("Face 1:")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        served = log.read_text()
    assert "Emotion model ready" in served and "with LiteRT" in served, served[-3000:]
    assert "Deriving" not in served  # its file is shipped: nothing to make


def first_visit_while_the_model_loads(page: Page, log: Path) -> None:
    expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    # Not a spinner of a run waiting for the model: the page has finished and says what loads.
    page.wait_for_function(IDLE_WHILE_LOADING, timeout=LOAD_TIMEOUT_MS)
    assert "Loading the emotion model" in log.read_text()  # the server started it, no photo yet

    # The line goes by itself once the model is ready: what the page says stays true.
    expect(page.get_by_test_id("stMain").get_by_text(LOADING)).to_have_count(0, timeout=LOAD_TIMEOUT_MS)
    assert "Emotion model ready" in log.read_text()

    browser.upload(page, SMILING)
    expect(page.get_by_text("Face 1:")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_a_first_visitor_gets_the_page_without_waiting_for_the_live_pages_library(
    chromium: Browser, tmp_path: Path
) -> None:
    with fresh_page(chromium, tmp_path) as (page, log):
        expect(page.get_by_test_id("stSidebarNav")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
        expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
        # The line that said the server starts is gone once the page is drawn.
        expect(page.get_by_text("Starting Emojify")).to_have_count(0)
        # streamlit-webrtc (1-2 s of imports) is imported by the Live page alone: its player is not
        # served. Imported before the first page, it kept that page empty that long.
        assert not served(urllib.parse.urljoin(page.url, WEBRTC_PLAYER)), log.read_text()[-3000:]


def served(url: str) -> bool:
    """Whether the server answers ``url`` with its file."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status == 200
    except urllib.error.HTTPError:
        return False
