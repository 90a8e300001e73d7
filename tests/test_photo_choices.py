"""What the Photo page says about the user's choices is true (Streamlit's AppTest, and Chromium
with a fake camera where the real camera input matters).

Which photo the results are for when both an upload and a snapshot are there, whether the
download holds a drawing, and what a non-neutral reference face's note offers to do about it.
Which emotion the shipped model picks is never assumed: only whether a face was found.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.calibration import Calibration
from app.emotions import CLASS_NAMES, NUM_CLASSES
from app.images import encode_image, read_image

import browser

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
#: One face (the browser tests find exactly one in it).
SMILING = ("smiling.jpg", (FIXTURES / "faces" / "london_009_happy.jpg").read_bytes(), "image/jpeg")
#: Another photo of one face, uploaded later: a new upload of its own.
OTHER_FACE = ("other.jpg", (FIXTURES / "faces" / "london_013_happy.jpg").read_bytes(), "image/jpeg")
#: No face: a camera snapshot is a JPEG, so the coffee cup is taken as one.
NO_FACE_SNAPSHOT = (
    "image.jpg",
    encode_image(read_image((FIXTURES / "coffee.png").read_bytes()), "jpg"),
    "image/jpeg",
)


@pytest.fixture
def photo_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page(str(ROOT / "pages" / "photo.py")).run()
    assert not at.exception
    return at


def results(at: AppTest) -> str:
    """Which result the page shows: the face count's heading, or that no face was found."""
    assert not at.exception and not at.error
    if any("No face found" in info.value for info in at.info):
        return "no face"
    headings = [heading.value for heading in at.subheader if heading.value.endswith(("face", "faces"))]
    assert len(headings) == 1, headings
    return headings[0]


def captions(at: AppTest) -> str:
    return "\n".join(caption.value for caption in at.caption)


def test_the_results_are_for_the_photo_given_last_and_say_which(photo_page: AppTest) -> None:
    at = photo_page
    at.file_uploader(key="photo_upload").set_value(SMILING).run()
    assert results(at) == "1 face"
    assert "results are for" not in captions(at)  # one photo: nothing to tell apart

    at.camera_input(key="photo_camera").set_value(NO_FACE_SNAPSHOT).run()
    assert results(at) == "no face"  # the snapshot, taken after the upload
    assert "results are for your snapshot" in captions(at)

    at.file_uploader(key="photo_upload").set_value(OTHER_FACE).run()
    assert results(at) == "1 face"  # a new upload after the snapshot
    assert "results are for other.jpg" in captions(at)

    at.file_uploader(key="photo_upload").set_value(None).run()
    assert results(at) == "no face"  # the upload cleared: the snapshot is what is left
    assert "results are for" not in captions(at)


@pytest.mark.browser
@pytest.mark.skipif(browser.missing_browser() is not None, reason=str(browser.missing_browser()))
def test_a_snapshot_taken_after_an_upload_is_what_the_page_analyses(camera_page, app_url: str) -> None:
    """The real camera input (the laughing clip as the webcam) after a photo without a face."""
    from playwright.sync_api import expect

    page = camera_page
    page.goto(f"{app_url}/photo")
    expect(page.get_by_test_id("stFileUploader").first).to_be_visible(timeout=120_000)
    browser.upload(page, FIXTURES / "coffee.png")
    expect(page.get_by_text("No face found")).to_be_visible(timeout=150_000)

    page.get_by_role("tab", name=re.compile("Take a photo")).click()
    page.get_by_role("button", name=re.compile("Take Photo", re.IGNORECASE)).click(timeout=60_000)

    expect(page.get_by_role("heading", name=re.compile(r"^\d+ faces?$"))).to_be_visible(timeout=60_000)
    expect(page.get_by_text("The results are for your snapshot")).to_be_visible()
    expect(page.get_by_text("No face found")).to_have_count(0)


