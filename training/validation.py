"""What a run validates on, decided before anything is loaded, and never PrivateTest by accident.

``training.data`` reads a test folder without any ``PublicTest_`` file names as if all of it were
PublicTest (a re-packed dataset has no such names). For a folder holding only ``PrivateTest_``
files that meant validating, silently, on the images that must stay unseen. So a run that asks
for PublicTest is refused here, before loading, when the folder has none; the user may choose the
whole test folder instead (``validation_split="test"``), and then the Training page says so.

Only file names are read (no decoding), so the page can answer Start at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.emotions import CLASS_NAMES

PUBLIC, PRIVATE = "PublicTest_", "PrivateTest_"


class ValidationError(ValueError):
    """The dataset has nothing to validate on as asked; the message says what it has instead."""


def count_test_files(data_dir: Path) -> dict[str, int] | None:
    """The test folder's files by kind (``public``, ``private``, ``other``); None for a CSV or a
    dataset without a readable test folder (training.data reports those)."""
    test = Path(data_dir) / "test"
    if not test.is_dir():
        return None
    counts = {"public": 0, "private": 0, "other": 0}
    for name in CLASS_NAMES:
        try:
            entries = list(os.scandir(test / name))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            kind = (
                "public"
                if entry.name.startswith(PUBLIC)
                else "private"
                if entry.name.startswith(PRIVATE)
                else "other"
            )
            counts[kind] += 1
    return counts


def check_validation(data_dir: Path, split: str) -> None:
    """ValidationError when ``split`` is PublicTest and the test folder has no PublicTest image."""
    counts = count_test_files(data_dir)
    if split != "public_test" or counts is None or counts["public"]:
        return
    has = []
    if counts["private"]:
        has.append(f"{counts['private']:,} PrivateTest_ images, which must stay unseen for the final report")
    if counts["other"]:
        has.append(f"{counts['other']:,} other images")
    found = f" (it has {' and '.join(has)})" if has else ""
    raise ValidationError(
        f"the dataset's test folder has no PublicTest_ images to validate on{found}. To validate on "
        "the whole test folder anyway, choose it under Validation (--validation test)"
    )


def describe_validation(data_dir: Path | None, split: str) -> str:
    """One line for the page: what validation will use on this dataset."""
    if split == "test":
        return "Validation uses the whole test folder, PrivateTest included: its scores are no fair test."
    counts = count_test_files(data_dir) if data_dir is not None else None
    if counts is not None and not counts["public"]:
        return "This dataset's test folder has no PublicTest_ images: choose the whole test folder to use it."
    return "Validation uses PublicTest; PrivateTest stays unseen for the final report."
