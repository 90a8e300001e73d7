"""What the Training page says about a job and a run, as plain text the tests can read.

Every sentence must hold at the moment it is shown: a banner offers Resume only when there is a
checkpoint to resume from, says what a Stop kept (or that nothing was), and tells this job's time
apart from the whole run's after a resume. No Streamlit here; the page only lays the text out.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from app.runs import Run, epoch_count, format_duration, read_run, run_table_row
from training.jobs import Progress, TrainingJob

STATE_WORDS = {
    "starting": "starting",
    "loading": "loading the dataset",
    "distilling": "the teacher labels the training images",
    "revalidating": "measuring the validation a Stop cut short",
    "preparing": "preparing the model",
    "training": "training",
    "validating": "validating",
    "finished": "finished",
    "stopped": "stopped",
    "failed": "failed",
}
#: The bar's text before the first batch: what is happening while nothing seems to move.
WAITING_WORDS = {
    "starting": "Starting…",
    "loading": "Loading the dataset…",
    "distilling": "The teacher labels the training images…",
    "revalidating": "Measuring the last epoch's validation score, which a Stop cut short…",
    "preparing": (
        "Preparing the model: the first batch builds TensorFlow's graph (about 20 s on an idle CPU, "
        "minutes on a busy one)…"
    ),
}


#: The Training page's layouts for the current job: its progress while it works, its banner while
#: its training lets go of the CPU after it ended (no Resume yet), and its banner once it has let go.
WORKING, LETTING_GO, ENDED = "working", "letting go", "ended"


def page_phase(job: TrainingJob | None) -> tuple[int, str] | None:
    """``(job id, layout)`` the Training page needs for ``job`` now; None without a job.

    The page's polling fragment compares this with the layout its page run drew and reruns the
    page when they differ, so the page follows the job whatever a script run missed.
    """
    if job is None:
        return None
    if job.progress().active:
        return job.id, WORKING
    return job.id, LETTING_GO if job.alive else ENDED


def heading(progress: Progress) -> str:
    """``Run `name`: what it is doing``."""
    doing = STATE_WORDS.get(progress.state, progress.state)
    if progress.state == "distilling" and progress.message:
        doing += f" ({progress.message})"
    return f"Run `{progress.run_name}`: {doing}"


def bar_text(progress: Progress) -> str:
    """The progress bar's caption: the phase before the first batch, then epoch and batch."""
    if progress.state in WAITING_WORDS:
        return WAITING_WORDS[progress.state]
    if not progress.epoch:
        return "Starting…"
    text = f"Epoch {progress.epoch} of {progress.epochs}: batch {progress.batch} of {progress.batches}"
    if progress.state == "validating":
        text += ", validating"
    return f"{text} ({progress.run_fraction:.0%} of the run)"


def finished_epochs(progress: Progress, history: Sequence[dict[str, float]]) -> list[dict[str, float]]:
    """The rows of epochs that ended: the epoch being validated has its row already (its training is
    kept as validation begins), but it is not done, and its validation numbers are still to come."""
    validating = progress.epoch if progress.state == "validating" else None
    return [row for row in history if row["epoch"] != validating]


def epochs_done(progress: Progress, history: Sequence[dict[str, float]]) -> int:
    """How many of the run's epochs are done, as the job counts them once its fit began: an epoch's
    row is in ``history`` from the end of its training batches, before its validation has even
    begun (the table said "1 / 2" then); before the fit (and once the job ended), ``history``'s."""
    if progress.active and progress.epoch:
        return progress.epochs_done
    return len(finished_epochs(progress, history))


def best_measured(history: Sequence[dict[str, float]]) -> float | None:
    """The best validation accuracy of ``history``; an epoch whose validation a Stop cut (NaN) has none."""
    return max((row["val_accuracy"] for row in history if not math.isnan(row["val_accuracy"])), default=None)


def this_jobs_epochs(progress: Progress, run: Run | None) -> list[dict[str, float]]:
    """The history rows this job wrote (a resume's earlier epochs are not its own)."""
    if run is None or not progress.first_epoch:
        return []
    return [row for row in run.history if row["epoch"] >= progress.first_epoch]


#: How a job whose run was deleted since ended, in the words of :func:`deleted_banner`.
DELETED_ENDINGS = {"finished": "finished", "stopped": "was stopped", "failed": "failed"}


def run_deleted(progress: Progress, run: Run | None) -> bool:
    """Whether the run ``progress``'s ended job trained has been deleted since: its folder is gone
    though the job had one (a resume's run, or epochs it kept). A new run that a Stop or a failure
    ended before its first epoch never kept a folder, and is not a deleted one."""
    kept = progress.action == "resume" or progress.epochs_done > 0 or progress.state == "finished"
    return run is None and kept


def deleted_banner(progress: Progress) -> tuple[str, str]:
    """``(kind, text)`` for an ended job whose run was deleted since: the job's own words (a finished
    job's "The training failed", a Stop's "resume it") no longer hold once its files are gone."""
    ending = DELETED_ENDINGS.get(progress.state, progress.state)
    if progress.state == "finished" and progress.message:
        ending += f" ({progress.message})"
    return "info", f"The run {ending} and has been deleted since: its files are gone."


