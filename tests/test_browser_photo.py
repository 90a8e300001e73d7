"""The real app in headless Chromium: what a user sees after uploading a photo.

AppTest (test_pages.py) runs the page scripts; these tests go through everything else as well:
the file uploader, the websocket reruns, media files, the download button and page navigation.
One server and one browser serve the whole module; every test gets a fresh browser context, so a
fresh Streamlit session. Which emotion the shipped model picks is never assumed: the page must
agree with ``python -m app`` on the same photo, which ties both to one pipeline whatever model
is shipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_cli import group_photo

from app.emotions import CLASS_NAMES
from app.images import PHOTO_FORMATS, encode_image, read_image

import browser

pytestmark = pytest.mark.browser
if (_reason := browser.missing_browser()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, Locator, Page, expect  # noqa: E402  (only once it is known to exist)

FIXTURES = Path(__file__).parent / "fixtures"
SMILING = FIXTURES / "faces" / "london_009_happy.jpg"
NO_FACE = FIXTURES / "coffee.png"
#: The first upload loads TensorFlow and the model inside the server: slow on 2 CI cores.
RESULT_TIMEOUT_MS = 90_000
PAGE_TIMEOUT_MS = 60_000
#: Channel difference above which a pixel counts as changed (JPEG noise stays far below it).
CHANGED = 40


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A page in its own browser context: no cookies or Streamlit session shared with other tests."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def photo_page(page: Page, app_url: str) -> Page:
    page.goto(f"{app_url}/photo")
    expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    return page


def run_cli(photo: Path, out_dir: Path) -> dict:
    """What ``python -m app PHOTO --json`` reports, with the model the server uses."""
    command = [sys.executable, "-m", "app", str(photo), "--json", "--out", str(out_dir)]
    result = subprocess.run(
        command,
        cwd=browser.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, f"CLI failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def cli_result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What ``python -m app SMILING --json`` reports."""
    return run_cli(SMILING, tmp_path_factory.mktemp("cli_out"))


