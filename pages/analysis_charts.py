"""Altair charts of the Analysis page: the confusion-matrix heatmap, the training curves, and the
comparison table's colours.

Kept apart from the page so the page script stays a thin layout of widgets, and so the charts can
be built (and checked) without running Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import pandas as pd
from pandas.io.formats.style import Styler

from app.emotions import CLASS_NAMES
from training.analysis import confusion_frame

#: Name of the heatmap's click selection; the page reads ``event.selection[CELL_SELECTION]``.
CELL_SELECTION = "cell"
CELL_PX = 52
#: Light to dark blue, as in the CLI's PNG (training.analysis.confusion_png).
HEAT_RANGE = ["#eff4fb", "#08306b"]
#: A change smaller than this is rounding (the table shows 3 decimals): not coloured.
CHANGE_SHOWN = 5e-4
BETTER, WORSE = "rgba(34, 197, 94, 0.25)", "rgba(239, 68, 68, 0.25)"


def confusion_chart(
    result: Mapping[str, Any],
    *,
    normalised: bool,
    title: str = "",
    selectable: bool = True,
    cell_px: int = CELL_PX,
    most: float | None = None,
) -> alt.LayerChart:
    """The 7×7 matrix with its value in every cell; rows = true class, columns = predicted.

    ``normalised`` shows each row as shares of the true class (recall on the diagonal), which
    makes rare classes like disgust readable next to happy's thousands. With ``selectable`` a click
    selects a cell (a point selection on the true/predicted fields) for ``on_select="rerun"``.
    ``most`` is the count the darkest colour stands for (default: this matrix's largest), so two
    matrices side by side can share one scale and the same colour means the same count.
    """
    data = confusion_frame(result)
    data["value"] = data["share"] if normalised else data["count"]
    data["label"] = [
        f"{s:.0%}" if normalised else f"{c:,}" for s, c in zip(data["share"], data["count"], strict=True)
    ]
    top = 1.0 if normalised else float(most if most is not None else data["value"].max()) or 1.0
    data["dark"] = data["value"] > top * 0.55
    value_title = "% of row" if normalised else "images"
    # Narrow cells cannot hold "surprise" level: tilt the column labels rather than drop some.
    x_axis = alt.Axis(
        labelAngle=0 if cell_px >= 48 else -45, labelOverlap=False, labelFontSize=12, titleFontSize=13
    )
    y_axis = alt.Axis(labelFontSize=12, titleFontSize=13)
    base = alt.Chart(data).encode(
        x=alt.X("predicted:N", title="predicted", sort=list(CLASS_NAMES), axis=x_axis),
        y=alt.Y("true:N", title="true", sort=list(CLASS_NAMES), axis=y_axis),
    )
    cells = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color(
            "value:Q",
            title=value_title,
            scale=alt.Scale(range=HEAT_RANGE, domain=[0, top]),
            legend=alt.Legend(format=".0%" if normalised else ",d", orient="right"),
        ),
        tooltip=[
            alt.Tooltip("true:N", title="true"),
            alt.Tooltip("predicted:N", title="predicted"),
            alt.Tooltip("count:Q", title="images", format=",d"),
            alt.Tooltip("share:Q", title="share of true class", format=".1%"),
        ],
    )
    if selectable:
        selection = alt.selection_point(name=CELL_SELECTION, fields=["true", "predicted"], on="click")
        # Outline the chosen cell rather than fade the others: faded cells would hide their numbers.
        cells = cells.add_params(selection).encode(
            stroke=alt.condition(selection, alt.value("#f59e0b"), alt.value("white"), empty=False),
            strokeWidth=alt.condition(selection, alt.value(4), alt.value(1), empty=False),
        )
    text = base.mark_text(fontSize=13).encode(
        text="label:N",
        color=alt.condition("datum.dark", alt.value("white"), alt.value("#1f2937")),
    )
    # "pad": the cells keep their size and the axes and legend are added around them; Streamlit's
    # default ("fit") would squeeze all of it into the width and height given here.
    chart = alt.layer(cells, text).properties(
        width=cell_px * len(CLASS_NAMES),
        height=cell_px * len(CLASS_NAMES),
        autosize=alt.AutoSizeParams(type="pad", contains="padding"),
    )
    return chart.properties(title=title) if title else chart


def history_frame(history: Sequence[Mapping[str, float]]) -> pd.DataFrame:
    """A run's history.csv rows in long form: epoch, metric (loss/accuracy), set (train/validation), value."""
    rows = []
    for row in history:
        for metric in ("loss", "accuracy"):
            for prefix, subset in (("", "train"), ("val_", "validation")):
                value = row.get(prefix + metric)
                if value is not None and value == value:  # NaN when Keras did not log it
                    rows.append({"epoch": int(row["epoch"]), "metric": metric, "set": subset, "value": value})
    return pd.DataFrame(rows, columns=["epoch", "metric", "set", "value"])


def curves_chart(history: Sequence[Mapping[str, float]]) -> alt.FacetChart:
    """Loss and accuracy per epoch, train next to validation: where a run over- or under-fits."""
    data = history_frame(history)
    line = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
            color=alt.Color("set:N", title=None, scale=alt.Scale(range=["#94a3b8", "#f59e0b"])),
            tooltip=["epoch:Q", "set:N", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(width=320, height=220)
    )
    return (
        line.facet(column=alt.Column("metric:N", title=None, sort=["loss", "accuracy"]))
        .resolve_scale(y="independent")
        .properties(title="Loss and accuracy per epoch")
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
