"""A run's loss and accuracy per epoch as Altair charts, training next to validation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import altair as alt
import pandas as pd

METRICS = ("loss", "accuracy")


def curve_charts(history: Sequence[dict[str, float]]) -> list[alt.Chart]:
    """One chart per metric (loss, accuracy), each with a training and a validation line.

    An epoch whose validation a Stop cut short (NaN) has no validation point rather than a fake one.
    """
    rows = [
        {"epoch": int(row["epoch"]), "metric": metric, "set": label, "value": row[column]}
        for row in history
        for metric in METRICS
        for label, column in (("train", metric), ("validation", f"val_{metric}"))
        if not math.isnan(row[column])
    ]
    data = pd.DataFrame(rows)
    return [
        alt.Chart(data[data["metric"] == metric], title=metric.capitalize())
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
            color=alt.Color("set:N", title=None, scale=alt.Scale(range=["#94a3b8", "#f59e0b"])),
            tooltip=["epoch:Q", "set:N", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(height=260)
        for metric in METRICS
    ]
