"""Public mode: what visitors may not do, and typed paths confined to the data root."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.access import Access, AccessError


def test_local_use_trusts_the_user_with_any_path(tmp_path: Path):
    rules = Access.from_settings({})
    assert not rules.public and rules.owner_features_available
    assert rules.resolve(tmp_path / "x" / ".." / "data") == tmp_path / "data"


@pytest.mark.parametrize("value", ["1", "true", "True", "yes", "on", True])
def test_public_mode_is_switched_on_by_the_usual_spellings(value):
    assert Access.from_settings({"EMOJIFY_PUBLIC": value}).public


@pytest.mark.parametrize("value", ["", "0", "false", "no", False])
def test_public_mode_stays_off_otherwise(value):
    assert not Access.from_settings({"EMOJIFY_PUBLIC": value}).public


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
