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
from typing import Any

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
    read_run,
    run_table_row,
    set_active_model,
)
from model.catalog import ARCHITECTURE_NOTES
from pages.shared import access, model_choices, owner_unlocked
from training.archive import stored_upload
from training.config import OPTIMIZERS, PRESETS, SCHEDULES, TrainConfig
from training.jobs import JobBusy, Progress, TrainingJob, manager

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
    "cosine": "decay smoothly to zero over the planned epochs (after the warm-up)",
}
OPTIMIZER_HELP = {
    "adam": "Adam, as in the tutorials",
    "adamw": "Adam with decoupled weight decay: regularises without fighting the learning rate",
}
PRESET_KEY = "train_preset"
#: The recipe a new session starts from: the best this project found for the machine it runs on.
DEFAULT_PRESET = "cpu"
DEFAULT_SEED = TrainConfig(data_dir=Path(), run_name="defaults").seed
#: The form's widget keys, by the TrainConfig field each one sets (a preset sets them all).
FIELD_KEYS = {
    "arch": "train_arch",
    "epochs": "train_epochs",
    "batch_size": "train_batch",
    "learning_rate": "train_lr",
    "optimizer": "train_optimizer",
    "schedule": "train_schedule",
    "augment": "train_augment",
    "class_weights": "train_class_weights",
    "label_smoothing": "train_smoothing",
    "weight_decay": "train_weight_decay",
    "warmup_epochs": "train_warmup",
    "early_stopping_patience": "train_patience",
    "random_erasing": "train_erasing",
    "lighting": "train_lighting",
    "mixed_precision": "train_mixed_precision",
}
STATE_WORDS = {
    "starting": "starting",
    "loading": "loading the dataset",
    "distilling": "the teacher labels the training images",
    "training": "training",
    "validating": "validating",
    "stopping": "stopping…",
    "finished": "finished",
    "stopped": "stopped",
    "failed": "failed",
}
NEW_NAME = "train_new_name"
PICK_KEY = "runs_pick"
#: The run name this page last suggested, told apart from one the user typed.
SUGGESTED = "train_suggested_name"
#: The (job id, alive) the run picker last followed: it follows each change once, then the user.
PICKED_FOR = "runs_picked_for"
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
    st.caption("Received by the server: it is checked and stored when you press Start.")
    return lambda: stored_upload(upload.name, upload.getvalue(), runs_dir)


def suggested_run_name() -> str:
    """A fresh default name (architecture and time), so pressing Start twice never collides."""
    return f"{st.session_state.get('train_arch', 'classic')}-{datetime.now():%Y%m%d-%H%M%S}"


def suggest_run_name() -> None:
    """Put a fresh suggested name in the form: at first, after a start, and when the architecture
    changed under a suggestion the user kept (a recipe's ``resnet`` run must not say ``classic``)."""
    name, suggested = st.session_state.get("train_run_name"), st.session_state.get(SUGGESTED)
    arch = st.session_state.get(FIELD_KEYS["arch"], "classic")
    stale = name is not None and name == suggested and not name.startswith(f"{arch}-")
    if st.session_state.pop(NEW_NAME, False) or name is None or stale:
        st.session_state.train_run_name = st.session_state[SUGGESTED] = suggested_run_name()


def preset_fields(name: str) -> dict[str, Any]:
    """Every field of the form as preset ``name`` sets it, TrainConfig's defaults for the rest."""
    config = TrainConfig.from_preset(name, data_dir=Path(), run_name="preset")
    return {name: getattr(config, name) for name in FIELD_KEYS}


def apply_preset() -> None:
    """Fill the form with the chosen preset's values; the user may change any of them afterwards."""
    for name, value in preset_fields(st.session_state[PRESET_KEY]).items():
        st.session_state[FIELD_KEYS[name]] = value


