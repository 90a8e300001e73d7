"""Analysis page: how good a model is per class, where it goes wrong, and what a new training changed.

The numbers come from the model card when it holds the chosen split (instant, no dataset and no
TensorFlow needed), else from an evaluation over the images. Evaluations run on a worker thread
of the server (:mod:`training.evaluation_jobs`) that this page only watches, and every choice is
bound to the URL's query parameters: a reload in the middle of an evaluation comes back with the
same choices to the same evaluation, still running or done, instead of starting from nothing.
Where the images have FER+ votes, a *Ground truth* switch scores against the annotators' majority
(:mod:`training.ground_truth`). Everything that computes lives in :mod:`training`; this script
only lays out widgets.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import streamlit as st

from app.classifier import ModelError
from app.model_card import ModelCardError, read_card, visitor_view
from app.runs import read_run
from pages.analysis_charts import coloured_changes, confusion_chart
from pages.analysis_views import (
    disagreement_view,
    gallery,
    matrix,
    metrics_row,
    per_class_table,
    sync_cell,
    training_section,
)
from pages.shared import server_paths_allowed, typed_server_path
from training import analysis, evaluation_jobs, ground_truth
from training.analysis import Evaluation, ResultError
from training.analysis_choices import (
    ModelChoice,
    Outcome,
    SplitChoice,
    model_choices,
    short_path,
    source_stamp,
)
from training.data import Dataset, DatasetError, load_split

FER2013_ENV = "FER2013_DIR"
FER2013_SPLITS = {"PrivateTest": "private_test", "PublicTest": "public_test", "Whole test folder": "test"}
FOLDER = "A folder on the server"
ZIP = "An uploaded .zip"
OTHER_MODEL = "Another .keras file on the server…"
NO_COMPARISON = "— nothing —"
#: How often the page looks at a running evaluation.
POLL_S = 0.3
URL = "query-params"

# --- choosing ------------------------------------------------------------------------------------


def pick_model(label: str, key: str, *, optional: bool = False) -> ModelChoice | None:
    """A selectbox of models (plus a path input for any other file); None when nothing usable is chosen."""
    choices = {choice.label: choice for choice in model_choices()}
    other = [OTHER_MODEL] if server_paths_allowed() else []
    options = [*([NO_COMPARISON] if optional else []), *choices, *other]
    picked = st.selectbox(label, options, key=key, bind=URL)
    if picked == NO_COMPARISON:
        return None
    if picked != OTHER_MODEL:
        return choices[picked]
    typed = st.text_input(
        "Path of the .keras file", key=f"{key}_path", placeholder="runs/vgg/best.keras", bind=URL
    ).strip()
    path = typed_server_path(typed) if typed else None
    if path is None:
        return None
    if not path.is_file():
        st.error(f"No model file at `{path}`.")
        return None
    return ModelChoice(short_path(path), path, read_run(path.parent))


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
        bind=URL,
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
                bind=URL,
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
        return SplitChoice(upload.name, key, lambda: analysis.load_zip(data, upload.name), votes=False)
    typed = st.text_input(
        "Folder with test/<class>/ or <class>/ subfolders",
        key="split_folder",
        placeholder="/data/faces",
        bind=URL,
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


def evaluation_of(choice: ModelChoice, split: SplitChoice, *, start: bool = False) -> Evaluation | None:
    """The server's evaluation of ``choice`` on ``split`` (started first if ``start``), watched here
    with a progress bar until it is done; None when there is none or it failed (said on the page).

    Watched where the user asked, not after a rerun from the top: the bar belongs by the button.
    A rerun (a click elsewhere, a reload) stops this watching, never the evaluation itself.
    """
    key = (choice.key, split.key)
    if start:
        work = evaluation_jobs.evaluate_split(choice.path, split.load, split.label, votes=split.votes)
        job = evaluation_jobs.start(key, split.label, work)
    else:
        job = evaluation_jobs.find(key)
    if job is None:
        return None
    bar = st.empty()
    while True:
        status = job.status
        bar.progress(status.fraction, text=evaluation_jobs.describe(status))
        if job.finished:
            break
        time.sleep(POLL_S)
    bar.empty()
    error = job.future.exception()
    if error is None:
        return job.future.result()
    evaluation_jobs.forget(key)  # fix the path or file, then try again
    if not isinstance(error, ModelError | DatasetError):
        raise error
    kind = "model" if isinstance(error, ModelError) else "images"
    st.error(f"The {kind} can't be used: {error}")
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
    """The numbers for ``choice`` on ``split``: its evaluation when the server has one, else its
    ``card``'s, else an offer to evaluate."""
    if not choice.path.is_file():  # a run deleted since the list was drawn
        st.error(f"The model file `{choice.path}` is gone.")
        return None
    started = evaluation_jobs.find((choice.key, split.key)) is not None
    if split.card_key and not started:
        try:
            stored = analysis.card_result(card, split.card_key)
        except ResultError as err:
            st.warning(str(err))
            stored = None
        if stored is not None:
            return Outcome(stored, None, f"from the model card of `{choice.path.name}`")
    clicked = False
    if not started:
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
    evaluation = evaluation_of(choice, split, start=clicked)
    if evaluation is None:
        return None
    if evaluation.note:
        st.caption(f"Note: {evaluation.note}.")
    if evaluation.skipped:
        st.warning(
            f"{len(evaluation.skipped)} unreadable image(s) were left out, e.g. `{evaluation.skipped[0]}`."
        )
    return Outcome(
        ground_truth.both_truths(evaluation), evaluation, f"evaluated on the images of {split.label}"
    )


