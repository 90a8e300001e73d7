"""Public mode: what visitors may not do, and typed paths confined to the data root."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.access import Access, AccessError, Throttle
from app.model_card import visitor_view


def test_local_use_trusts_the_user_with_any_path(tmp_path: Path):
    rules = Access.from_settings({})
    assert not rules.public and rules.owner_features_available
    assert rules.resolve(tmp_path / "x" / ".." / "data") == tmp_path / "data"


@pytest.mark.parametrize("value", ["1", "true", "True", " YES ", "on", True, 1, 1.0])
def test_public_mode_is_switched_on_by_every_spelling_of_true(value):
    rules = Access.from_settings({"EMOJIFY_PUBLIC": value})
    assert rules.public and not rules.problem


@pytest.mark.parametrize("value", ["", "0", "false", "No", "off", False, 0])
def test_public_mode_is_off_only_when_it_says_no(value):
    rules = Access.from_settings({"EMOJIFY_PUBLIC": value})
    assert not rules.public and not rules.problem


@pytest.mark.parametrize("value", ["enabled", "ture", "2", 2, "public"])
def test_an_unrecognised_public_switch_fails_closed_and_says_why(value):
    rules = Access.from_settings({"EMOJIFY_PUBLIC": value, "EMOJIFY_OWNER_PASSWORD": "pw"})
    assert rules.public
    assert "EMOJIFY_PUBLIC" in rules.problem and "public mode is on" in rules.problem


def test_public_mode_without_password_has_no_owner_features_and_reads_no_folders(tmp_path: Path):
    rules = Access.from_settings({"EMOJIFY_PUBLIC": "1"})
    assert not rules.owner_features_available and not rules.unlocks("")
    with pytest.raises(AccessError, match="reads no server folders"):
        rules.resolve(tmp_path)


def test_owner_password_unlocks_only_when_exact():
    rules = Access.from_settings({"EMOJIFY_PUBLIC": "1", "EMOJIFY_OWNER_PASSWORD": "correct horse"})
    assert rules.owner_features_available
    assert rules.unlocks("correct horse")
    assert not rules.unlocks("correct horse ") and not rules.unlocks("")


def test_data_root_confines_typed_paths_even_through_dotdot_and_symlinks(tmp_path: Path):
    root = tmp_path / "data"
    (root / "fer2013").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "escape").symlink_to(tmp_path / "secret")
    rules = Access.from_settings({"EMOJIFY_PUBLIC": "1", "EMOJIFY_DATA_ROOT": str(root)})

    assert rules.resolve("fer2013") == root / "fer2013"
    assert rules.resolve(root / "fer2013") == root / "fer2013"
    for typed in ("../secret", str(tmp_path / "secret"), "escape", "/etc"):
        with pytest.raises(AccessError, match="outside the data folder"):
            rules.resolve(typed)


class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_wrong_passwords_are_free_then_each_one_doubles_the_wait():
    clock = FakeClock()
    throttle = Throttle(clock=clock)
    for _ in range(4):
        throttle.failed("a")
    assert throttle.wait_s("a") == 0

    waits = []
    for _ in range(12):
        throttle.failed("a")
        waits.append(throttle.wait_s("a"))
        clock.now += waits[-1]  # the guesser waits exactly as long as told
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]

    clock.now += 10
    throttle.failed("a")
    clock.now += 299
    assert throttle.wait_s("a") == pytest.approx(1)


def test_a_new_session_per_guess_is_slowed_by_the_server_wide_count():
    clock = FakeClock()
    throttle = Throttle(clock=clock)
    for guess in range(7):
        throttle.failed(f"session-{guess}")

    assert throttle.failed("session-7") == (1, 8)
    assert throttle.wait_s("someone-new") == 8  # 2 ** (8 - 5): a fresh session waits too
    clock.now += 8
    assert throttle.wait_s("someone-new") == 0


def test_the_right_password_and_a_quiet_hour_forget_the_failures():
    clock = FakeClock()
    throttle = Throttle(clock=clock)
    for _ in range(6):
        throttle.failed("a")
    throttle.succeeded("a")
    assert throttle.wait_s("a") == throttle.wait_s("b") == 0

    for _ in range(6):
        throttle.failed("b")
    assert throttle.wait_s("b") == 2
    clock.now += 3601
    assert throttle.wait_s("b") == 0
    assert throttle.failed("b") == (1, 1)


def test_visitors_see_cards_without_the_servers_folders():
    config = {"data_dir": "/srv/data/fer2013", "runs_dir": "/srv/app/runs", "init": "runs/a/best.keras"}
    note = "/srv/data/fer2013/test has no names"
    card = {
        "architecture": "resnet",
        "training": {"config": config, "dataset": {"train": {"root": "/srv/data/fer", "note": note}}},
        "members": [{"file": "/root/runs/r40/best.keras", "weight": 0.5}],
        "source": "https://example.org/models/x",
        "windows": "C:\\Users\\owner\\faces\\x.jpg",
    }

    shown = visitor_view(card)

    assert shown["training"]["config"] == {
        "data_dir": "…/fer2013",
        "runs_dir": "…/runs",
        "init": config["init"],
    }
    assert shown["training"]["dataset"]["train"] == {"root": "…/fer", "note": "…/test has no names"}
    assert shown["members"] == [{"file": "…/best.keras", "weight": 0.5}]
    assert shown["source"] == "https://example.org/models/x" and shown["windows"] == "…/x.jpg"
    assert card["members"][0]["file"] == "/root/runs/r40/best.keras"  # the card itself is untouched