def preset_ui() -> str:
    """The recipe choice and what it does; choosing one fills the form (see apply_preset)."""
    if PRESET_KEY not in st.session_state:  # first look, or back from another page
        st.session_state[PRESET_KEY] = DEFAULT_PRESET
        apply_preset()
    # Streamlit drops a keyed widget's value after a run that did not draw it (no dataset chosen
    # yet, say); the form then came back with its first options (batch 16). Re-storing keeps them.
    for key in FIELD_KEYS.values():
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    name = st.radio(
        "Recipe",
        list(PRESETS),
        key=PRESET_KEY,
        horizontal=True,
        format_func=lambda key: PRESETS[key].title,
        on_change=apply_preset,
    )
    st.caption(f"{PRESETS[name].description} Its settings fill the form below; change any of them.")
    return name


def bullet_help(docs: dict[str, str]) -> str:
    """A widget's help listing every option: option texts stay short enough for the dropdown."""
    return "\n".join(f"- **{name}**: {text}" for name, text in docs.items())


def model_fields_ui() -> None:
    """Architecture, length, batch, optimiser and schedule: the settings most runs change."""
    left, middle, right = st.columns(3)
    left.selectbox(
        "Architecture",
        list(ARCHITECTURE_NOTES),
        key=FIELD_KEYS["arch"],
        help=bullet_help(ARCHITECTURE_NOTES),
    )
    middle.number_input("Epochs", 1, 1000, key=FIELD_KEYS["epochs"])
    right.selectbox("Batch size", BATCH_SIZES, key=FIELD_KEYS["batch_size"])
    left.number_input("Learning rate", 1e-6, 1.0, step=1e-4, format="%.5f", key=FIELD_KEYS["learning_rate"])
    middle.selectbox(
        "Learning-rate schedule", SCHEDULES, key=FIELD_KEYS["schedule"], help=bullet_help(SCHEDULE_HELP)
    )
    right.selectbox("Optimizer", OPTIMIZERS, key=FIELD_KEYS["optimizer"], help=bullet_help(OPTIMIZER_HELP))
    left.toggle("Augmentation", key=FIELD_KEYS["augment"], help="Random flips, shifts, zooms, rotations.")
    middle.toggle(
        "Class weights",
        key=FIELD_KEYS["class_weights"],
        help="Weigh classes by inverse frequency (FER2013 has 16× more happy than disgust faces).",
    )
    right.slider("Label smoothing", 0.0, 0.3, step=0.05, key=FIELD_KEYS["label_smoothing"])


def advanced_fields_ui() -> None:
    """Regularisation, warm-up, stronger augmentation and precision: what the presets tune."""
    with st.expander("Advanced settings"):
        left, middle, right = st.columns(3)
        left.number_input(
            "Weight decay",
            0.0,
            0.99,
            step=0.01,
            format="%.3f",
            key=FIELD_KEYS["weight_decay"],
            help="AdamW's decoupled weight decay (Adam ignores it).",
        )
        middle.number_input(
            "Warm-up epochs",
            0,
            100,
            key=FIELD_KEYS["warmup_epochs"],
            help="Ramp the learning rate up from zero first: keeps a fresh batch-normalised net stable.",
        )
        right.number_input(
            "Early stopping patience (epochs; 0 = off)",
            0,
            1000,
            key=FIELD_KEYS["early_stopping_patience"],
            help="Stop when validation accuracy has not improved for this many epochs.",
        )
        left.slider(
            "Random erasing",
            0.0,
            1.0,
            step=0.05,
            key=FIELD_KEYS["random_erasing"],
            help="Share of training images with a random patch blanked out (needs augmentation).",
        )
        middle.slider(
            "Lighting changes",
            0.0,
            0.5,
            step=0.05,
            key=FIELD_KEYS["lighting"],
            help="Strength of random brightness and contrast changes (needs augmentation).",
        )
        right.toggle(
            "Mixed precision",
            key=FIELD_KEYS["mixed_precision"],
            help="Compute in bfloat16 where the hardware does it fast, in float32 elsewhere.",
        )


NO_TEACHER = "None: learn from the labels alone"