# --- showing -------------------------------------------------------------------------------------


def truth_switch(result: dict[str, Any]) -> str:
    """The *Ground truth* switch, offered only when ``result`` was also scored against the votes."""
    if result.get(ground_truth.MAJORITY_KEY) is None:
        return ground_truth.LABEL
    return st.radio(
        "Ground truth",
        list(ground_truth.TRUTHS),
        format_func=ground_truth.TRUTHS.get,
        horizontal=True,
        key="truth",
        bind=URL,
        help="FER2013's own label (one person's call), or the majority of ten FER+ annotators "
        "(images without a clear one left out): for every number, the matrix and its faces.",
    )


def images_prompt(chosen: ModelChoice, split: SplitChoice) -> Evaluation | None:
    """The offer to evaluate the split for its faces; on the click, the evaluation right here.

    The progress bar takes the offer's place, where the user's eyes are (this sits low on the page);
    once done, the page is drawn again from the evaluation.
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
    evaluation = evaluation_of(chosen, split, start=True)
    if evaluation is not None:
        # Redraw the whole page from it, so the numbers above (drawn from the card before the
        # click) are the ones of the images shown, e.g. when the server's copy differs.
        st.rerun()
    return evaluation


def comparison(
    first: ModelChoice, a: dict[str, Any], split: SplitChoice, normalised: bool, truth: str
) -> None:
    """A second model on the same images and truth: its numbers with changes, both matrices on one
    colour scale, per-class Δ."""
    st.subheader("Compare with another model")
    second = pick_model("Model B (A is the model above)", key="compare_model", optional=True)
    if second is None:
        st.caption("Pick a second model to see what a new training changed, class by class.")
        return
    second_outcome = outcome(second, read_model_card(second), split, slot="compare")
    if second_outcome is None:
        return
    try:
        b = ground_truth.under(second_outcome.result, truth)
    except ResultError as err:
        st.warning(f"B's model card: {err}")
        return
    if b is None:
        st.info(
            f"B's numbers have no score against the {ground_truth.TRUTHS[truth].lower()}: "
            "evaluate B on the images."
        )
        return
    st.caption(f"B = {second.label}, {second_outcome.origin}. Changes are B − A.")
    if a["n"] != b["n"]:
        st.warning(
            f"A was scored on {a['n']:,} images and B on {b['n']:,}: not the same images, compare with care."
        )
    st.markdown(f"**A**: {first.label}")
    metrics_row(a)
    st.markdown(f"**B**: {second.label}, with its change from A")
    metrics_row(b, baseline=a)
    # One colour scale for both: the same colour is the same count (or share) in either matrix.
    most = max(max(map(max, a["confusion"])), max(map(max, b["confusion"])))
    left, right = st.columns(2)
    for column, result, name in ((left, a, f"A: {first.label}"), (right, b, f"B: {second.label}")):
        chart = confusion_chart(
            result, normalised=normalised, title=name, selectable=False, cell_px=40, most=most
        )
        column.altair_chart(chart, width="content", key=f"matrix_{name[0].lower()}")
    st.caption("Per class, A's figures beside B's; a change is green where B does better, red where worse.")
    st.dataframe(
        coloured_changes(analysis.compare_frame(a, b)), hide_index=True, width="stretch", key="compare_table"
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
result: dict[str, Any] | None = None
truth = ground_truth.LABEL
if shown is not None:
    st.caption(f"**{chosen.label}** on **{split.label}**, {shown.origin}.")
    truth = truth_switch(shown.result)
    try:
        result = ground_truth.under(shown.result, truth)
    except ResultError as err:
        st.warning(str(err))
        result = shown.result
if shown is not None and result is not None:
    if truth == ground_truth.ANNOTATORS:
        st.caption(f"Against the annotators' majority: {ground_truth.majority_line(result)}.")
    metrics_row(result)
    normalised = st.toggle(
        "Row-normalised (share of each true class)",
        key="normalised",
        bind=URL,
        help="Off: image counts. On: each row sums to 100%, so the diagonal is every class's recall.",
    )
    matrix_column, table_column = st.columns([3, 2])
    with matrix_column:
        clicked = matrix(result, normalised)
    with table_column:
        suffix = "_ferplus" if truth == ground_truth.ANNOTATORS else ""
        per_class_table(
            result, f"{chosen.path.stem}_{analysis.file_stem(split.card_key or split.label)}{suffix}"
        )
    sync_cell(clicked)

    st.subheader("The faces behind a cell")
    evaluation = shown.evaluation or images_prompt(chosen, split)
    if evaluation is not None:
        st.caption("Click a cell of the matrix, or pick a row and column; *any* shows mistakes only.")
        gallery(ground_truth.as_truth(evaluation, truth), chosen.key, truth)
        if evaluation.votes is not None:
            disagreement_view(evaluation)

training_section(chosen, card)
with st.expander("Model card"):
    if card:
        st.json(card if server_paths_allowed() else visitor_view(card), expanded=1)  # no server paths
    else:
        st.caption(f"`{chosen.path.name}` has no model card beside it.")
if result is not None:
    comparison(chosen, result, split, st.session_state.get("normalised", False), truth)