def early_stop_note(run: Run) -> str:
    """Why a finished run has fewer epochs than it was given, or "": early stopping ended it, which
    neither the banner nor the status said (a 25-epoch run finished at 11 with no word why)."""
    patience = int(run.config.get("early_stopping_patience") or 0)
    # It can end a run only after `patience` epochs without a better score.
    if run.state != "finished" or not patience or not patience < run.epochs_run < run.epochs_planned:
        return ""
    return (
        f"Early stopping ended it {run.epochs_run} of {run.epochs_planned} epochs in: validation "
        f"accuracy had not improved for {epoch_count(patience)}."
    )


def ended_banner(progress: Progress, run: Run | None) -> tuple[str, str]:
    """``(kind, text)`` for a job that ended, kind ``success``, ``info``, ``warning`` or ``error``."""
    if run_deleted(progress, run):
        return deleted_banner(progress)
    own = this_jobs_epochs(progress, run)
    own_time = format_duration(sum(row["seconds"] for row in own)) if own else "–"
    with_loading = format_duration(progress.elapsed_s())
    resumable = run is not None and (run.path / "last.keras").is_file()
    if progress.state == "finished" and run is not None:
        if progress.action == "resume" and own:
            first, last = int(own[0]["epoch"]), int(own[-1]["epoch"])
            return "success", (
                f"Finished: the run now has {epoch_count(run.epochs_run)} "
                f"({format_duration(run.duration_s)} of training in all). This job trained epochs "
                f"{first}–{last} in {own_time} ({with_loading} with loading the data). "
                f"{early_stop_note(run)}"
            ).strip()
        return "success", (
            f"Finished: {epoch_count(run.epochs_run)} in {own_time} of training "
            f"({with_loading} with loading the data and preparing the model). {early_stop_note(run)}"
        ).strip()
    if progress.state == "stopped":
        if own and resumable:
            last = int(own[-1]["epoch"])
            cut = (
                f" The Stop cut epoch {last}'s validation short, so its score is not measured yet: "
                "resuming measures it first."
                if math.isnan(own[-1]["val_accuracy"])
                else ""
            )
            return "warning", (
                f"Stopped after epoch {last} of {run.epochs_planned}: every epoch whose training "
                f"finished is kept ({own_time} of training in this job).{cut} Resume it from the "
                "table of runs below, where it is picked."
            )
        said = sentence(progress.message)
        if resumable:  # a resume stopped before its first new epoch
            return "warning", f"{said} Resume it again from the table of runs below."
        return "warning", said
    text = f"The training failed: {progress.message}"
    if run is not None and run.history and resumable and run.state != "running":
        text += (
            f" The run keeps its finished epochs ({epoch_count(run.epochs_run)}): resume it from the "
            "table of runs below."
        )
    return "error", text


def sentence(text: str) -> str:
    """``text`` as a sentence: capitalised, with a full stop."""
    text = text.strip().rstrip(".")
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def letting_go(run: Run, progress: Progress | None) -> bool:
    """Whether ``run`` is the one this server's job was training when a Stop ended it at once,
    while its training process still finishes the TensorFlow step under way (training.jobs)."""
    return (
        progress is not None
        and not progress.active
        and progress.run_dir.resolve() == run.path.resolve()
        and run.state == "running"
        and run.status.get("pid") == os.getpid()
    )


def run_status(run: Run, progress: Progress | None) -> str:
    """The picked run's status line; a run the current job trains says so, not its old state."""
    if progress is not None and progress.active and progress.run_dir.resolve() == run.path.resolve():
        doing = STATE_WORDS.get(progress.state, progress.state)
        return f"Status: {doing} now ({bar_text(progress)})."
    if letting_go(run, progress):
        return (
            "Status: stopped; TensorFlow finishes the step under way, which it can't interrupt (seconds, "
            "or minutes if it was preparing the model on a busy machine), then it can be resumed."
        )
    if run.state == "running":
        return "Status: being trained by another process."
    text = f"Status: {run.state}"
    text = f"{text}: {run.message}" if run.message else text
    return f"{text}. {note}" if (note := early_stop_note(run)) else text


def table_state(progress: Progress) -> str:
    """The table's status of the run a job works on: ``training``, with the phase when it is
    another (``training (validating)``), or how the job ended while its work lets go."""
    if not progress.active or progress.state == "training":
        return progress.state
    return f"training ({progress.state})"


def job_row(progress: Progress, run: Run | None) -> dict[str, Any]:
    """The table's row of the run ``progress``'s job works on, as the job is now: its status.json
    still says what it said before the job (``finished`` during a Train on) until the training
    process rewrites it, and a new run has no folder before the process makes one (``run`` None):
    its row holds only what the job knows."""
    row = run_table_row(run) if run is not None else {}
    done = epochs_done(progress, run.history if run is not None else [])
    return row | {
        "run": progress.run_name,
        "status": table_state(progress),
        "epochs": f"{done} / {progress.epochs}",
    }


def table_rows(runs: Sequence[Run], job: TrainingJob | None) -> list[dict[str, Any]]:
    """The table of runs' rows, ``runs``' order; the run the job works on (its folder read now) as
    :func:`job_row` says, added first while it trains a run ``runs`` lacks (no folder yet)."""
    rows = [run_table_row(run) for run in runs]
    if job is None or not job.alive:  # its work has let go: the run's own files tell the truth
        return rows
    progress = job.progress()
    here = progress.run_dir.resolve()
    index = next((i for i, run in enumerate(runs) if run.path.resolve() == here), None)
    if index is None and not progress.active:  # a new run stopped before its first epoch: going
        return rows
    row = job_row(progress, read_run(progress.run_dir))
    if index is None:
        rows.insert(0, row)
    else:
        rows[index] = row
    return rows
