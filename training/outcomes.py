"""What a training run says when it stops or can't go on, and the checks a resume needs first.

Apart from :mod:`training.train` so that the server can say it without importing Keras: a
training runs in a child process (:mod:`training.jobs`), and the server's Stop must answer at
once, not after the seconds TensorFlow takes to import.
"""

from __future__ import annotations

import errno
import zipfile
from collections.abc import Sequence
from pathlib import Path

#: What a Stop before a new run's first finished epoch leaves: nothing (the folder goes too).
NOTHING_KEPT = "stopped before the first epoch finished: nothing was trained, so no run was kept"


class TrainingStopped(Exception):
    """Raised inside fit when a stop was asked for, so the unfinished epoch writes nothing."""


class ResumeError(ValueError):
    """The run folder cannot be resumed (nothing saved yet, or no epochs left to run)."""


def nothing_new(rows: Sequence[dict[str, float]], epochs: int) -> str:
    """What a Stop before a resumed run's next epoch finished leaves: the run as it was."""
    return (
        f"stopped before epoch {len(rows) + 1} finished: the run is as it was, {len(rows)} of {epochs} epochs"
    )


def check_checkpoint(path: Path) -> None:
    """ResumeError unless ``path`` is a complete .keras file (a zip whose every entry reads back).

    Keras answers a truncated file with "File not found" although the file is there; this says
    what is wrong, and before minutes of loading the data.
    """
    if not path.is_file():
        raise ResumeError(f"{path.parent} has no last.keras: no epoch finished, start a new run instead")
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        broken = str(err)
    if broken is not None:
        raise ResumeError(
            f"{path} is damaged (cut short or overwritten, e.g. by a full disk), so the run can't "
            "go on from it; its best.keras, if any, is still usable"
        )


def stopped_message(done: int, epochs: int, validation_cut: bool) -> str:
    """What a Stop that kept epochs 1..``done`` says, and whether it cut the last one's validation."""
    text = f"stopped after epoch {done} of {epochs}"
    if validation_cut:
        text += (
            f"; the Stop cut epoch {done}'s validation short, so its score is not measured "
            "(a resume measures it first)"
        )
    return text


def disk_message(err: OSError) -> str:
    """A plain sentence for an OSError while writing a run (a full disk above all)."""
    where = f" ({err.filename})" if err.filename else ""
    if err.errno == errno.ENOSPC:
        return f"the disk is full{where}: the run's files could not be written. Free some space and resume it"
    return f"the run's files could not be written{where}: {err.strerror or err}"
