"""Public mode: what visitors may not do, and typed paths confined to the data root."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.access import Access, AccessError


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
