"""Training page: train a model on FER2013, watch it learn, stop or resume it, choose the app's model.

The training itself runs in a child process of the server (:mod:`training.jobs`), never in this
script, so clicks, reruns, page switches and reloads leave it alone: the job lives in the server's
job registry and this page finds it there again. A fragment polls it every second for the
progress bar, elapsed time and ETA, and redraws the loss and accuracy curves from the run's
``history.csv``, which the trainer rewrites after every epoch. Uploaded datasets are unpacked
safely (:mod:`training.archive`) into the runs folder, not the repository.

This script only lays out widgets: the form is data (training.form), what the page says about a
job or a run is text from training.job_view and app.model_summary, and the work lives in
training.jobs, training.archive and app.runs, which the tests drive directly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import streamlit as st

from app.access import AccessError
from app.runs import (
    default_runs_dir,
    format_duration,
    read_history,
    read_run,
)
from pages.shared import access, model_choices, owner_unlocked
from pages.training_runs import REFRESH_S, START_ERRORS, curves, live_job, runs_ui, stop_button
from training.archive import stored_upload
from training.config import LABEL_WORDS, PRESETS, VALIDATION_SPLITS, TrainConfig
from training.form import (
    ADVANCED_FIELDS,
    DEFAULT_SEED,
    FIELD_KEYS,
    MAIN_FIELDS,
    Field,
    form_values,
    in_form_words,
    preset_fields,
)
from training.job_view import (
    ENDED,
    WORKING,
    bar_text,
    best_measured,
    ended_banner,
    epochs_done,
    finished_epochs,
    heading,
    page_phase,
)
from training.jobs import Progress, TrainingJob, manager
from training.validation import describe_validation
from training.votes import LABEL_SOURCES

FER2013_ENV = "FER2013_DIR"
FOLDER = "Folder on the server"
CSV_PATH = "fer2013.csv on the server"
ZIP_UPLOAD = "Upload a .zip"
CSV_UPLOAD = "Upload fer2013.csv"
SOURCES = (FOLDER, CSV_PATH, ZIP_UPLOAD, CSV_UPLOAD)
PRESET_KEY = "train_preset"
#: The recipe a new session starts from: the best this project found for the machine it runs on.
DEFAULT_PRESET = "cpu"
NEW_NAME = "train_new_name"
#: The run name this page last suggested, told apart from one the user typed.
SUGGESTED = "train_suggested_name"
#: The id of the job this session's Start began: its progress and Stop are drawn by the button.
STARTED = "train_started_job"
#: Set by Start for the page run after it: that one scrolls the job's progress and Stop into view.
REVEAL = "train_reveal_started"
LABEL_NAMES = {"fer2013": "FER2013 labels", "ferplus": "FER+ votes", "blend": "A blend"}
VALIDATION_NAMES = {"public_test": "PublicTest", "test": "The whole test folder (PrivateTest included)"}
NO_TEACHER = "None: learn from the labels alone"


# --- dataset and settings --------------------------------------------------------------------------


def dataset_source_ui(runs_dir: Path) -> tuple[Callable[[], Path] | None, Path | None]:
    """The dataset picker: how to get the dataset's path once Start is pressed, and a typed folder.

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
            return None, None
        try:
            seen = rules.resolve(typed) if folder else None
        except AccessError:
            seen = None  # said on Start, with the other problems
        return (lambda: rules.resolve(typed)), seen
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
        return None, None
    st.caption("Received by the server: it is checked and stored when you press Start.")
    return (lambda: stored_upload(upload.name, upload.getvalue(), runs_dir)), None


def suggest_run_name() -> None:
    """Put a fresh suggested name (architecture and time) in the form: at first, after a start, and
    when the architecture changed under a suggestion the user kept."""
    name, suggested = st.session_state.get("train_run_name"), st.session_state.get(SUGGESTED)
    arch = st.session_state.get(FIELD_KEYS["arch"], "classic")
    stale = name is not None and name == suggested and not name.startswith(f"{arch}-")
    if st.session_state.pop(NEW_NAME, False) or name is None or stale:
        fresh = f"{arch}-{datetime.now():%Y%m%d-%H%M%S}"
        st.session_state.train_run_name = st.session_state[SUGGESTED] = fresh


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


def fields_ui(fields: Sequence[Field]) -> None:
    """The fields' widgets, three to a row, each keyed by the TrainConfig field it sets."""
    columns = st.columns(3)
    for index, spec in enumerate(fields):
        widget = getattr(columns[index % 3], spec.widget)
        widget(spec.label, *spec.args, key=spec.key, help=spec.help, **spec.options)


def labels_ui() -> dict[str, Any]:
    """What the run learns from: FER2013's labels, the FER+ annotators' votes, or a blend."""
    left, right = st.columns([2, 1])
    labels = left.radio(
        "Labels", LABEL_SOURCES, key="train_labels", horizontal=True, format_func=LABEL_NAMES.__getitem__
    )
    weight = right.slider(
        "Votes' share of each target",
        0.1,
        0.9,
        0.5,
        step=0.1,
        key="train_votes_weight",
        disabled=labels != "blend",
    )
    meaning = LABEL_WORDS[labels] + (f" ({weight:.0%} votes)." if labels == "blend" else ".")
    if labels != "fer2013":
        meaning += (
            " The votes file is looked for beside the dataset, else the FER+ votes shipped with the app."
        )
    st.caption(meaning)
    return {"labels": labels, "votes_weight": float(weight)}


