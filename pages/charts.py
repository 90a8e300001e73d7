"""Altair charts shared by the pages, so a probability bar looks the same everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from app.emotions import CLASS_NAMES, EMOJI


def probability_chart(probabilities: Sequence[float], height: int = 190) -> alt.Chart:
    """Horizontal bars, one per emotion in class order, the winning one highlighted."""
    top = max(range(len(probabilities)), key=probabilities.__getitem__)
    data = pd.DataFrame(
        {
            "emotion": [f"{EMOJI[name]} {name}" for name in CLASS_NAMES],
            "probability": [float(p) for p in probabilities],
            "top": [index == top for index in range(len(CLASS_NAMES))],
        }
    )
    bars = (
        alt.Chart(data)
        .mark_bar(cornerRadiusEnd=3)
        .encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=None)),
            y=alt.Y("emotion:N", sort=None, title=None),
            color=alt.condition("datum.top", alt.value("#f59e0b"), alt.value("#94a3b8")),
            tooltip=[alt.Tooltip("emotion:N"), alt.Tooltip("probability:Q", format=".1%")],
        )
    )
    labels = bars.mark_text(align="left", dx=3).encode(text=alt.Text("probability:Q", format=".0%"))
    return (bars + labels).properties(height=height)
