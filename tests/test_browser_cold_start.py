"""A server's first visitor: the Photo page is usable while the model still loads in the background.

The module's own fresh server (the shared ``app_url`` may have loaded the model already), opened
at once on the Photo page as a visitor arriving right after a start would. Speed is measured by
``benchmarks.cold_start``, never asserted here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import browser

pytestmark = pytest.mark.browser
if (_reason := browser.missing_browser()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402  (only once it is known to exist)

SMILING = Path(__file__).parent / "fixtures" / "faces" / "london_009_happy.jpg"
LOADING = "Loading the emotion model"
#: TensorFlow's import and the model's load, on 2 busy cores.
LOAD_TIMEOUT_MS = 240_000
#: The page is idle (no script run, so no Stop button and nothing greyed out) and says that the
#: model is loading, both at one moment.
IDLE_WHILE_LOADING = f"""() => !!document.querySelector('{browser.APP_IDLE}')
    && document.querySelector('[data-testid="stMain"]').innerText.includes('{LOADING}')"""


@pytest.fixture
def fresh_page(chromium: Browser, tmp_path: Path) -> Iterator[tuple[Page, Path]]:
    """The Photo page of a server started for this test, and the server's log."""
    log = tmp_path / "server.log"
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        with browser.streamlit_server(log=log) as url:
            page = context.new_page()
            page.goto(f"{url}/photo")
            yield page, log
    finally:
        context.close()


def test_first_visit_can_choose_a_photo_while_the_model_loads_and_is_told_so(fresh_page: tuple[Page, Path]):
    page, log = fresh_page
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
