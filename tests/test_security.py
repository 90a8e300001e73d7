"""Attacks on a public deployment, run against the real server as an owner would set it up.

The server reads the README's own public-mode secrets block, copied byte for byte from README.md
into a temporary ``secrets.toml`` (never into the repository), so the README cannot drift from
what is tested. A visitor then tries what an attacker would: the Training page, server paths on
Analysis, hostile zips (clashing names, images claiming huge sizes, too many images), forged
session state and password guessing. The last two speak Streamlit's websocket protocol directly,
as a script would (a browser never sends a forged widget state), with Streamlit's own protobuf
messages. Nothing may show a traceback, a server path or an owner feature.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pytest

from app.emotions import CLASS_NAMES, REPO_ROOT
from benchmarks.upload_memory import zip_of

import browser

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

#: Tests in Chromium; the websocket ones need the real server only (both are marked ``browser``).
in_chromium = pytest.mark.skipif(browser.missing_browser() is not None, reason=str(browser.missing_browser()))

OWNER_LOCKED = "Training is for the owner of this public deployment"
#: What a redacted uncaught error says (client.showErrorDetails = "none").
REDACTED = "The original error message is redacted"


def readme_public_secrets() -> str:
    """The README's public-mode secrets block, exactly as an owner would paste it."""
    blocks = re.findall(r"```toml\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.DOTALL)
    block = next(b for b in blocks if "EMOJIFY_PUBLIC" in b)
    assert "EMOJIFY_PUBLIC = true" in block and "EMOJIFY_OWNER_PASSWORD" in block
    return block


@dataclass(frozen=True)
class PublicApp:
    url: str
    log: Path
    password: str


@pytest.fixture(scope="module")
def public_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublicApp]:
    folder = tmp_path_factory.mktemp("public")
    secrets = folder / "secrets.toml"
    secrets.write_text(readme_public_secrets())
    password = re.search(r'EMOJIFY_OWNER_PASSWORD = "([^"]+)"', secrets.read_text()).group(1)
    # Only the secrets file switches public mode on: nothing of the test's own environment may.
    env = {"EMOJIFY_PUBLIC": "", "EMOJIFY_OWNER_PASSWORD": "", "EMOJIFY_DATA_ROOT": ""}
    with browser.streamlit_server(env=env, secrets=secrets, log=folder / "server.log") as url:
        yield PublicApp(url, folder / "server.log", password)


def open_page(chromium: Browser, url: str) -> Page:
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, timeout=120_000)
    return page


def expect_no_error_details(page: Page) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stException")).to_have_count(0)
    text = page.locator("body").inner_text()
    assert "Traceback" not in text and str(REPO_ROOT) not in text and "/tmp/" not in text


# --- what a visitor is offered, in the browser -------------------------------------------------------


