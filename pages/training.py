"""Training page: train a model on FER2013, watch it learn, stop or resume it, choose the app's model.

The training itself runs in a worker thread of the server (:mod:`training.jobs`), never in this
script, so clicks, reruns, page switches and reloads leave it alone: the job lives in the server's
job registry and this page finds it there again. A fragment polls it every second for the
progress bar, elapsed time and ETA, and redraws the loss and accuracy curves from the run's
``history.csv``, which the trainer rewrites after every epoch. Uploaded datasets are unpacked
safely (:mod:`training.archive`) into the runs folder, not the repository.

This script only lays out widgets: checks and work live in training.jobs, training.archive and
app.runs, which the tests drive directly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app.access import AccessError
from app.emotions import DEFAULT_MODEL_PATH
from app.runs import (
    Run,
    active_model_path,
    default_runs_dir,
    format_duration,
    list_runs,
    read_history,
    run_table_row,
    set_active_model,
)
from model.architectures import ARCHITECTURES
from pages.shared import access, owner_unlocked
from training.archive import stored_upload
from training.config import SCHEDULES, TrainConfig
from training.jobs import JobBusy, TrainingJob, manager

FER2013_ENV = "FER2013_DIR"
#: Seconds between two looks at a running job.
REFRESH_S = 1.0
FOLDER = "Folder on the server"
CSV_PATH = "fer2013.csv on the server"
ZIP_UPLOAD = "Upload a .zip"
CSV_UPLOAD = "Upload fer2013.csv"
SOURCES = (FOLDER, CSV_PATH, ZIP_UPLOAD, CSV_UPLOAD)
BATCH_SIZES = (16, 32, 64, 128, 256, 512)
SCHEDULE_HELP = {
    "constant": "the same rate throughout",
    "plateau": "halve the rate after 3 epochs without a better validation loss",
    "cosine": "decay smoothly to zero over the planned epochs",
}
STATE_WORDS = {
    "starting": "starting",
    "loading": "loading the dataset",
    "training": "training",
    "validating": "validating",
    "stopping": "stopping after this batch",
    "finished": "finished",
    "stopped": "stopped",
    "failed": "failed",
}
NEW_NAME = "train_new_name"
#: Errors that mean "this cannot start as asked"; anything else is a bug and shows as one.
START_ERRORS = (ValueError, FileExistsError, JobBusy, AccessError, OSError)


# --- dataset and settings --------------------------------------------------------------------------


def dataset_source_ui(runs_dir: Path) -> Callable[[], Path] | None:
    """The dataset picker; returns how to get the dataset's path once Start is pressed.

    Paths are resolved, and uploads stored, only on Start: typing or uploading costs nothing,
    and every problem is reported in one place.
    """
    rules = access()
    source = st.radio("Dataset", SOURCES, horizontal=True, key="train_source")
    if source in (FOLDER, CSV_PATH):
        folder = source == FOLDER
        label = (
            "Folder in the Kaggle layout (train/<class>/, test/<class>/)" if folder else "Path of fer2013.csv"
        )
        default = os.environ.get(FER2013_ENV, "") if folder else ""
        typed = st.text_input(label, value=default, key="train_folder" if folder else "train_csv").strip()
        if not typed:
            st.info("Type the path of the dataset on the server.")
            return None
        return lambda: rules.resolve(typed)
    kind = "zip" if source == ZIP_UPLOAD else "csv"
    upload = st.file_uploader(
        "Zip of a folder in the Kaggle layout (or holding fer2013.csv)"
        if kind == "zip"
        else "Kaggle's fer2013.csv",
        type=[kind],
        key=f"train_{kind}_upload",
        help="Kept in the runs folder (named by its content), so its runs can be resumed later.",
    )
    if upload is None:
        return None
    return lambda: stored_upload(upload.name, upload.getvalue(), runs_dir)


def suggested_run_name() -> str:
    """A fresh default name (architecture and time), so pressing Start twice never collides."""
    return f"{st.session_state.get('train_arch', 'classic')}-{datetime.now():%Y%m%d-%H%M%S}"


def new_training_ui(runs_dir: Path) -> None:
    """Dataset, architecture and hyper-parameters, and the Start button."""
    st.subheader("New training")
    data = dataset_source_ui(runs_dir)
    defaults = TrainConfig(data_dir=Path(), run_name="defaults")
    left, middle, right = st.columns(3)
    arch = left.selectbox(
        "Architecture",
        list(ARCHITECTURES),
        key="train_arch",
        format_func=lambda name: f"{name}: {(ARCHITECTURES[name].__doc__ or '').splitlines()[0]}",
    )
    epochs = middle.number_input("Epochs", 1, 1000, defaults.epochs, key="train_epochs")
    batch_size = right.selectbox(
        "Batch size", BATCH_SIZES, index=BATCH_SIZES.index(defaults.batch_size), key="train_batch"
    )
    learning_rate = left.number_input(
        "Learning rate", 1e-6, 1.0, defaults.learning_rate, step=1e-4, format="%.5f", key="train_lr"
    )
    schedule = middle.selectbox(
        "Learning-rate schedule",
        SCHEDULES,
        index=SCHEDULES.index(defaults.schedule),
        key="train_schedule",
        format_func=lambda name: f"{name}: {SCHEDULE_HELP.get(name, '')}",
    )
    patience = right.number_input(
        "Early stopping patience (epochs; 0 = off)",
        0,
        1000,
        defaults.early_stopping_patience,
        key="train_patience",
        help="Stop when validation accuracy has not improved for this many epochs.",
    )
    augment = left.toggle(
        "Augmentation", defaults.augment, key="train_augment", help="Random flips, shifts, zooms, rotations."
    )
    class_weights = middle.toggle(
        "Class weights",
        defaults.class_weights,
        key="train_class_weights",
        help="Weigh classes by inverse frequency (FER2013 has 16× more happy than disgust faces).",
    )
    smoothing = right.slider(
        "Label smoothing", 0.0, 0.3, defaults.label_smoothing, 0.05, key="train_smoothing"
    )
    with st.expander("Quick trial and reproducibility"):
        limit = st.number_input(
            "Images per class (0 = all)",
            0,
            100_000,
            0,
            key="train_limit",
            help="Train and validate on the first N images of each class only: a run in seconds.",
        )
        seed = st.number_input("Random seed", 0, 2**31 - 1, defaults.seed, key="train_seed")
    if st.session_state.pop(NEW_NAME, False) or "train_run_name" not in st.session_state:
        st.session_state.train_run_name = suggested_run_name()
    run_name = st.text_input("Run name", key="train_run_name", help="The run's folder in the runs folder.")
    if not st.button("▶ Start training", type="primary", key="train_start"):
        return
    if data is None:
        st.error("Choose a dataset first.")
        return
    try:
        with st.spinner("Checking the dataset…"):
            config = TrainConfig(
                data_dir=data(),
                run_name=run_name.strip(),
                arch=arch,
                epochs=int(epochs),
                batch_size=int(batch_size),
                learning_rate=float(learning_rate),
                augment=augment,
                class_weights=class_weights,
                label_smoothing=float(smoothing),
                schedule=schedule,
                early_stopping_patience=int(patience),
                seed=int(seed),
                runs_dir=runs_dir,
                limit_per_class=int(limit) or None,
            )
            manager().start(config)
    except START_ERRORS as err:
        st.error(f"Can't start: {err}")
        return
    st.session_state[NEW_NAME] = True
    st.rerun()


# --- the running (or last) job -----------------------------------------------------------------


def curves(history: Sequence[dict[str, float]], key: str) -> None:
    """Loss and accuracy per epoch, training next to validation, side by side."""
    rows = [
        {"epoch": int(row["epoch"]), "metric": metric, "set": label, "value": row[column]}
        for row in history
        for metric in ("loss", "accuracy")
        for label, column in (("train", metric), ("validation", f"val_{metric}"))
    ]
    data = pd.DataFrame(rows)
    for column, metric in zip(st.columns(2), ("loss", "accuracy"), strict=True):
        chart = (
            alt.Chart(data[data["metric"] == metric], title=metric.capitalize())
            .mark_line(point=True)
            .encode(
                x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1, format="d")),
                y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
                color=alt.Color("set:N", title=None, scale=alt.Scale(range=["#94a3b8", "#f59e0b"])),
                tooltip=["epoch:Q", "set:N", alt.Tooltip("value:Q", format=".4f")],
            )
            .properties(height=260)
        )
        column.altair_chart(chart, width="stretch", key=f"{key}_{metric}")


def job_panel(job: TrainingJob) -> None:
    """Where the job stands: progress in the epoch, times, the curves so far, and Stop."""
    title, button = st.columns([5, 1], vertical_alignment="center")
    with button:
        if job.alive and st.button("⏹ Stop", key=f"stop_{job.id}", help="Ends within one batch."):
            job.stop()
    progress = job.progress()
    title.subheader(f"Run `{progress.run_name}`: {STATE_WORDS.get(progress.state, progress.state)}")
    history = read_history(progress.run_dir / "history.csv")
    if progress.active:
        if progress.epoch:
            text = f"Epoch {progress.epoch} of {progress.epochs}: "
            text += f"batch {progress.batch} of {progress.batches}"
            if progress.state == "validating":
                text += ", validating"
            st.progress(progress.epoch_fraction, text=text)
        else:
            st.progress(0.0, text="Loading the dataset and building the model…")
        elapsed, eta, done, best = st.columns(4)
        elapsed.metric("Elapsed", format_duration(progress.elapsed_s()))
        eta.metric(
            "Time left", format_duration(progress.eta_s()), help="At most: early stopping may end it sooner."
        )
        done.metric("Epochs done", f"{len(history)} / {progress.epochs}")
        best_accuracy = max((row["val_accuracy"] for row in history), default=None)
        best.metric("Best val. accuracy", "–" if best_accuracy is None else f"{best_accuracy:.1%}")
    elif progress.state == "finished":
        st.success(f"Finished ({progress.message}) in {format_duration(progress.elapsed_s())}.")
    elif progress.state == "stopped":
        st.warning(f"Stopped: {progress.message}. Resume it from the table of runs below.")
    else:
        st.error(f"The training failed: {progress.message}")
    if history:
        curves(history, key=f"job_{job.id}")
    elif progress.active:
        st.caption("The loss and accuracy charts appear when the first epoch ends.")


@st.fragment(run_every=REFRESH_S)
def live_job_panel() -> None:
    """The job panel, redrawn every REFRESH_S seconds while the job runs."""
    job = manager().current()
    if job is None:
        return
    job_panel(job)
    if not job.alive:
        st.rerun()  # the whole page once: the table of runs changes, and polling stops


# --- past runs ---------------------------------------------------------------------------------------


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the active-model setting stores resolved paths."""
    return a.resolve() == b.resolve()


