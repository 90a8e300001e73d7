"""Every page renders from the entry point without an exception (Streamlit's AppTest)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.classifier import ModelError
from app.emotions import DEFAULT_MODEL_PATH
from app.model_loading import loaded
from app.runs import set_active_model

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "app" / "streamlit_app.py")
PAGES = ROOT / "pages"


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def test_home_page_introduces_the_app(app):
    assert "Emojify" in app.title[0].value


def test_photo_page_offers_upload_and_settings(app):
    app.switch_page(str(PAGES / "photo.py")).run()
    assert not app.exception
    assert app.title[0].value.endswith("Photo")
    assert {"scale_factor", "min_neighbors", "min_size"} <= {slider.key for slider in app.slider}
    assert not app.error  # the shipped model loaded


def test_a_broken_active_model_is_reported_and_the_shipped_one_takes_over(app, monkeypatch, tmp_path):
    broken = tmp_path / "runs" / "crashed" / "best.keras"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"PK\x03\x04 half of a zip, the rest lost when the disk filled up")
    monkeypatch.setenv("EMOJIFY_RUNS_DIR", str(tmp_path / "runs"))
    set_active_model(broken)

    app.switch_page(str(PAGES / "photo.py")).run()
    with contextlib.suppress(ModelError):  # without a photo the page does not wait for the load
        loaded(broken)
    app.run()
    assert not app.exception and not app.error
    assert "crashed/best.keras" in app.warning[0].value
    assert "shipped default" in app.warning[0].value


def test_photo_page_without_a_photo_does_not_wait_for_the_model_it_loads(app, monkeypatch, tmp_path):
    """The first visit after a start: the uploader is usable at once, and the page says the model
    is loading (a model file no one loaded yet here: a copy of the shipped one, made the active model)."""
    copy = tmp_path / "runs" / "copy" / "best.keras"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(DEFAULT_MODEL_PATH, copy)
    monkeypatch.setenv("EMOJIFY_RUNS_DIR", str(tmp_path / "runs"))
    set_active_model(copy)

    app.switch_page(str(PAGES / "photo.py")).run()
    assert not app.exception and not app.error
    assert app.get("file_uploader")
    assert any("Loading the emotion model" in caption.value for caption in app.caption)
    loaded(copy)
    app.run()
    assert not any("Loading the emotion model" in caption.value for caption in app.caption)


def test_video_charts_show_each_emotion_by_its_picture_never_by_an_emoji_character():
    """Where no colour-emoji font is installed, emoji characters turn into outlines or empty boxes."""
    import json

    import pandas as pd

    from app.emotions import CLASS_NAMES, EMOJI
    from app.video import Change
    from pages.shared import emoji_data_url
    from pages.video_charts import moments_html, share_chart, timeline_chart

    share = share_chart(dict.fromkeys(CLASS_NAMES, 1 / len(CLASS_NAMES))).to_dict()
    rows = pd.DataFrame([{"time_s": t, **dict.fromkeys(CLASS_NAMES, 1 / len(CLASS_NAMES))} for t in (0, 1)])
    timeline = timeline_chart(rows, 1.0).to_dict()
    moments = moments_html([Change(0.5, "sad", "disgust")])
    for shown in (json.dumps(share, ensure_ascii=False), json.dumps(timeline, ensure_ascii=False), moments):
        assert not set(EMOJI.values()) & set(shown)
    (share_rows,) = share["datasets"].values()
    assert [row["emoji"] for row in share_rows] == [emoji_data_url(name, 18) for name in CLASS_NAMES]
    assert emoji_data_url("sad", 18) in moments and emoji_data_url("disgust", 18) in moments