def distillation_ui(runs_dir: Path) -> dict[str, Any]:
    """The teacher to distil from (training.distill) and its share of each target."""
    with st.expander("Distillation"):
        st.caption(
            "Train a small, fast net to imitate a bigger or ensembled model: each training image's "
            "target mixes its label with the teacher's probabilities."
        )
        choices = {NO_TEACHER: None, **model_choices(runs_dir)}
        left, right = st.columns(2)
        label = left.selectbox("Teacher model", list(choices), key="train_teacher")
        weight = right.slider(
            "Teacher's share of the target",
            0.1,
            1.0,
            0.7,
            step=0.1,
            key="train_teacher_weight",
            disabled=choices[label] is None,
            help="The rest comes from the image's label, so a teacher's mistakes can't take over.",
        )
    return {"teacher": choices[label], "teacher_weight": float(weight)}


def quick_trial_ui() -> tuple[int, int]:
    """Images per class (0 = all) and the random seed."""
    with st.expander("Quick trial and reproducibility"):
        limit = st.number_input(
            "Images per class (0 = all)",
            0,
            100_000,
            0,
            key="train_limit",
            help="Train and validate on the first N images of each class only: a run in seconds.",
        )
        seed = st.number_input("Random seed", 0, 2**31 - 1, DEFAULT_SEED, key="train_seed")
    return int(limit), int(seed)


def form_values() -> dict[str, Any]:
    """The form's TrainConfig fields, typed as TrainConfig wants them."""
    values = {name: st.session_state[key] for name, key in FIELD_KEYS.items()}
    for name in ("epochs", "batch_size", "warmup_epochs", "early_stopping_patience"):
        values[name] = int(values[name])
    for name in ("learning_rate", "weight_decay", "random_erasing", "lighting", "label_smoothing"):
        values[name] = float(values[name])
    return values