def test_no_download_of_a_photo_with_nothing_drawn_on_it(photo_page: AppTest) -> None:
    at = photo_page
    at.file_uploader(key="photo_upload").set_value(SMILING).run()
    assert results(at) == "1 face"
    assert [button.label for button in at.download_button] == ["Download the emojified photo"]

    at.toggle(key="show_emoji").set_value(False)
    at.toggle(key="show_labels").set_value(False).run()
    assert results(at) == "1 face"
    assert not at.download_button  # it would be the photo as uploaded
    assert "Nothing is drawn" in captions(at)

    at.toggle(key="show_boxes").set_value(True).run()
    assert [button.label for button in at.download_button] == ["Download the emojified photo"]


def happy_reference(model: str = "") -> Calibration:
    """A calibration, made with ``model``, whose 'neutral' reference the generic model read as happy."""
    probabilities = [0.04] * NUM_CLASSES
    probabilities[CLASS_NAMES.index("happy")] = 1 - 0.04 * (NUM_CLASSES - 1)
    return Calibration(tuple(math.log(p) for p in probabilities), (0.5,) * NUM_CLASSES, looks=3, model=model)


def test_a_calibration_that_does_not_fit_offers_a_reference_photo_on_the_photo_page(
    photo_page: AppTest,
) -> None:
    """The Photo page has no Reset button and no calibrate action: its notes offer what it has."""
    at = photo_page
    at.file_uploader(key="photo_upload").set_value(SMILING).run()
    made_elsewhere = happy_reference(model="another model")
    calibration_file = ("mine.json", made_elsewhere.to_json().encode(), "application/json")
    at.file_uploader(key="photo_calibration_file").set_value(calibration_file).run()
    assert not at.exception and not at.error

    note = next(warning.value for warning in at.warning if "the model read that face as" in warning.value)
    assert "another reference photo" in note
    assert "Reset" not in note and "calibrate again" not in note
    [other_model] = [warning.value for warning in at.warning if "*another model*" in warning.value]
    assert "choose a neutral photo of this person" in other_model
    assert "calibrate again" not in other_model.lower()


def test_the_live_page_keeps_its_reset_and_calibrate_again_advice() -> None:
    def live_panel() -> None:
        """The Live page's calibration panel with the same calibration loaded (AppTest runs this
        function's source as a script)."""
        from test_photo_choices import happy_reference

        from app.calibration import LiveCalibrator
        from pages.calibration_ui import live_calibration_ui

        calibrator = LiveCalibrator()
        calibrator.load(happy_reference(model="another model"))
        live_calibration_ui(calibrator, playing=True, model="this model")

    at = AppTest.from_function(live_panel).run()
    assert not at.exception
    # Calibrated on a face the model read as happy: a warning, no green success (the success box
    # with a grey caption under it read as all well).
    assert not at.success
    calibrated = next(warning.value for warning in at.warning if "Verdicts are calibrated" in warning.value)
    assert "if it was not your neutral face, Reset and calibrate again." in calibrated
    assert any("Calibrate again for the best fit." in warning.value for warning in at.warning)
    assert [button.label for button in at.button if button.label == "Reset"] == ["Reset"]


def test_a_calibrated_face_says_so_and_its_heatmap_quotes_the_model_it_explains(photo_page: AppTest) -> None:
    """A calibration applies to the photo's largest face: its card says so, with the model's own
    verdict, and the heatmap's caption quotes the model alone, which Grad-CAM explains (it quoted
    the calibrated share beside a heatmap of the model's own)."""
    at = photo_page
    at.file_uploader(key="photo_upload").set_value(SMILING).run()
    generic = next(markdown.value for markdown in at.markdown if markdown.value.startswith("**Face 1:"))
    emotion, share = re.search(r"\*\*Face 1: (\w+)\*\*\s+(\d+)% confident", generic).groups()
    calibration_file = ("mine.json", happy_reference().to_json().encode(), "application/json")
    at.file_uploader(key="photo_calibration_file").set_value(calibration_file).run()
    assert not at.exception and not at.error

    assert f"Calibrated to the reference photo; the model alone: {emotion} {share}%" in captions(at)
    [switch] = [toggle for toggle in at.toggle if toggle.key.startswith("gradcam_")]
    switch.set_value(True).run()
    assert not at.exception
    heatmap = next(caption.value for caption in at.caption if "argued for" in caption.value)
    assert f"argued for **{emotion}** ({share}%)" in heatmap
    assert "explains the model alone" in captions(at)
