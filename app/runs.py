"""Training runs on disk, and which model the pages use: read by every page, written by the trainer.

A run is a folder ``runs_dir/<name>/`` (see ``training.train`` for its files). This module reads
them without importing Keras, so the app can list runs, show their curves and cards, and pick the
active model cheaply. The trainer marks a run's state in ``status.json`` and, while it trains,
holds an ``fcntl`` lock on the run's ``run.lock``; a run whose process died without saying so (a
kill, a crash, a server restart) reads as ``interrupted``, because the kernel released that lock
with its holder. A pid alone could not tell: a restarted server (PID 1 in a container) gets the
dead trainer's pid back, and the run stayed "running" forever. Runs from before the lock file
are still judged by their pid.

The active model is a setting, ``runs_dir/active_model.json``, never a copy over the shipped
``model/emotion_cnn.keras``: choosing a run can always be undone, and a deleted run falls back to
the shipped default.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.emotions import DEFAULT_MODEL_PATH, REPO_ROOT
from app.light_runtime import stale_derived
from app.model_card import atomic_output

#: Where runs live unless EMOJIFY_RUNS_DIR or an explicit argument says otherwise (git-ignored).
RUNS_DIR_ENV = "EMOJIFY_RUNS_DIR"
STATES = ("running", "finished", "stopped", "failed", "interrupted")
ACTIVE_MODEL_FILE = "active_model.json"
#: Held (flock) by the process training the run, released by the kernel when it dies.
LOCK_FILE = "run.lock"
#: The files a run folder may hold; deleting a run removes these and nothing else.
RUN_FILES = (
    "config.json",
    "history.csv",
    "last.keras",
    "best.keras",
    "best.json",
    "status.json",
    LOCK_FILE,
)


class RunBusy(RuntimeError):
    """The run is being trained (its lock is held) and cannot be changed now."""


def default_runs_dir() -> Path:
    """The runs folder: ``$EMOJIFY_RUNS_DIR`` when set, else ``runs/`` in the repository."""
    value = os.environ.get(RUNS_DIR_ENV)
    return Path(value) if value else REPO_ROOT / "runs"


@dataclass(frozen=True)
class Run:
    """One run folder as last written; ``history`` rows hold HISTORY_COLUMNS as floats."""

    path: Path
    config: dict[str, Any]
    history: list[dict[str, float]]
    card: dict[str, Any] | None
    state: str
    message: str = ""
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def best_model(self) -> Path | None:
        """best.keras when at least one epoch has finished."""
        path = self.path / "best.keras"
        return path if path.is_file() else None

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def epochs_planned(self) -> int:
        return int(self.config.get("epochs", 0))

    @property
    def best_val_accuracy(self) -> float | None:
        """The best measured one; None before any (an epoch whose validation a Stop cut is NaN)."""
        values = [row["val_accuracy"] for row in self.history if not math.isnan(row["val_accuracy"])]
        return max(values) if values else None

    @property
    def duration_s(self) -> float:
        return sum(row["seconds"] for row in self.history)

    @property
    def resumable(self) -> bool:
        """Stopped early with a checkpoint to continue from."""
        return (
            self.state in {"stopped", "failed", "interrupted"}
            and (self.path / "last.keras").is_file()
            and self.epochs_run < self.epochs_planned
        )


def read_history(path: Path) -> list[dict[str, float]]:
    """history.csv rows as numbers; empty when the file is missing."""
    try:
        with path.open(newline="", encoding="utf-8") as file:
            return [{name: float(value) for name, value in row.items()} for row in csv.DictReader(file)]
    except FileNotFoundError:
        return []


def write_status(run_dir: Path, state: str, message: str = "", **extra: Any) -> None:
    """Record the run's state atomically, with the pid of the process that owns it."""
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")
    status = {"state": state, "message": message, "pid": os.getpid(), **extra}
    with atomic_output(run_dir / "status.json") as tmp:
        tmp.write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def hold_run(run_dir: Path, wait_s: float = 2.0) -> Iterator[None]:
    """Hold ``run_dir``'s lock while the block trains it; RunBusy when another holder has it.

    ``flock`` locks belong to an open file, so a page in the same process that opens the file
    again sees it held, and the kernel drops the lock when the holder exits, however it exits.
    ``wait_s`` covers a reader that holds it for an instant to look (``is_held``).
    """
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RunBusy(f"run {run_dir.name!r} is being trained by another process") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def is_held(run_dir: Path) -> bool | None:
    """Whether a process is training ``run_dir`` now; None for a run without a lock file."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def read_run(path: Path) -> Run | None:
    """The run in ``path``, or None when the folder is not a run (no readable config.json)."""
    config = _read_json(path / "config.json")
    if config is None:
        return None
    history = read_history(path / "history.csv")
    status = _read_json(path / "status.json") or {}
    state = status.get("state")
    if state == "running":
        held = is_held(path)
        if not (held if held is not None else _pid_alive(int(status.get("pid", -1)))):
            state = "interrupted"
    if state not in STATES:
        # Runs from before status.json, or one whose status file was lost.
        finished = history and len(history) >= int(config.get("epochs", 0))
        state = "finished" if finished else "interrupted"
    card = _read_json(path / "best.json")
    return Run(path, config, history, card, state, str(status.get("message", "")), status)


def list_runs(runs_dir: Path | None = None) -> list[Run]:
    """Every run under ``runs_dir``, most recently changed first."""
    runs_dir = runs_dir or default_runs_dir()
    if not runs_dir.is_dir():
        return []
    runs = [run for child in runs_dir.iterdir() if child.is_dir() and (run := read_run(child))]

    def changed(run: Run) -> float:
        return max((p.stat().st_mtime for p in run.path.iterdir() if p.is_file()), default=0.0)

    return sorted(runs, key=changed, reverse=True)


def active_model_path(runs_dir: Path | None = None) -> Path:
    """The model the pages use: the chosen run's model if it still exists, else the shipped default."""
    setting = _read_json((runs_dir or default_runs_dir()) / ACTIVE_MODEL_FILE)
    if setting and isinstance(setting.get("path"), str):
        chosen = Path(setting["path"])
        if chosen.is_file():
            return chosen
    return DEFAULT_MODEL_PATH


