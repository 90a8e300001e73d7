"""The Analysis page's views of a result: its metrics and per-class table, the images behind a cell
of the matrix (one of them explained), the images where the FER2013 label and the FER+ annotators
disagree with their votes, and the model's training record.

Widgets only; what is selected and how a vote card is drawn come from :mod:`training.analysis`,
:mod:`training.analysis_choices` and :mod:`training.ground_truth`.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from app.emotions import CLASS_NAMES
from app.runs import read_run
from pages.analysis_charts import CELL_SELECTION, confusion_chart, curves_chart
from pages.explanation import HELP, TOGGLE_LABEL, grad_cam, heatmap_ui
from pages.shared import cached_classifier
from training import analysis, ground_truth
from training.analysis import Evaluation
from training.analysis_choices import ModelChoice, cell_title, training_facts

ANY = "any"
GALLERY_SIZE = 30
#: Vote cards shown at once: each is a face and eight bars, wider than a gallery face.
CARDS_SHOWN = 24


def zoomed(pixels: np.ndarray, side: int = 96) -> np.ndarray:
    """A 48×48 face blown up with hard pixel edges, so what the model saw is not blurred."""
    return cv2.resize(pixels, (side, side), interpolation=cv2.INTER_NEAREST)


def class_pickers(first: str, second: str, keys: tuple[str, str]) -> tuple[int | None, int | None]:
    """Two selectboxes of *any* or a class, side by side, kept in the URL; their class indices."""
    left, right = st.columns(2)
    picked = [
        column.selectbox(label, [ANY, *CLASS_NAMES], key=key, bind="query-params")
        for column, label, key in ((left, first, keys[0]), (right, second, keys[1]))
    ]
    return tuple(None if name == ANY else CLASS_NAMES.index(name) for name in picked)  # type: ignore[return-value]


def gallery(evaluation: Evaluation, model_key: tuple[str, int], truth: str) -> None:
    """The images behind the chosen cell (or row/column), most confident first."""
    t, p = class_pickers(
        f"True class ({ground_truth.TRUTHS[truth]})", "Predicted class", ("cell_true", "cell_predicted")
    )
    everything = analysis.cell_examples(evaluation, t, p)
    what = "correct" if t is not None and t == p else "mistakes"
    title = cell_title(t, p)
    if not len(everything):
        st.info(f"No {what} for {title[0].lower()}{title[1:]}.")
        return
    shown = everything[:GALLERY_SIZE]
    more = (
        f", the {len(shown)} most confident shown"
        if len(shown) < len(everything)
        else ", most confident first"
    )
    st.markdown(f"**{title}**: {len(everything):,} {what}{more}")
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


def disagreement_view(evaluation: Evaluation) -> None:
    """The images whose FER2013 label is not the annotators' majority, each with its vote bars and
    the model's answer: what it takes to judge whether a "mistake" against the label is one."""
    st.subheader("Where the label and the annotators disagree")
    everything = ground_truth.disagreements(evaluation)
    clear = ground_truth.as_truth(evaluation, ground_truth.ANNOTATORS)
    sides = ground_truth.sides(evaluation, everything)
    st.caption(
        f"On {len(everything):,} of the {len(clear.y_true):,} images with a clear majority of the ten FER+ "
        f"annotators, the FER2013 label says otherwise. The model sides with the annotators on "
        f"{sides['annotators']:,}, with the label on {sides['label']:,}, "
        f"with neither on {sides['neither']:,}."
    )
    label, annotators = class_pickers(
        "FER2013 label", "Annotators' majority", ("disagree_label", "disagree_majority")
    )
    chosen = ground_truth.disagreements(evaluation, label, annotators)
    if not len(chosen):
        st.info("No image where the label and the annotators disagree like that.")
        return
    shown = chosen[:CARDS_SHOWN]
    more = f", the {len(shown)} clearest majorities shown" if len(shown) < len(chosen) else ""
    st.markdown(
        f"**{len(chosen):,} images**{more}. "
        "Bars: the annotators' votes (*other*: contempt, unknown, not a face)."
    )
    st.image(
        [
            ground_truth.vote_card(
                evaluation.pixels[i], evaluation.votes[i], evaluation.y_true[i], evaluation.y_pred[i]
            )
            for i in shown
        ],
        caption=[ground_truth.card_caption(evaluation, i) for i in shown],
    )


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
    facts = training_facts(card)
    if facts is None:
        st.caption(
            "No training record: the model is in no run folder and its card says nothing about training."
        )
    else:
        st.caption(f"Per-epoch curves live in run folders; this model is in none. Its card says: {facts}.")


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
