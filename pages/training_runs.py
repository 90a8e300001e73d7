"""The Training page's table of runs and what can be done with one: resume, use, download, delete.

Kept apart from pages/training.py so each script stays a thin layout of widgets; what it says
comes from training.job_view and app.model_summary, what it does from app.runs and training.jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.access import AccessError
from app.emotions import DEFAULT_MODEL_PATH
from app.model_summary import quality_warning
from app.runs import (
    Run,
    RunBusy,
    active_model_path,
    delete_run,
    epoch_count,
    list_runs,
    set_active_model,
)
from training.curves import curve_charts
from training.job_view import bar_text, heading, letting_go, run_status, table_rows
from training.jobs import JobBusy, Progress, TrainingJob, manager

#: Seconds between two looks at a running job.
REFRESH_S = 1.0
PICK_KEY = "runs_pick"
#: The Delete… popover's open state, and what the last delete did (shown once).
DELETE_MENU_KEY, DELETE_OUTCOME = "runs_delete_menu", "runs_delete_outcome"
#: The (job id, active) the run picker last followed: it follows each change once, then the user.
PICKED_FOR = "runs_picked_for"
#: Scrolls the keyed container KEY into view once drawn (Streamlit has no call for it).
REVEAL_JS = """<script>
setTimeout(() => document.querySelector(".st-key-KEY")?.scrollIntoView({block: "nearest"}), 300);
</script>"""
#: Errors that mean "this cannot start as asked"; anything else is a bug and shows as one.
START_ERRORS = (ValueError, FileExistsError, JobBusy, AccessError, OSError)


def curves(history: Sequence[dict[str, float]], key: str) -> None:
    """Loss and accuracy per epoch, training next to validation, side by side."""
    for column, chart, metric in zip(st.columns(2), curve_charts(history), ("loss", "accuracy"), strict=True):
        column.altair_chart(chart, width="stretch", key=f"{key}_{metric}")


@st.fragment(run_every=REFRESH_S)
def live_run_progress(run_name: str, label: str = "Status") -> None:
    """The job's progress where its training was started, under ``label``: a resume started under
    the table of runs, or a new run started at the bottom of the form, showed its progress only
    at the top of the page, out of view."""
    job = manager().current()
    progress = job.progress() if job is not None else None
    if progress is None or progress.run_name != run_name or not progress.active:
        st.rerun()
        return
    st.progress(progress.run_fraction, text=bar_text(progress))
    st.caption(f"{label}: {heading(progress).split(': ', 1)[1]} now; its curves are in the panel at the top.")


def live_job(job: TrainingJob, where: str, label: str = "Status", reveal: bool = False) -> None:
    """Stop and the progress of ``job``'s run, drawn where the user started it (see live_run_progress).

    ``reveal`` scrolls the page just enough to show them: drawn where Start was, they fell below
    the window when the button was at its bottom edge (the browser keeps what is above in place).
    """
    key = f"live_{where}{job.id}"
    with st.container(key=key):
        stop_button(job, where)
        live_run_progress(job.progress().run_name, label)
    if reveal:
        st.html(REVEAL_JS.replace("KEY", key), unsafe_allow_javascript=True)


def runs_table(rows: Sequence[dict[str, Any]]) -> None:
    """The table of runs, rows from :func:`training.job_view.table_rows`."""
    # The fullest row's columns: a new run's row holds only what its job knows until its folder does.
    columns = list(max(rows, key=len, default={}))
    st.dataframe(
        pd.DataFrame(rows, columns=columns).fillna("–"),
        hide_index=True,
        column_config={"data": st.column_config.TextColumn(width="large")},
    )


@st.fragment(run_every=REFRESH_S)
def live_runs_table(runs: Sequence[Run]) -> None:
    """The table while a job trains, redrawn every REFRESH_S seconds, so its run's row follows the
    job (a page run is only at the job's start and end), a new run's epochs included."""
    runs_table(table_rows(runs, manager().current()))


def stop_button(job: TrainingJob, where: str) -> None:
    """Stop, outside the polling fragment (its click reruns the page at once), with the job named
    by id so a newer job is never the one stopped; on_click runs before the script, so a rerun
    can't drop the click."""
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.caption(
        "Stop keeps every epoch whose training finished (one that is validating is kept, its score "
        "measured when you resume); resume it later."
    )
    right.button(
        "Stop",
        icon=":material/stop:",
        key=f"stop_{where}{job.id}",
        on_click=manager().stop,
        args=(job.id,),
        help="Takes effect at once; TensorFlow finishes the step under way in the background.",
        width="stretch",
    )


def active_model_ui(runs_dir: Path) -> Path:
    """Which model the Photo and Live pages use, with the way back to the shipped one."""
    active = active_model_path(runs_dir)
    if active.resolve() == DEFAULT_MODEL_PATH.resolve():
        st.caption("The Photo and Live pages use the **shipped model**.")
        return active
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.caption(f"The Photo and Live pages use the best model of run **{active.parent.name}**.")
    if right.button("Use the shipped model", key="use_shipped"):
        set_active_model(None, runs_dir)
        st.rerun()
    return active


def resume_ui(run: Run, progress: Progress | None) -> None:
    """Resume or train on from the last finished epoch, when that can work."""
    if progress is not None and progress.active and progress.run_name == run.name:
        return  # live_run_progress says what it is doing
    if letting_go(run, progress):
        return  # its status line says Resume comes once its training has let go
    if run.state == "running":
        st.caption("Another process is training this run now.")
        return
    if not (run.path / "last.keras").is_file():
        st.caption("No finished epoch to resume from.")
        return
    more = run.epochs_run >= run.epochs_planned
    epochs = st.number_input(
        "Epochs in all",
        run.epochs_run + 1,
        10_000,
        run.epochs_run + 10 if more else run.epochs_planned,
        key=f"resume_epochs_{run.name}",
    )
    label = "Train on" if more else "Resume"
    if st.button(
        label, key=f"resume_{run.name}", icon=":material/play_arrow:", help="From the last finished epoch."
    ):
        try:
            manager().resume(run.path, int(epochs))
        except START_ERRORS as err:
            st.error(f"Can't resume: {err}")
        else:
            st.rerun()


def use_ui(run: Run, best: Path, active: Path, training: bool) -> None:
    """Make the run's model the pages' one, warning first when it is weak; not while it trains."""
    if best.resolve() == active.resolve():
        st.success("This run's model is the active one.")
        warning = quality_warning(run.best_val_accuracy, run.config.get("labels", "fer2013"))
        if warning:
            st.warning(warning)
        return
    if training:
        st.caption(
            "Its model can be used in Photo and Live once it no longer trains: its best epoch, and "
            "so the model, may still change."
        )
        return
    warning = quality_warning(run.best_val_accuracy, run.config.get("labels", "fer2013"))
    if warning:
        st.warning(warning)
    if st.button(
        "Use it anyway" if warning else "Use this model", key=f"use_{run.name}", help="In Photo and Live."
    ):
        set_active_model(best, run.path.parent)
        st.rerun()


def delete_ui(run: Run, active: Path, busy: bool, names: Sequence[str]) -> None:
    """Delete the run after a confirmation that says what goes (and the active model with it).

    The popover's open state is tracked (``on_change="rerun"``) so the delete can close it: left
    open, it read "Delete run **a**…" after **e** went, one click from deleting a run never picked.
    """
    if busy:
        st.caption("A run can be deleted once it no longer trains.")
        return
    with st.popover("Delete…", icon=":material/delete:", key=DELETE_MENU_KEY, on_change="rerun"):
        is_active = run.best_model is not None and run.best_model.resolve() == active.resolve()
        files = f"its files ({epoch_count(run.epochs_run)})"
        text = f"Delete run **{run.name}** and {files}? This can't be undone."
        if is_active:
            text += " Its model is the active one: the Photo and Live pages go back to the shipped model."
        st.markdown(text)
        st.button(
            f"Delete {run.name}",
            key=f"delete_{run.name}",
            type="primary",
            on_click=delete_picked,
            args=(run, names),
        )


def delete_picked(run: Run, names: Sequence[str]) -> None:
    """The Delete button's callback, run before the script so it may set the widgets' state: the
    picker moves to the run now in the deleted one's place (a popped pick left the box reading the
    deleted name over another run's details), the popover closes, and the outcome (a refusal
    too) waits for :func:`delete_outcome_ui`."""
    st.session_state[DELETE_MENU_KEY] = False
    try:
        delete_run(run.path, run.path.parent)
    except (RunBusy, ValueError, OSError) as err:
        st.session_state[DELETE_OUTCOME] = ("error", f"Can't delete run **{run.name}**: {err}")
        return
    st.session_state[DELETE_OUTCOME] = ("success", f"Run **{run.name}** deleted.")
    left = [name for name in names if name != run.name]
    if left:
        st.session_state[PICK_KEY] = left[min(list(names).index(run.name), len(left) - 1)]
    else:
        st.session_state.pop(PICK_KEY, None)


def delete_outcome_ui() -> None:
    """What the last Delete did, said once, above the table of runs."""
    outcome = st.session_state.pop(DELETE_OUTCOME, None)
    if outcome is not None:
        kind, text = outcome
        getattr(st, kind)(text)


def downloads_ui(run: Run, best: Path) -> None:
    """best.keras and its card; data is read only when clicked (a model is megabytes)."""
    for label, path, mime, key in (
        ("best.keras", best, "application/octet-stream", "download"),
        ("its model card", best.with_suffix(".json"), "application/json", "download_card"),
    ):
        if path.is_file():
            st.download_button(
                f"Download {label}",
                data=path.read_bytes,
                icon=":material/download:",
                file_name=f"{run.name}{path.suffix}",
                mime=mime,
                key=f"{key}_{run.name}",
                on_click="ignore",
            )


def follow_job(names: Sequence[str]) -> None:
    """Pick the current job's run in the table when the job starts and again when it ends."""
    job = manager().current()
    if job is None:
        return
    progress = job.progress()
    mark = (job.id, progress.active)
    if st.session_state.get(PICKED_FOR) != mark and progress.run_name in names:
        st.session_state[PICK_KEY] = progress.run_name
        st.session_state[PICKED_FOR] = mark


def runs_ui(runs_dir: Path, job: TrainingJob | None) -> None:
    """Every run in the runs folder, newest first, and what can be done with one."""
    st.subheader("Runs")
    active = active_model_ui(runs_dir)
    progress = job.progress() if job is not None else None
    runs = list_runs(runs_dir)
    if progress is not None and not progress.active and progress.action == "train" and job.alive:
        # A run stopped before its first epoch: its training removes the folder when it lets go.
        runs = [run for run in runs if run.path.resolve() != progress.run_dir.resolve() or run.history]
    rows = table_rows(runs, job)
    names = [row["run"] for row in rows]  # the job's new run too, before its folder
    delete_outcome_ui()
    if not names:
        st.info(f"No runs in `{runs_dir}` yet.")
        return
    working = progress is not None and progress.active
    if working:
        live_runs_table(runs)
    else:
        runs_table(rows)
    follow_job(names)
    picked = st.selectbox("Run", names, key=PICK_KEY)
    training_it = working and progress.run_name == picked
    if training_it:
        live_job(job, "run_")
    run = next((run for run in runs if run.name == picked), None)
    if run is None:  # the job's new run, whose folder holds nothing to show yet
        return
    if not training_it:
        st.caption(run_status(run, progress))
    resume_col, use_col, more_col = st.columns(3)
    with resume_col:
        resume_ui(run, progress)
    with more_col:
        delete_ui(run, active, busy=training_it or run.state == "running", names=names)
    best = run.best_model
    if best is not None:
        with use_col:
            use_ui(run, best, active, training_it)
        with more_col:
            downloads_ui(run, best)
    if run.history and not training_it:
        curves(run.history, key=f"run_{run.name}")