@in_chromium
@pytest.mark.browser
def test_readme_secrets_lock_training_behind_the_password(chromium: Browser, public_app: PublicApp) -> None:
    from playwright.sync_api import expect

    page = open_page(chromium, f"{public_app.url}/training")
    expect(page.get_by_text(OWNER_LOCKED)).to_be_visible(timeout=120_000)
    browser.wait_until_idle(page)

    expect(page.get_by_test_id("stSidebar").get_by_label("Owner password")).to_be_visible(timeout=60_000)
    expect(page.locator(".st-key-train_start")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Start", re.IGNORECASE))).to_have_count(0)
    expect(page.get_by_test_id("stFileUploader")).to_have_count(0)
    expect(page.get_by_test_id("stAppDeployButton")).to_have_count(0)  # client.toolbarMode
    expect_no_error_details(page)
    page.close()


@in_chromium
@pytest.mark.browser
def test_analysis_offers_visitors_no_server_paths(chromium: Browser, public_app: PublicApp) -> None:
    from playwright.sync_api import expect

    page = open_page(chromium, f"{public_app.url}/analysis")
    images = page.get_by_role("combobox", name="Images")
    expect(images).to_be_visible(timeout=120_000)
    browser.wait_until_idle(page)

    images.click()
    offered = page.get_by_role("option").all_inner_texts()
    assert "An uploaded .zip" in offered and "A folder on the server" not in offered, offered
    page.keyboard.press("Escape")
    page.get_by_role("combobox", name="Model", exact=True).click()
    models = page.get_by_role("option").all_inner_texts()
    assert models and not any("on the server" in option for option in models), models
    page.keyboard.press("Escape")
    expect(page.get_by_label(re.compile("FER2013 folder|Folder with|Path of the"))).to_have_count(0)
    expect_no_error_details(page)
    page.close()


# --- hostile zips on Analysis --------------------------------------------------------------------------


def huge_png_zip() -> bytes:
    """One 5000×5000 one-colour PNG per class (25 kB each, 25 MB each decoded) and nothing else."""
    ok, png = cv2.imencode(".png", np.full((5000, 5000), 128, np.uint8))
    assert ok
    return zip_of({f"test/{name}/PrivateTest_0.png": png.tobytes() for name in CLASS_NAMES})


def clashing_zip() -> bytes:
    return zip_of({"test/happy/x": b"a file", "test/happy/x/y.png": b"inside a folder of the same name"})


def many_images_zip() -> bytes:
    return zip_of({f"test/happy/{n}.png": b"" for n in range(20_001)})


@in_chromium
@pytest.mark.browser
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (huge_png_zip, "7 image(s) over 4096×4096 pixels left out undecoded"),
        (clashing_zip, "clashes with another entry: one name is both a file and a folder"),
        (many_images_zip, "the zip holds 20,001 images, more than the 20,000 one upload may hold"),
    ],
    ids=["huge-pngs", "file-and-folder", "too-many-images"],
)
def test_hostile_zips_get_a_plain_answer_on_analysis(
    chromium: Browser, public_app: PublicApp, tmp_path: Path, make, message: str
) -> None:
    from playwright.sync_api import expect

    archive = tmp_path / "faces.zip"
    archive.write_bytes(make())
    page = open_page(chromium, f"{public_app.url}/analysis")
    images = page.get_by_role("combobox", name="Images")
    expect(images).to_be_visible(timeout=120_000)
    browser.wait_until_idle(page)  # a click during the first run's redraw can be lost
    images.click()
    page.get_by_role("option", name="An uploaded .zip").click(timeout=60_000)
    browser.upload(page, archive)
    page.get_by_role("button", name="Evaluate on faces.zip").click(timeout=60_000)

    expect(page.get_by_text(message, exact=False)).to_be_visible(timeout=180_000)
    browser.wait_until_idle(page)
    expect_no_error_details(page)
    page.close()


# --- a script on the websocket ------------------------------------------------------------------------


