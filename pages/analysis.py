"""Analysis page: how good a model is per class, where it goes wrong, and what a new training changed.

The numbers come from the model card when it holds the chosen split (instant, no dataset and no
TensorFlow needed), else from a fresh evaluation over the images, which is cached per model file
version and split so it runs once. Everything that computes lives in :mod:`training.analysis`
(shared with ``python -m training.evaluate``); this script only lays out widgets.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from app.classifier import ModelError
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH, REPO_ROOT
from app.model_card import ModelCardError, read_card
from app.runs import Run, active_model_path, list_runs, read_run
from pages.analysis_charts import CELL_SELECTION, confusion_chart, curves_chart
from pages.explanation import HELP, TOGGLE_LABEL, grad_cam, heatmap_ui
from pages.shared import cached_classifier, server_paths_allowed, typed_server_path
from training import analysis
from training.analysis import Evaluation, ResultError
from training.data import Dataset, DatasetError, load_split

FER2013_ENV = "FER2013_DIR"
FER2013_SPLITS = {"PrivateTest": "private_test", "PublicTest": "public_test", "Whole test folder": "test"}
FOLDER = "A folder on the server"
ZIP = "An uploaded .zip"
OTHER_MODEL = "Another .keras file on the server…"
NO_COMPARISON = "— nothing —"
ANY = "any"
GALLERY_SIZE = 30
#: A change smaller than this is rounding (the table shows 3 decimals): not coloured.
CHANGE_SHOWN = 5e-4
BETTER, WORSE = "rgba(34, 197, 94, 0.25)", "rgba(239, 68, 68, 0.25)"
#: (model key, split key) pairs this session asked to evaluate; their results come from the cache.
REQUESTED = "analysis_requested"


@dataclass(frozen=True)
class ModelChoice:
    """A model the user can analyse; ``run`` when it is a training run's model (for its curves)."""

    label: str
    path: Path
    run: Run | None = None

    @property
    def key(self) -> tuple[str, int]:
        """The file's identity for caching: a retrained file at the same path gets new results."""
        return str(self.path.resolve()), self.path.stat().st_mtime_ns