def face_card_title(page: Page, index: int) -> Locator:
    """The bold "Face N: emotion" line of a face card."""
    return page.get_by_text(re.compile(rf"^Face {index}: \w+$"))


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels that differ clearly (not by compression noise) between two images."""
    return float((np.abs(a - b).max(axis=-1) > CHANGED).mean())


def test_smiling_face_gets_the_same_verdict_on_the_page_as_from_the_cli(photo_page: Page, cli_result: dict):
    browser.upload(photo_page, SMILING)

    title = face_card_title(photo_page, 1)
    expect(title).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    expect(photo_page.get_by_role("heading", name="1 face", exact=True)).to_be_visible()
    expect(face_card_title(photo_page, 2)).to_have_count(0)
    expect(photo_page.get_by_role("button", name="Download the emojified photo")).to_be_visible()
    annotated = photo_page.get_by_test_id("stImage").locator("img").first
    expect(annotated).to_be_visible()
    assert annotated.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [675, 675]

    emotion = title.inner_text().removeprefix("Face 1: ")
    assert emotion in CLASS_NAMES
    assert [face["emotion"] for face in cli_result["faces"]] == [emotion]


def test_download_is_the_annotated_photo_the_cli_writes(photo_page: Page, cli_result: dict, tmp_path: Path):
    browser.upload(photo_page, SMILING)
    button = photo_page.get_by_role("button", name="Download the emojified photo")
    expect(button).to_be_visible(timeout=RESULT_TIMEOUT_MS)

    with photo_page.expect_download() as download_info:
        button.click()
    download = download_info.value
    assert download.suggested_filename == "london_009_happy_emojify.png"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    assert Image.open(saved).format == "PNG"
    downloaded, from_cli = read_rgb(saved), read_rgb(Path(cli_result["output"]))
    assert downloaded.shape == from_cli.shape == read_rgb(SMILING).shape
    assert changed_fraction(downloaded, from_cli) < 0.005  # same drawing, only JPEG noise apart
    assert changed_fraction(downloaded, read_rgb(SMILING)) > 0.02  # an emoji really was drawn


def test_photo_without_a_face_explains_what_to_try(photo_page: Page):
    browser.upload(photo_page, NO_FACE)

    tips = photo_page.get_by_test_id("stAlertContentInfo")
    expect(tips).to_contain_text("No face found", timeout=RESULT_TIMEOUT_MS)
    expect(tips).to_contain_text("Smallest face")  # what to try, not just the headline
    expect(face_card_title(photo_page, 1)).to_have_count(0)
    browser.wait_until_idle(photo_page)
    expect(photo_page.get_by_role("button", name="Download")).to_have_count(0)  # nothing was drawn


def test_faces_are_numbered_left_to_right_on_the_photo_and_the_cards(photo_page: Page, tmp_path: Path):
    """Three faces growing left to right: the largest, on the right, is Face 3, not Face 1."""
    photo = group_photo(tmp_path / "group.png")
    left_to_right = sorted(run_cli(photo, tmp_path / "out")["faces"], key=lambda face: face["box"][0])
    browser.upload(photo_page, photo)

    expect(face_card_title(photo_page, 3)).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    # The title's paragraph: "Face 1: happy" and, on the next line, "93% confident".
    paragraphs = [face_card_title(photo_page, i).locator("xpath=..") for i in (1, 2, 3)]
    cards = [" ".join(paragraph.inner_text().split()) for paragraph in paragraphs]
    expected = [
        f"Face {i}: {face['emotion']} {face['confidence']:.0%} confident"
        for i, face in enumerate(left_to_right, start=1)
    ]
    assert cards == expected


def test_a_portrait_photo_has_its_download_in_view(photo_page: Page, tmp_path: Path):
    """A tall photo fills more than the window: its Download button must not be below the fold."""
    square = read_image(SMILING)
    tall = tmp_path / "portrait.png"
    tall.write_bytes(encode_image(np.concatenate([square, square[: square.shape[0] // 2]]), "png"))
    browser.upload(photo_page, tall)

    button = photo_page.get_by_role("button", name="Download the emojified photo")
    expect(button).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    browser.wait_until_idle(photo_page)
    expect(button).to_be_in_viewport()


def test_text_file_named_png_is_refused_politely(photo_page: Page, tmp_path: Path):
    fake = tmp_path / "not_a_photo.png"
    fake.write_text("These are words, not pixels.\n")
    browser.upload(photo_page, fake)

    error = photo_page.get_by_test_id("stAlertContentError")  # an exception box contains one too
    expect(error.first).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    browser.wait_until_idle(photo_page)  # the run is over: an exception would be on the page by now
    expect(photo_page.get_by_test_id("stException")).to_have_count(0)
    expect(photo_page.locator("body")).not_to_contain_text("Traceback")
    expect(error).to_contain_text("not an image")
    expect(error).to_contain_text("not_a_photo.png")
    for name in PHOTO_FORMATS:  # every format the uploader takes, GIF and TIFF too
        expect(error).to_contain_text(name)


def _sidebar_link(page: Page) -> Locator:
    return page.get_by_test_id("stSidebarNav").get_by_role("link", name="Photo")


def _home_page_link(page: Page) -> Locator:
    return page.get_by_test_id("stMain").get_by_role("link", name="Try it on a photo")


@pytest.mark.parametrize("link", [_sidebar_link, _home_page_link], ids=["sidebar", "page-link"])
def test_home_page_leads_to_the_photo_page(page: Page, app_url: str, link: Callable[[Page], Locator]):
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Emojify", level=1)).to_be_visible(timeout=PAGE_TIMEOUT_MS)

    link(page).click()

    expect(page).to_have_url(f"{app_url}/photo", timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Photo", level=1)).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_test_id("stFileUploader")).to_be_visible()


def test_the_explanation_toggle_shows_a_heatmap_for_the_prediction_and_a_picked_emotion(photo_page: Page):
    browser.upload(photo_page, SMILING)
    title = face_card_title(photo_page, 1)
    expect(title).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    predicted = title.inner_text().removeprefix("Face 1: ")
    browser.wait_until_idle(photo_page)

    browser.switch_on(photo_page.get_by_role("switch", name="What did the model look at?"))

    heatmap = photo_page.get_by_test_id("stImage").filter(has_text=f"Grad-CAM: {predicted}")
    expect(heatmap.locator("img")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    first_src = heatmap.locator("img").get_attribute("src")
    other = "sad" if predicted != "sad" else "happy"
    photo_page.get_by_test_id("stSelectbox").filter(has_text="Emotion to explain").click()
    photo_page.get_by_role("option", name=other).click()

    picked = photo_page.get_by_test_id("stImage").filter(has_text=f"Grad-CAM: {other}")
    expect(picked.locator("img")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    assert picked.locator("img").get_attribute("src") != first_src
    browser.wait_until_idle(photo_page)
    expect(photo_page.get_by_test_id("stException")).to_have_count(0)


def test_a_new_photo_shows_its_explanation_switch_as_it_is(photo_page: Page):
    """After another photo, the switch and the heatmap agree, and one click changes what is shown."""
    switch = photo_page.get_by_role("switch", name="What did the model look at?")
    heatmap = photo_page.get_by_test_id("stImage").filter(has_text="Grad-CAM:")
    photo = photo_page.get_by_test_id("stImage").locator("img").first
    browser.upload(photo_page, SMILING)
    expect(face_card_title(photo_page, 1)).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    browser.wait_until_idle(photo_page)
    browser.switch_on(switch)
    expect(heatmap).to_have_count(1, timeout=RESULT_TIMEOUT_MS)
    first_photo = photo.get_attribute("src")

    browser.upload(photo_page, FIXTURES / "faces" / "london_010_neutral.jpg")
    expect(photo).not_to_have_attribute("src", first_photo, timeout=RESULT_TIMEOUT_MS)
    browser.wait_until_idle(photo_page)

    shown = heatmap.count() == 1
    assert switch.is_checked() == shown, f"switch on: {switch.is_checked()}, heatmap shown: {shown}"
    switch.click(force=True)
    expect(heatmap).to_have_count(0 if shown else 1, timeout=RESULT_TIMEOUT_MS)
    expect(switch).to_be_checked(checked=not shown)


def test_a_tiny_photo_is_enlarged_only_to_a_readable_size_with_its_label_whole(
    photo_page: Page, tmp_path: Path
):
    """30×30 pixels: shown 8× (240 px), not stretched over the column, and the label fits on it."""
    tiny = tmp_path / "tiny.png"
    Image.open(SMILING).crop((150, 150, 525, 525)).resize((30, 30), Image.LANCZOS).save(tiny)
    browser.upload(photo_page, tiny)

    expect(face_card_title(photo_page, 1)).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    browser.wait_until_idle(photo_page)
    photo = photo_page.get_by_test_id("stImage").locator("img").first
    # The <img> is in the page before its picture has loaded (natural size 0 × 0 until then).
    photo_page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=photo.element_handle())
    assert photo.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [240, 240]
    assert photo.bounding_box()["width"] <= 240
    with photo_page.expect_download() as download_info:
        photo_page.get_by_role("button", name="Download the emojified photo").click()
    drawn = read_rgb(Path(download_info.value.path()))
    band = np.all(drawn > 200, axis=-1)  # the label's light band, text in it
    rows = np.flatnonzero(band.mean(axis=1) > 0.5)
    assert len(rows), "no label band drawn"
    text = drawn[rows.min() : rows.max() + 1].max(axis=-1) < 100  # dark letters in the band
    assert not text[:, -2:].any() and not text[:, :2].any(), "the label runs off the photo's edge"