class Visitor:
    """One session spoken to over Streamlit's websocket, as a script (not a browser) would."""

    def __init__(self, socket) -> None:
        self.socket = socket

    @classmethod
    @contextlib.contextmanager
    def of(cls, url: str) -> Iterator[Visitor]:
        from websockets.sync.client import connect

        with connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"]) as socket:
            yield cls(socket)

    def run(self, page: str, widgets: list = ()) -> list:
        """Rerun ``page`` with these widget states; the elements the server drew."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        message = BackMsg()
        message.rerun_script.page_name = page
        message.rerun_script.widget_states.widgets.extend(widgets)
        self.socket.send(message.SerializeToString())
        elements = []
        while True:
            reply = ForwardMsg()
            reply.ParseFromString(self.socket.recv(timeout=120))
            if reply.WhichOneof("type") == "script_finished":
                return elements
            if reply.WhichOneof("type") == "delta" and reply.delta.WhichOneof("type") == "new_element":
                elements.append(reply.delta.new_element)


def widget(widget_id: str, **value: object):
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    return WidgetState(id=widget_id, **value)


def alerts(elements: list) -> list[str]:
    """The texts of st.info/warning/error elements, in the order drawn."""
    return [element.alert.body for element in elements if element.WhichOneof("type") == "alert"]


def password_field_id(elements: list) -> str:
    fields = [e.text_input.id for e in elements if e.WhichOneof("type") == "text_input"]
    assert len(fields) == 1 and fields[0].endswith("owner_password"), fields
    return fields[0]


def assert_nothing_for_the_owner_and_no_details(elements: list) -> None:
    """No owner control was drawn, and an uncaught error (if any) says nothing about the server."""
    kinds = [element.WhichOneof("type") for element in elements]
    assert "button" not in kinds and "file_uploader" not in kinds, kinds
    for element in elements:
        if element.WhichOneof("type") == "exception":
            shown = element.exception
            assert not shown.stack_trace and not shown.type and REDACTED in shown.message, shown


def assert_locked_without_details(elements: list) -> None:
    assert any(OWNER_LOCKED in text for text in alerts(elements)), alerts(elements)
    assert_nothing_for_the_owner_and_no_details(elements)


@pytest.mark.parametrize(
    "forged",
    [
        {"string_value": "junk"},
        {"bool_value": True},
        {"int_value": 1},
    ],
    ids=["string", "bool", "int"],
)
@pytest.mark.browser
def test_forged_session_state_unlocks_nothing_and_shows_no_traceback(public_app: PublicApp, forged) -> None:
    with Visitor.of(public_app.url) as visitor:
        field = password_field_id(visitor.run("training"))
        unlock_id = field.replace("owner_password", "owner_unlocked")
        for forged_id in ("owner_unlocked", unlock_id, field):
            assert_nothing_for_the_owner_and_no_details(
                visitor.run("training", [widget(forged_id, **forged)])
            )
            assert_locked_without_details(visitor.run("training"))


@pytest.mark.browser
def test_password_guessing_backs_off_and_every_failure_is_logged_without_the_guess(
    public_app: PublicApp,
) -> None:
    guesses = [f"guess-{n:02d}-xyzzy" for n in range(15)]
    with Visitor.of(public_app.url) as visitor:
        field = password_field_id(visitor.run("training"))
        answers = []
        for guess in guesses:
            elements = visitor.run("training", [widget(field, string_value=guess)])
            assert_locked_without_details(elements)
            answers.append(alerts(elements))
        # Right password while the back-off runs: not even checked.
        after = visitor.run("training", [widget(field, string_value=public_app.password)])

    checked = sum("Wrong password." in shown for shown in answers)
    refused = sum(any("was not checked" in text for text in shown) for shown in answers)
    assert answers[0].count("Wrong password.") == 1
    # Fewer than five are checked when this server already counted wrong ones (the forged field).
    assert 1 <= checked < len(guesses) and refused >= 1 and checked + refused == len(guesses), answers
    assert any("Too many wrong passwords" in text for text in alerts(after)), alerts(after)
    assert_locked_without_details(after)
    log = public_app.log.read_text(errors="replace")
    assert len(re.findall(r"Wrong owner password \(session \w+: \d+ in a row", log)) >= checked
    assert "Owner password not checked" in log
    assert not any(guess in log for guess in guesses) and public_app.password not in log


# --- the password page with a clock the test turns (AppTest) ---------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_training_page_says_how_long_to_wait_and_then_lets_the_owner_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from streamlit.testing.v1 import AppTest

    import pages.shared
    from app.access import Throttle

    clock = FakeClock()
    monkeypatch.setattr(pages.shared, "PASSWORD_GUESSES", Throttle(clock=clock))
    monkeypatch.setenv("EMOJIFY_PUBLIC", "true")
    monkeypatch.setenv("EMOJIFY_OWNER_PASSWORD", "owner-secret")
    monkeypatch.setenv("EMOJIFY_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(REPO_ROOT / "app" / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page(str(REPO_ROOT / "pages" / "training.py")).run()

    def attempt(password: str) -> list[str]:
        at.text_input(key="owner_password").set_value(password).run()
        assert not at.exception
        return [e.value for e in at.sidebar.error] + [w.value for w in at.sidebar.warning]

    for n in range(5):
        assert attempt(f"wrong-{n}") == (
            ["Wrong password."]
            if n < 4
            else ["Wrong password.", "Too many wrong passwords: the next one is checked in 1 s."]
        )
    assert attempt("owner-secret")[0] == "That password was not checked: too many wrong ones came first."
    assert at.text_input(key="owner_password").value == ""  # the field keeps no password
    clock.now += 1
    attempt("wrong-5")
    assert "Too many wrong passwords: the next one is checked in 2 s." in attempt("wrong-6")
    clock.now += 2
    assert attempt("owner-secret") == []
    assert [b for b in at.button if b.key == "train_start"]
    assert len([r for r in caplog.records if r.getMessage().startswith("Wrong owner password")]) == 6
    assert not any("wrong-" in r.getMessage() for r in caplog.records)


def test_the_model_card_on_analysis_shows_visitors_no_server_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from streamlit.testing.v1 import AppTest

    from app.emotions import DEFAULT_MODEL_PATH
    from app.model_card import read_card

    shipped = json.dumps(read_card(DEFAULT_MODEL_PATH))
    assert re.search(r'"/\w+/', shipped), "the shipped card no longer records a server path to hide"
    monkeypatch.setenv("EMOJIFY_PUBLIC", "true")
    monkeypatch.setenv("EMOJIFY_OWNER_PASSWORD", "owner-secret")
    monkeypatch.setenv("EMOJIFY_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(REPO_ROOT / "app" / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page(str(REPO_ROOT / "pages" / "analysis.py")).run()

    assert not at.exception
    shown = [json.dumps(json.loads(element.proto.body), ensure_ascii=False) for element in at.json]
    assert shown and "…/" in shown[-1], shown
    assert not any(re.search(r'"/\w+/', body) for body in shown), shown


def test_a_link_out_of_the_data_root_stops_a_training_on_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Inside the data root, ``train/happy`` linked to a folder outside it: refused, not read."""
    from streamlit.testing.v1 import AppTest

    import pages.shared
    from app.access import Throttle

    data_root, outside = tmp_path / "data", tmp_path / "outside"
    for split, prefix in (("train", "Training_"), ("test", "PublicTest_")):
        for name in CLASS_NAMES:
            (data_root / "faces" / split / name).mkdir(parents=True)
            (data_root / "faces" / split / name / f"{prefix}0.jpg").write_bytes(b"")  # layout only
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"")
    happy = data_root / "faces" / "train" / "happy"
    for image in happy.iterdir():
        image.unlink()
    happy.rmdir()
    happy.symlink_to(outside)
    monkeypatch.setattr(pages.shared, "PASSWORD_GUESSES", Throttle())
    monkeypatch.setenv("EMOJIFY_PUBLIC", "true")
    monkeypatch.setenv("EMOJIFY_OWNER_PASSWORD", "owner-secret")
    monkeypatch.setenv("EMOJIFY_DATA_ROOT", str(data_root))
    monkeypatch.setenv("EMOJIFY_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("FER2013_DIR", raising=False)
    at = AppTest.from_file(str(REPO_ROOT / "app" / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page(str(REPO_ROOT / "pages" / "training.py")).run()
    at.text_input(key="owner_password").set_value("owner-secret").run()

    at.text_input(key="train_folder").set_value("faces")
    at.button(key="train_start").click().run()

    assert not at.exception
    refusals = [error.value for error in at.error if "leads outside the data folder" in error.value]
    assert refusals and "train/happy is a link" in refusals[0], [error.value for error in at.error]
    assert not (tmp_path / "runs").exists()