def new_training_ui(runs_dir: Path) -> None:
    """Dataset, recipe and settings, and the Start button."""
    st.subheader("New training")
    data = dataset_source_ui(runs_dir)
    preset = preset_ui()
    model_fields_ui()
    advanced_fields_ui()
    distillation = distillation_ui(runs_dir)
    limit, seed = quick_trial_ui()
    suggest_run_name()
    run_name = st.text_input("Run name", key="train_run_name", help="The run's folder in the runs folder.")
    if not st.button("Start training", type="primary", key="train_start", icon=":material/play_arrow:"):
        return
    if data is None:
        st.error("Choose a dataset first.")
        return
    try:
        with st.spinner("Checking the dataset…"):
            config = TrainConfig.from_preset(
                preset,
                data_dir=data(),
                run_name=run_name.strip(),
                seed=seed,
                runs_dir=runs_dir,
                limit_per_class=limit or None,
                **form_values(),
                **distillation,
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


def progress_bar(progress: Progress) -> None:
    """Where the run stands: a bar over all planned epochs (it never goes back), the batch in words."""
    if not progress.epoch:
        st.progress(0.0, text="Loading the dataset and building the model…")
        return
    text = f"Epoch {progress.epoch} of {progress.epochs}: batch {progress.batch} of {progress.batches}"
    if progress.state == "validating":
        text += ", validating"
    st.progress(progress.run_fraction, text=f"{text} ({progress.run_fraction:.0%} of the run)")


def running_panel(progress: Progress, history: Sequence[dict[str, float]]) -> None:
    """Progress bar, times and the best score so far of a job at work."""
    progress_bar(progress)
    elapsed, eta, done, best = st.columns(4)
    elapsed.metric("Elapsed", format_duration(progress.elapsed_s()))
    eta.metric(
        "Time left", format_duration(progress.eta_s()), help="At most: early stopping may end it sooner."
    )
    done.metric("Epochs done", f"{len(history)} / {progress.epochs}")
    best_accuracy = max((row["val_accuracy"] for row in history), default=None)
    best.metric("Best val. accuracy", "–" if best_accuracy is None else f"{best_accuracy:.1%}")


def ended_banner(progress: Progress) -> None:
    """How the job ended; times as the table of runs counts them (its epochs), so the two agree."""
    run = read_run(progress.run_dir)
    trained = format_duration(run.duration_s) if run is not None and run.history else "–"
    with_loading = f"this job took {format_duration(progress.elapsed_s())} with loading the data"
    if progress.state == "finished":
        st.success(f"Finished ({progress.message}) in {trained} of training ({with_loading}).")
    elif progress.state == "stopped":
        st.warning(
            f"Stopped: {progress.message} ({trained} of training). "
            "Resume it from the table of runs below, where it is picked."
        )
    else:
        st.error(f"The training failed: {progress.message}")


def job_panel(job: TrainingJob) -> None:
    """Where the job stands: progress in the run, times and the curves so far; or how it ended.

    An ended job's curves are not drawn here: the table of runs below picks its run and shows
    them, and the same charts twice on one page only confused.
    """
    progress = job.progress()
    doing = STATE_WORDS.get(progress.state, progress.state)
    if progress.state == "distilling":
        doing += f" ({progress.message})"
    st.subheader(f"Run `{progress.run_name}`: {doing}")
    if not progress.active:
        ended_banner(progress)
        return
    history = read_history(progress.run_dir / "history.csv")
    running_panel(progress, history)
    if history:
        curves(history, key=f"job_{job.id}")
    else:
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


def stop_clicked(job_id: int) -> None:
    """Stop's on_click: Streamlit runs it before the script, so nothing in the script can lose it.

    A click used to be read from the button's return value inside the polling fragment: a run
    interrupted before it reached the button dropped the click, and the job trained on.
    """
    manager().stop(job_id)


def stop_button(job: TrainingJob) -> None:
    """Stop, outside the polling fragment: its click reruns the page at once instead of queueing
    behind a fragment run, and the job is named by id so a newer job is never the one stopped."""
    stopping = job.progress().state == "stopping"
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.caption("Stop ends the run within one batch and keeps every finished epoch; resume it later.")
    right.button(
        "Stop",
        icon=":material/stop:",
        key=f"stop_{job.id}",
        on_click=stop_clicked,
        args=(job.id,),
        disabled=stopping,
        help="Ends within one batch.",
        width="stretch",
    )


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
            label = "Train on" if more else "Resume"
            resume = st.button(
                label,
                key=f"resume_{run.name}",
                icon=":material/play_arrow:",
                help="From the last finished epoch.",
            )
            if resume:
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
                    f"Download {label}",
                    data=path.read_bytes,
                    icon=":material/download:",
                    file_name=f"{run.name}{path.suffix}",
                    mime=mime,
                    key=f"{key}_{run.name}",
                    on_click="ignore",
                )


def follow_job(names: Sequence[str]) -> None:
    """Pick the current job's run in the table when the job starts and again when it ends.

    Otherwise the picker kept whatever this session picked before, and a stopped run's banner
    said "resume it from the table" while the table showed another run.
    """
    job = manager().current()
    if job is None:
        return
    name, mark = job.progress().run_name, (job.id, job.alive)
    if st.session_state.get(PICKED_FOR) != mark and name in names:
        st.session_state[PICK_KEY] = name
        st.session_state[PICKED_FOR] = mark


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
    follow_job(names)
    picked = st.selectbox("Run", names, key=PICK_KEY)
    run = runs[names.index(picked)]
    if run.message:
        st.caption(f"Status: {run.state}: {run.message}")
    run_actions(run, active)
    running = manager().running()
    if running is not None and running.progress().run_name == run.name:
        st.caption("Its loss and accuracy curves are in the panel above while it trains.")
    elif run.history:
        curves(run.history, key=f"run_{run.name}")


# --- the page ---------------------------------------------------------------------------------------

st.title("Training")
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
        stop_button(job)
        live_job_panel()
    else:
        job_panel(job)
    st.divider()
new_training_ui(runs_dir)
st.divider()
runs_ui(runs_dir)