@dataclass(frozen=True)
class SplitChoice:
    """The images to score: a FER2013 split (``card_key`` set), a user's folder or an uploaded zip.

    ``key`` identifies the images for the evaluation cache (path and a change stamp); ``load``
    reads them only when an evaluation really runs.
    """

    label: str
    key: tuple[str, ...]
    load: Callable[[], Dataset]
    card_key: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The numbers shown for one model; ``evaluation`` only after a run over the images."""

    result: dict[str, Any]
    evaluation: Evaluation | None
    origin: str


# --- choosing ------------------------------------------------------------------------------------


def short_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def model_choices() -> list[ModelChoice]:
    """Shipped default, the active model when it differs, then every run with a best.keras."""
    choices = [ModelChoice(f"Shipped default ({short_path(DEFAULT_MODEL_PATH)})", DEFAULT_MODEL_PATH)]
    active = active_model_path()
    if active.resolve() != DEFAULT_MODEL_PATH.resolve():
        choices.append(ModelChoice(f"Active model ({short_path(active)})", active, read_run(active.parent)))
    for run in list_runs():
        if run.best_model is None:
            continue
        accuracy = run.best_val_accuracy
        detail = f"{run.state}, {accuracy:.1%} val." if accuracy is not None else run.state
        choices.append(ModelChoice(f"Run {run.name} ({detail})", run.best_model, run))
    return choices


def pick_model(label: str, key: str, *, optional: bool = False) -> ModelChoice | None:
    """A selectbox of models (plus a path input for any other file); None when nothing usable is chosen."""
    choices = {choice.label: choice for choice in model_choices()}
    other = [OTHER_MODEL] if server_paths_allowed() else []
    options = [*([NO_COMPARISON] if optional else []), *choices, *other]
    picked = st.selectbox(label, options, key=key)
    if picked == NO_COMPARISON:
        return None
    if picked != OTHER_MODEL:
        return choices[picked]
    typed = st.text_input("Path of the .keras file", key=f"{key}_path", placeholder="runs/vgg/best.keras")
    path = typed_server_path(typed.strip()) if typed.strip() else None
    if path is None:
        return None
    if not path.is_file():
        st.error(f"No model file at `{path}`.")
        return None
    return ModelChoice(short_path(path), path, read_run(path.parent))


def source_stamp(path: Path) -> int:
    """When the images at ``path`` last changed: a file's mtime, or the newest mtime of a folder and
    its subfolders two levels down (adding or removing an image touches its class folder's mtime).

    Part of the cache key, so an edited folder is evaluated anew. ``scandir`` tells folders from
    files without a stat per image, which keeps this cheap on every rerun.
    """
    try:
        stamps = [path.stat().st_mtime_ns]
    except OSError:
        return 0
    level = [path] if path.is_dir() else []
    for _ in range(2):
        below = []
        for folder in level:
            with os.scandir(folder) as entries:
                below += [Path(entry.path) for entry in entries if entry.is_dir()]
        stamps += [folder.stat().st_mtime_ns for folder in below]
        level = below
    return max(stamps)


def pick_split() -> SplitChoice | None:
    """A FER2013 split (of the folder typed or in $FER2013_DIR), any folder on the server, or a zip.

    Visitors of a public deployment get the deployment's own $FER2013_DIR and uploads only.
    """
    paths_allowed = server_paths_allowed()
    options = [*FER2013_SPLITS, *([FOLDER] if paths_allowed else []), ZIP]
    picked = st.selectbox(
        "Images",
        options,
        key="split",
        help="PrivateTest is the score to report: training never sees it. Any folder in the Kaggle layout "
        "(test/<class>/ or <class>/ folders of images) works too, on the server or zipped and uploaded.",
    )
    if picked in FER2013_SPLITS:
        configured = os.environ.get(FER2013_ENV, "")
        typed = configured
        if paths_allowed:
            typed = st.text_input(
                "FER2013 folder (for a new evaluation)",
                value=configured,
                key="fer2013_dir",
                help=f"Kaggle layout with train/ and test/, or fer2013.csv. Defaults to ${FER2013_ENV}.",
            ).strip()
        split = FER2013_SPLITS[picked]
        root = Path(configured) if typed == configured and configured else None
        if typed and typed != configured:
            root = typed_server_path(typed)

        def load() -> Dataset:
            if root is None:
                raise DatasetError(f"no FER2013 folder given: type its path above or set ${FER2013_ENV}")
            return load_split(root, split)

        stamp = source_stamp(root) if root else 0
        return SplitChoice(picked, ("fer2013", str(root), split, str(stamp)), load, card_key=split)
    if picked == ZIP:
        upload = st.file_uploader(
            "Zip of a folder with test/<class>/ or <class>/ subfolders", type=["zip"], key="split_zip"
        )
        if upload is None:
            return None
        data = upload.getvalue()
        # file_id is new for every upload, so a re-uploaded zip is evaluated anew; no hashing per rerun.
        key = ("zip", upload.name, upload.file_id, str(len(data)))
        return SplitChoice(upload.name, key, lambda: analysis.load_zip(data, upload.name))
    typed = st.text_input(
        "Folder with test/<class>/ or <class>/ subfolders", key="split_folder", placeholder="/data/faces"
    ).strip()
    if not typed:
        st.info("Type the path of a folder on the server to evaluate on.")
        return None
    folder = typed_server_path(typed)
    if folder is None:
        return None
    key = ("folder", str(folder.resolve()), str(source_stamp(folder)))
    return SplitChoice(str(folder), key, lambda: analysis.load_folder(folder))


# --- results -------------------------------------------------------------------------------------


# cache_resource, not cache_data: an Evaluation holds every image's pixels, is never changed, and
# cache_data would unpickle a fresh copy of them on every rerun.
@st.cache_resource(max_entries=8, show_spinner=False)
def evaluate(
    model_key: tuple[str, int], split_key: tuple[str, ...], label: str, _load: Callable[[], Dataset]
) -> Evaluation:
    """Score every image of a split once per model file version and split; shows its own progress.

    The progress bar is created and removed inside, so Streamlit's replay of a cached call shows
    nothing and costs nothing.
    """
    bar = st.progress(0.0, text="Loading the model…")
    try:
        classifier = cached_classifier(*model_key)
        bar.progress(0.02, text=f"Reading the images of {label}…")
        dataset = _load()

        def report(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Classifying {label}: {done:,} of {total:,} images")

        return analysis.predict_dataset(classifier, dataset, on_progress=report)
    finally:
        bar.empty()


def evaluate_here(choice: ModelChoice, split: SplitChoice) -> Evaluation | None:
    """Evaluate ``choice`` on ``split`` (once: cached) with its progress bar at this point of the page.

    Called where the user asked, not after a rerun from the top: a rerun put the bar at the top
    of the page, out of sight of a button at the bottom, while the rest of the page greyed out.
    """
    request = (choice.key, split.key)
    requested: set = st.session_state.setdefault(REQUESTED, set())
    requested.add(request)
    try:
        return evaluate(choice.key, split.key, split.label, split.load)
    except (ModelError, DatasetError) as err:
        requested.discard(request)  # fix the path or file, then try again
        kind = "model" if isinstance(err, ModelError) else "images"
        st.error(f"The {kind} can't be used: {err}")
        return None


def read_model_card(choice: ModelChoice) -> dict[str, Any] | None:
    try:
        return read_card(choice.path)
    except ModelCardError as err:
        st.warning(f"{err}; showing only what an evaluation finds.")
        return None


def outcome(
    choice: ModelChoice, card: dict[str, Any] | None, split: SplitChoice, slot: str
) -> Outcome | None:
    """The numbers for ``choice`` on ``split``: its ``card``'s, or a (cached) evaluation once asked for."""
    if not choice.path.is_file():  # a run deleted since the list was drawn
        st.error(f"The model file `{choice.path}` is gone.")
        return None
    request = (choice.key, split.key)
    requested: set = st.session_state.setdefault(REQUESTED, set())
    if split.card_key and request not in requested:
        try:
            stored = analysis.card_result(card, split.card_key)
        except ResultError as err:
            st.warning(str(err))
            stored = None
        if stored is not None:
            return Outcome(stored, None, f"from the model card of `{choice.path.name}`")
    if request not in requested:
        prompt = st.empty()
        with prompt.container():
            if split.card_key:
                st.info(
                    f"The model card of **{choice.label}** has no results for **{split.label}**: evaluate it."
                )
            else:
                st.info(f"Evaluate **{choice.label}** on the images of **{split.label}**.")
            who = "model B " if slot == "compare" else ""
            clicked = st.button(f"Evaluate {who}on {split.label}", key=f"evaluate_{slot}", type="primary")
        if not clicked:
            return None
        prompt.empty()  # the progress bar takes the prompt's place, where the user clicked
    evaluation = evaluate_here(choice, split)
    if evaluation is None:
        return None
    if evaluation.note:
        st.caption(f"Note: {evaluation.note}.")
    if evaluation.skipped:
        st.warning(
            f"{len(evaluation.skipped)} unreadable image(s) were left out, e.g. `{evaluation.skipped[0]}`."
        )
    return Outcome(evaluation.result(), evaluation, f"evaluated on the images of {split.label}")


# --- showing -------------------------------------------------------------------------------------


def metrics_row(result: dict[str, Any], baseline: dict[str, Any] | None = None) -> None:
    """Accuracy, macro-F1, balanced accuracy and n; with ``baseline`` each shows its change.

    Accuracies read as percentages (changes in points), macro-F1 as a 0..1 score, as in papers.
    """
    deltas = analysis.summary_deltas(baseline, result) if baseline else {}
    columns = st.columns(4)
    headline = (
        ("accuracy", "Accuracy"),
        ("macro_f1", "Macro-F1"),
        ("balanced_accuracy", "Balanced accuracy"),
    )
    for column, (key, name) in zip(columns, headline, strict=False):
        percent = key != "macro_f1"
        value = f"{result[key]:.1%}" if percent else f"{result[key]:.3f}"
        delta = None
        if key in deltas:
            delta = f"{deltas[key] * 100:+.1f} pts" if percent else f"{deltas[key]:+.3f}"
        unchanged = key in deltas and abs(deltas[key]) < 5e-4
        column.metric(name, value, delta=delta, delta_color="off" if unchanged else "normal")
    columns[3].metric("Images", f"{result['n']:,}")


def per_class_table(result: dict[str, Any], file_stem: str) -> None:
    """Sortable table (click a header) with a CSV download of the same rows the CLI writes."""
    st.dataframe(
        analysis.per_class_frame(result),
        hide_index=True,
        width="stretch",
        column_config={
            "class": st.column_config.TextColumn("class"),
            **{key: st.column_config.NumberColumn(key, format="%.3f") for key in analysis.METRIC_KEYS},
            "support": st.column_config.NumberColumn("support", format="%d"),
        },
        key="per_class_table",
    )
    st.download_button(
        "Download the table (CSV)",
        analysis.per_class_csv(result),
        file_name=f"{file_stem}_per_class.csv",
        mime="text/csv",
        key="download_table",
        icon=":material/download:",
    )


def matrix(result: dict[str, Any], normalised: bool) -> tuple[str, str] | None:
    """The clickable heatmap; returns the (true, predicted) cell clicked, if any."""
    event = st.altair_chart(
        confusion_chart(result, normalised=normalised),
        on_select="rerun",
        selection_mode=CELL_SELECTION,
        width="content",
        key="matrix",
    )
    picked = (event.selection.get(CELL_SELECTION) or []) if event else []
    if picked and {"true", "predicted"} <= set(picked[0]):
        return picked[0]["true"], picked[0]["predicted"]
    return None


def sync_cell(clicked: tuple[str, str] | None) -> None:
    """Make a new click on the heatmap the selectboxes' choice, but let later selectbox edits stand."""
    if clicked != st.session_state.get("last_clicked_cell"):
        st.session_state["last_clicked_cell"] = clicked
        if clicked is not None:
            st.session_state["cell_true"], st.session_state["cell_predicted"] = clicked


def zoomed(pixels: np.ndarray, side: int = 96) -> np.ndarray:
    """A 48×48 face blown up with hard pixel edges, so what the model saw is not blurred."""
    return cv2.resize(pixels, (side, side), interpolation=cv2.INTER_NEAREST)


def gallery(evaluation: Evaluation, model_key: tuple[str, int]) -> None:
    """The images behind the chosen cell (or row/column), most confident first."""
    left, right = st.columns(2)
    true = left.selectbox("True class", [ANY, *CLASS_NAMES], key="cell_true")
    predicted = right.selectbox("Predicted class", [ANY, *CLASS_NAMES], key="cell_predicted")
    t = None if true == ANY else CLASS_NAMES.index(true)
    p = None if predicted == ANY else CLASS_NAMES.index(predicted)
    everything = analysis.cell_examples(evaluation, t, p)
    what = "correct" if t is not None and t == p else "mistakes"
    title = {
        (True, True): "Every class, predicted as another",
        (False, True): f"True {true}, predicted as another class",
        (True, False): f"Predicted {predicted}, truly another class",
    }.get((t is None, p is None), f"True {true} → predicted {predicted}")
    if not len(everything):
        st.info(f"No {what} for {title[0].lower()}{title[1:]}.")
        return
    shown = everything[:GALLERY_SIZE]
    st.markdown(
        f"**{title}**: {len(everything):,} {what}"
        + (
            f", the {len(shown)} most confident shown"
            if len(shown) < len(everything)
            else ", most confident first"
        )
    )
    y_pred, confidence = evaluation.y_pred, evaluation.confidence
    st.image(
        [zoomed(evaluation.pixels[i]) for i in shown],
        caption=[
            f"{CLASS_NAMES[evaluation.y_true[i]]} → {CLASS_NAMES[y_pred[i]]} {confidence[i]:.0%}"
            for i in shown
        ],
        width=96,
    )
    with st.expander("Their files"):
        st.dataframe(
            pd.DataFrame(
                {
                    "true": [CLASS_NAMES[evaluation.y_true[i]] for i in shown],
                    "predicted": [CLASS_NAMES[y_pred[i]] for i in shown],
                    "confidence": [float(confidence[i]) for i in shown],
                    "file": [evaluation.sources[i] for i in shown],
                }
            ),
            hide_index=True,
            width="stretch",
            column_config={"confidence": st.column_config.NumberColumn(format="%.3f")},
        )
    explain_one(evaluation, shown, model_key)


def explain_one(evaluation: Evaluation, shown: np.ndarray, model_key: tuple[str, int]) -> None:
    """The explanation toggle under the gallery: one picked face under its heatmap, for the
    wrong verdict or the true class (or any other), to see what misled the model."""
    if not st.toggle(TOGGLE_LABEL, key="analysis_gradcam", help=HELP):
        return
    y_true, y_pred, confidence = evaluation.y_true, evaluation.y_pred, evaluation.confidence
    place = st.selectbox(
        "Face to explain (counted in the gallery's order)",
        range(len(shown)),
        key="analysis_gradcam_face",
        format_func=lambda n: (
            f"{n + 1}. {CLASS_NAMES[y_true[shown[n]]]} → {CLASS_NAMES[y_pred[shown[n]]]} "
            f"{confidence[shown[n]]:.0%}"
        ),
    )
    index = int(shown[place])
    explainer = grad_cam(model_key, cached_classifier(*model_key).model)
    heatmap_ui(
        "analysis_gradcam_class",
        evaluation.pixels[index],
        evaluation.probabilities[index],
        explainer,
        true=CLASS_NAMES[y_true[index]],
    )


def training_section(choice: ModelChoice, card: dict[str, Any] | None) -> None:
    """The run's loss/accuracy curves, or what the card says about training when there is no run."""
    st.subheader("Training")
    run = choice.run or read_run(choice.path.parent)
    if run is not None and run.history:
        best = run.best_val_accuracy
        st.caption(
            f"Run `{run.name}`: {run.state}, {run.epochs_run} of {run.epochs_planned} epochs"
            + (f", best validation accuracy {best:.1%}" if best is not None else "")
        )
        st.altair_chart(curves_chart(run.history), key="curves")
        return
    training = (card or {}).get("training") or {}
    if not training:
        st.caption(
            "No training record: the model is in no run folder and its card says nothing about training."
        )
        return
    facts = [f"architecture `{(card or {}).get('architecture', '?')}`"]
    if "epochs_run" in training:
        facts.append(f"{training['epochs_run']} epochs")
    if isinstance(training.get("best_val_accuracy"), int | float):
        facts.append(f"best validation accuracy {training['best_val_accuracy']:.1%}")
    if isinstance(training.get("duration_s"), int | float):
        facts.append(f"{training['duration_s'] / 60:.0f} min of training")
    st.caption(
        "Per-epoch curves live in run folders; this model is in none. Its card says: "
        + ", ".join(facts)
        + "."
    )


def images_prompt(chosen: ModelChoice, split: SplitChoice) -> Evaluation | None:
    """The offer to evaluate the split for its faces; on the click, the evaluation right here.

    The progress bar takes the offer's place, where the user's eyes are (this sits low on the page);
    once done, the page is drawn again from the cached evaluation.
    """
    prompt = st.empty()
    with prompt.container():
        st.caption(
            "The model card keeps the counts, not the images. Evaluate the split to browse them: "
            "click a cell of the matrix or pick a row and column below."
        )
        clicked = st.button(f"Evaluate on {split.label} to see the images", key="evaluate_images")
    if not clicked:
        return None
    prompt.empty()
    evaluation = evaluate_here(chosen, split)
    if evaluation is not None:
        # Cached now: redraw the whole page from it, so the numbers above (drawn from the card
        # before the click) are the ones of the images shown, e.g. when the server's copy differs.
        st.rerun()
    return evaluation


def comparison(first: ModelChoice, first_outcome: Outcome, split: SplitChoice, normalised: bool) -> None:
    """A second model on the same images: its numbers with changes, both matrices, per-class Δ."""
    st.subheader("Compare with another model")
    second = pick_model("Model B (A is the model above)", key="compare_model", optional=True)
    if second is None:
        st.caption("Pick a second model to see what a new training changed, class by class.")
        return
    second_outcome = outcome(second, read_model_card(second), split, slot="compare")
    if second_outcome is None:
        return
    a, b = first_outcome.result, second_outcome.result
    st.caption(f"B = {second.label}, {second_outcome.origin}. Changes are B − A.")
    if a["n"] != b["n"]:
        st.warning(
            f"A was scored on {a['n']:,} images and B on {b['n']:,}: not the same images, compare with care."
        )
    st.markdown(f"**A**: {first.label}")
    metrics_row(a)
    st.markdown(f"**B**: {second.label}, with its change from A")
    metrics_row(b, baseline=a)
    left, right = st.columns(2)
    for column, result, name in ((left, a, f"A: {first.label}"), (right, b, f"B: {second.label}")):
        chart = confusion_chart(result, normalised=normalised, title=name, selectable=False, cell_px=40)
        column.altair_chart(chart, width="content", key=f"matrix_{name[0].lower()}")
    st.caption("Per class, A's figures beside B's; a change is green where B does better, red where worse.")
    st.dataframe(
        coloured_changes(analysis.compare_frame(a, b)), hide_index=True, width="stretch", key="compare_table"
    )


def change_style(value: float) -> str:
    """CSS for one change (B − A): green if better, red if worse, none within rounding."""
    if value >= CHANGE_SHOWN:
        return f"background-color: {BETTER}"
    if value <= -CHANGE_SHOWN:
        return f"background-color: {WORSE}"
    return ""


def coloured_changes(frame: pd.DataFrame) -> Styler:
    """The comparison table with its Δ columns coloured, so better and worse read at a glance."""
    deltas = [column for column in frame.columns if column.startswith("Δ")]
    figures = [column for column in frame.columns if column not in ("class", "support", *deltas)]
    return (
        frame.style.map(change_style, subset=deltas)
        .format("{:+.3f}", subset=deltas)
        .format("{:.3f}", subset=figures)
    )


# --- the page ------------------------------------------------------------------------------------

st.title("Analysis")
st.caption(
    "How good a model is per emotion, which emotions it confuses, the faces behind each mistake, "
    "and what a new training changed. Rows of the matrix are the true class, columns the prediction."
)
model_column, split_column = st.columns(2)
with model_column:
    chosen = pick_model("Model", key="model")
with split_column:
    split = pick_split()
if chosen is None or split is None:
    st.stop()

card = read_model_card(chosen)
shown = outcome(chosen, card, split, slot="main")
if shown is not None:
    st.caption(f"**{chosen.label}** on **{split.label}**, {shown.origin}.")
    metrics_row(shown.result)
    normalised = st.toggle(
        "Row-normalised (share of each true class)",
        key="normalised",
        help="Off: image counts. On: each row sums to 100%, so the diagonal is every class's recall.",
    )
    matrix_column, table_column = st.columns([3, 2])
    with matrix_column:
        clicked = matrix(shown.result, normalised)
    with table_column:
        per_class_table(
            shown.result, f"{chosen.path.stem}_{analysis.file_stem(split.card_key or split.label)}"
        )
    sync_cell(clicked)

    st.subheader("The faces behind a cell")
    evaluation = shown.evaluation or images_prompt(chosen, split)
    if evaluation is not None:
        st.caption("Click a cell of the matrix, or pick a row and column; *any* shows mistakes only.")
        gallery(evaluation, chosen.key)

training_section(chosen, card)
with st.expander("Model card"):
    if card:
        st.json(card, expanded=1)
    else:
        st.caption(f"`{chosen.path.name}` has no model card beside it.")
if shown is not None:
    comparison(chosen, shown, split, st.session_state.get("normalised", False))