def set_active_model(model_path: Path | None, runs_dir: Path | None = None) -> None:
    """Make ``model_path`` the pages' model; None goes back to the shipped default."""
    runs_dir = runs_dir or default_runs_dir()
    setting = runs_dir / ACTIVE_MODEL_FILE
    if model_path is None or model_path.resolve() == DEFAULT_MODEL_PATH.resolve():
        setting.unlink(missing_ok=True)
        return
    if not model_path.is_file():
        raise FileNotFoundError(f"no model file at {model_path}")
    runs_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(setting) as tmp:
        tmp.write_text(json.dumps({"path": str(model_path.resolve())}) + "\n", encoding="utf-8")


def delete_run(run_dir: Path, runs_dir: Path) -> bool:
    """Delete the run folder ``run_dir`` (its run files only); whether it was the active model.

    Refuses (RunBusy) a run being trained, and (ValueError) anything that is not a run folder
    directly in ``runs_dir``, so the shipped model or a folder a user typed can never go. A
    deleted active run hands the pages back to the shipped model, and the return value lets the
    caller say so. A folder holding files of its own keeps them (and the folder).
    """
    run_dir, runs_dir = run_dir.resolve(), runs_dir.resolve()
    if run_dir.parent != runs_dir or read_run(run_dir) is None:
        raise ValueError(f"{run_dir} is not a run in {runs_dir}")
    was_active = active_model_path(runs_dir).resolve().parent == run_dir
    with hold_run(run_dir, wait_s=0.0):  # no trainer can claim it while it goes
        for name in RUN_FILES:
            if name != LOCK_FILE:
                for derived in stale_derived(run_dir / name) if name.endswith(".keras") else ():
                    derived.unlink(missing_ok=True)  # its LiteRT files (app.light_runtime)
                (run_dir / name).unlink(missing_ok=True)
    (run_dir / LOCK_FILE).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: files that are not the run's stay
        run_dir.rmdir()
    if was_active:
        set_active_model(None, runs_dir)
    return was_active


def epoch_count(count: int) -> str:
    """``1 epoch``, ``3 epochs``: a run's statuses and messages read "1 epochs" otherwise."""
    return f"{count} epoch" if count == 1 else f"{count} epochs"


def format_duration(seconds: float | None) -> str:
    """Seconds as people read them: ``45 s``, ``3 min 20 s``, ``2 h 05 min``; ``–`` for None."""
    if seconds is None or math.isnan(seconds):
        return "–"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def config_summary(config: dict[str, Any]) -> str:
    """A run's training settings on one line, for tables where a whole config.json is too much.

    Settings at their usual values still appear when they decide the result (batch, rate,
    schedule); switches appear only when on, so two runs' lines differ where their configs do.
    """
    parts = [f"batch {config.get('batch_size', '?')}", f"lr {config.get('learning_rate', '?'):g}"]
    schedule = config.get("schedule")
    if schedule:
        parts.append(str(schedule))
    if config.get("augment"):
        parts.append("augment")
    if config.get("class_weights"):
        parts.append("class weights")
    if config.get("label_smoothing"):
        parts.append(f"smoothing {config['label_smoothing']:g}")
    patience = config.get("early_stopping_patience")
    if patience:
        parts.append(f"early stop {patience}")
    if config.get("teacher"):
        teacher = Path(config["teacher"])  # a run's best.keras is known by its run's name
        name = teacher.parent.name if teacher.name == "best.keras" else teacher.name
        parts.append(f"distilled from {name}")
    if config.get("limit_per_class"):
        parts.append(f"{config['limit_per_class']}/class")
    return " · ".join(parts)


LABEL_WORDS = {"fer2013": "FER2013 labels", "ferplus": "FER+ votes", "blend": "blend"}


def labels_summary(run: Run) -> str:
    """Which labels trained the run: the card's record once an epoch ended, else its config."""
    recorded = ((run.card or {}).get("training") or {}).get("labels") or {}
    source = recorded.get("source") or run.config.get("labels", "fer2013")
    words = LABEL_WORDS.get(source, str(source))
    if source == "blend":
        weight = recorded.get("votes_weight", run.config.get("votes_weight"))
        words += f" ({weight:.0%} votes)" if isinstance(weight, int | float) else ""
    return words


def data_summary(config: dict[str, Any]) -> str:
    """The dataset as its last two path parts (``uploads/<hash>/fer2013`` reads ``<hash>/fer2013``)."""
    data = Path(str(config.get("data_dir", "")))
    return "/".join(data.parts[-2:]) if data.parts else ""


def run_table_row(run: Run) -> dict[str, Any]:
    """One run as a row of the Training page's table of runs (plain values, no widgets).

    Best validation accuracy is text ("–" before the first epoch): a number column showed the
    raw ``None`` of a run without one.
    """
    accuracy = run.best_val_accuracy
    return {
        "run": run.name,
        "status": run.state,
        "architecture": run.config.get("arch", "?"),
        "labels": labels_summary(run),
        "epochs": f"{run.epochs_run} / {run.epochs_planned}",
        "best val. accuracy": "–" if accuracy is None else f"{accuracy:.1%}",
        "duration": format_duration(run.duration_s) if run.history else "–",
        "data": data_summary(run.config),
        "settings": config_summary(run.config),  # last: the longest, so it is the one cut off
    }