def active_model_ui(runs_dir: Path) -> Path:
    """Which model the Photo and Live pages use, with the way back to the shipped one."""
    active = active_model_path(runs_dir)
    if same_file(active, DEFAULT_MODEL_PATH):
        st.caption("The Photo and Live pages use the **shipped model**.")
        return active
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.caption(f"The Photo and Live pages use the best model of run **{active.parent.name}**.")
    if right.button("Use the shipped model", key="use_shipped"):
        set_active_model(None, runs_dir)
        st.rerun()
    return active


def run_actions(run: Run, active: Path) -> None:
    """Resume, use as the app's model, download: for the run picked in the table."""
    resume_col, use_col, download_col = st.columns(3)
    with resume_col:
        if run.state == "running":
            st.caption("This run is training right now.")
        elif (run.path / "last.keras").is_file():
            more = run.epochs_run >= run.epochs_planned
            epochs = st.number_input(
                "Epochs in all",
                run.epochs_run + 1,
                10_000,
                run.epochs_run + 10 if more else run.epochs_planned,
                key=f"resume_epochs_{run.name}",
            )
            label = "▶ Train on" if more else "▶ Resume"
            if st.button(label, key=f"resume_{run.name}", help="From the last finished epoch."):
                try:
                    manager().resume(run.path, int(epochs))
                except START_ERRORS as err:
                    st.error(f"Can't resume: {err}")
                else:
                    st.rerun()
        else:
            st.caption("No finished epoch to resume from.")
    best = run.best_model
    if best is None:
        return
    with use_col:
        if same_file(best, active):
            st.success("This run's model is the active one.")
        elif st.button("Use this model", key=f"use_{run.name}", help="In the Photo and Live pages."):
            set_active_model(best, run.path.parent)
            st.rerun()
    downloads = (
        ("best.keras", best, "application/octet-stream", "download"),
        ("its model card", best.with_suffix(".json"), "application/json", "download_card"),
    )
    with download_col:
        for label, path, mime, key in downloads:
            if path.is_file():  # data is read only when clicked: a model is megabytes
                st.download_button(
                    f"⬇️ Download {label}",
                    data=path.read_bytes,
                    file_name=f"{run.name}{path.suffix}",
                    mime=mime,
                    key=f"{key}_{run.name}",
                    on_click="ignore",
                )