def validation_ui(folder: Path | None) -> str:
    """What the run validates on: PublicTest, or the whole test folder only when chosen."""
    split = st.radio(
        "Validation",
        VALIDATION_SPLITS,
        key="train_validation",
        format_func=VALIDATION_NAMES.__getitem__,
        horizontal=True,
    )
    st.caption(describe_validation(folder, split))
    return split


def distillation_ui(runs_dir: Path, labels: str) -> dict[str, Any]:
    """The teacher to distil from (training.distill) and its share of each target."""
    with st.expander("Distillation"):
        st.caption(
            "Train a small, fast net to imitate a bigger or ensembled model: each training image's "
            "target mixes its FER2013 label with the teacher's probabilities."
        )
        choices = {NO_TEACHER: None, **model_choices(runs_dir)}
        left, right = st.columns(2)
        label = left.selectbox(
            "Teacher model", list(choices), key="train_teacher", disabled=labels != "fer2013"
        )
        teacher = choices[label] if labels == "fer2013" else None
        weight = right.slider(
            "Teacher's share of the target",
            0.1,
            1.0,
            0.7,
            step=0.1,
            key="train_teacher_weight",
            disabled=teacher is None,
            help="The rest comes from the image's label, so a teacher's mistakes can't take over.",
        )
    return {"teacher": teacher, "teacher_weight": float(weight)}


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


def new_training_ui(runs_dir: Path) -> None:
    """Dataset, recipe and settings, and the Start button."""
    st.subheader("New training")
    data, folder = dataset_source_ui(runs_dir)
    preset = preset_ui()
    fields_ui(MAIN_FIELDS)
    with st.expander("Advanced settings"):
        fields_ui(ADVANCED_FIELDS)
    labels = labels_ui()
    validation = validation_ui(folder)
    distillation = distillation_ui(runs_dir, labels["labels"])
    limit, seed = quick_trial_ui()
    suggest_run_name()
    run_name = st.text_input("Run name", key="train_run_name", help="The run's folder in the runs folder.")
    job = manager().current()
    if job is not None and job.id == st.session_state.get(STARTED) and job.progress().active:
        # Where the user pressed Start, above the button (as by a run resumed in the table): the
        # panel at the top of the page is out of view down here.
        live_job(job, "start_", f"Run `{job.progress().run_name}`", st.session_state.pop(REVEAL, False))
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
                validation_split=validation,
                **form_values(st.session_state),
                **labels,
                **distillation,
            )
            st.session_state[STARTED] = manager().start(config).id
    except START_ERRORS as err:
        st.error(f"Can't start: {in_form_words(str(err))}")
        return
    st.session_state[NEW_NAME] = st.session_state[REVEAL] = True
    st.rerun()


# --- the running (or last) job -----------------------------------------------------------------


def running_panel(progress: Progress, history: Sequence[dict[str, float]]) -> None:
    """Progress bar, times and the best score so far of a job at work."""
    st.progress(progress.run_fraction, text=bar_text(progress))
    elapsed, eta, done, best = st.columns(4)
    elapsed.metric("Elapsed", format_duration(progress.elapsed_s()))
    eta.metric(
        "Time left", format_duration(progress.eta_s()), help="At most: early stopping may end it sooner."
    )
    done.metric("Epochs done", f"{epochs_done(progress, history)} / {progress.epochs}")
    best_accuracy = best_measured(history)
    best.metric("Best val. accuracy", "–" if best_accuracy is None else f"{best_accuracy:.1%}")


def job_panel(job: TrainingJob) -> None:
    """Where the job stands: progress in the run, times and the curves so far; or how it ended.

    An ended job's curves are not drawn here: the table of runs below picks its run and shows them.
    """
    progress = job.progress()
    st.subheader(heading(progress))
    if not progress.active:
        kind, text = ended_banner(progress, read_run(progress.run_dir))
        getattr(st, kind)(text)
        return
    history = finished_epochs(progress, read_history(progress.run_dir / "history.csv"))
    running_panel(progress, history)
    if history:
        curves(history, key=f"job_{job.id}")
    else:
        st.caption("The loss and accuracy charts appear when the first epoch ends.")


@st.fragment(run_every=REFRESH_S)
def job_section(drawn: tuple[int, str]) -> None:
    """The job's panel, redrawn every REFRESH_S seconds until its training has let go; the whole page
    reruns once the job needs another layout than ``drawn`` (training.job_view.page_phase): the
    table of runs changes, a stopped run's Resume appears, and polling stops.

    One fragment, called at the same place whatever the job does, so its id never changes. A page
    run of the previous layout that goes on late (a busy machine pauses threads) keeps only the
    fragments it drew: it dropped a separate watch that Stop's page run had just drawn, the browser
    kept polling for it ("fragment ... does not exist anymore"), and Resume never came
    (test_training_page_stop forces that pause).
    """
    job = manager().current()
    if page_phase(job) != drawn:
        st.rerun()
    job_panel(job)


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
phase = page_phase(job)
if job is not None:
    stop_slot = st.container()  # above the panel, and keeps the fragment's place in every layout
    if phase[1] == ENDED:
        job_panel(job)
    else:
        job_section(phase)
    if phase[1] == WORKING:
        with stop_slot:
            stop_button(job, "")
    st.divider()
new_training_ui(runs_dir)
st.divider()
runs_ui(runs_dir, job)