def runs_ui(runs_dir: Path) -> None:
    """Every run in the runs folder, newest first, and what can be done with one."""
    st.subheader("Runs")
    active = active_model_ui(runs_dir)
    runs = list_runs(runs_dir)
    if not runs:
        st.info(f"No runs in `{runs_dir}` yet.")
        return
    table = pd.DataFrame([run_table_row(run) for run in runs])
    st.dataframe(
        table,
        hide_index=True,
        column_config={"best val. accuracy": st.column_config.NumberColumn(format="percent")},
    )
    names = [run.name for run in runs]
    picked = st.selectbox("Run", names, key="runs_pick")
    run = runs[names.index(picked)]
    if run.message:
        st.caption(f"Status: {run.state}: {run.message}")
    run_actions(run, active)
    if run.history:
        curves(run.history, key=f"run_{run.name}")


# --- the page ---------------------------------------------------------------------------------------

st.title("🏋️ Training")
st.caption(
    "Train an emotion model on FER2013 and watch it learn. The training runs on the server: leave "
    "or reload this page and it goes on. One training at a time."
)
if not owner_unlocked("Training"):
    st.stop()
runs_dir = default_runs_dir()
job = manager().current()
if job is not None:
    if job.alive:
        live_job_panel()
    else:
        job_panel(job)
    st.divider()
new_training_ui(runs_dir)
st.divider()
runs_ui(runs_dir)
