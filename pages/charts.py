"""Altair charts shared by the pages, so a probability bar looks the same everywhere."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd

from app.emotions import CLASS_NAMES
from pages.shared import emoji_data_url

#: Side of the emoji pictures beside the bars, in pixels.
EMOJI_PX = 18
#: Height per bar: enough for every class name at the axis' font size, so none is dropped.
ROW_PX = 24


def probability_spec(probabilities: Sequence[float], shown: str | None = None) -> dict[str, Any]:
    """``probability_chart`` as a Vega-Lite dict for ``st.vega_lite_chart``, built cheaply.

    Building and validating an Altair chart costs ~25 ms of Python (JSON-schema validation), and
    the Live page's panel draws one three times a second while frames wait for the GIL: the
    validated spec is made once and only its data rows change.
    """
    template = _validated_template()
    (name,) = template["datasets"]
    rows = _rows(probabilities, shown)
    return {**template, "datasets": {name: rows}}


@functools.cache
def _validated_template() -> dict[str, Any]:
    uniform = [1.0 / len(CLASS_NAMES)] * len(CLASS_NAMES)
    return probability_chart(uniform).to_dict()


def _rows(probabilities: Sequence[float], shown: str | None) -> list[dict[str, Any]]:
    """The chart's data: one row per class in class order, the ``shown`` one flagged."""
    if shown is None:
        shown = CLASS_NAMES[max(range(len(probabilities)), key=probabilities.__getitem__)]
    return [
        {
            "emotion": name,
            "probability": float(p),
            "shown": name == shown,
            "emoji": emoji_data_url(name, EMOJI_PX),
        }
        for name, p in zip(CLASS_NAMES, probabilities, strict=True)
    ]


def probability_chart(probabilities: Sequence[float], shown: str | None = None) -> alt.Chart:
    """Horizontal bars, one per emotion in class order, the ``shown`` one highlighted.

    ``shown`` is the verdict the page displays (the Live page may hold an emotion that is not
    the most likely one for a moment, see app.live); by default the most likely emotion. Every
    class keeps its name and emoji picture, whatever the chart's width.
    """
    base, emojis = emotion_rows(pd.DataFrame(_rows(probabilities, shown)))
    bars = base.mark_bar(cornerRadiusEnd=3).encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=None)),
        color=alt.condition("datum.shown", alt.value("#f59e0b"), alt.value("#94a3b8")),
        tooltip=[alt.Tooltip("emotion:N"), alt.Tooltip("probability:Q", format=".1%")],
    )
    labels = bars.mark_text(align="left", dx=3).encode(text=alt.Text("probability:Q", format=".0%"))
    return (bars + labels + emojis).properties(height=alt.Step(ROW_PX))


def emotion_rows(data: pd.DataFrame) -> tuple[alt.Chart, alt.Chart]:
    """One row per emotion in class order, named and with its emoji picture (``data``'s ``emoji``
    column of data URLs): the base chart to draw on, and the layer of pictures beside the names."""
    y = alt.Y(
        "emotion:N",
        sort=list(CLASS_NAMES),
        title=None,
        axis=alt.Axis(labelOverlap=False, labelPadding=EMOJI_PX + 8, ticks=False, labelFontSize=13),
    )
    base = alt.Chart(data).encode(y=y)
    emojis = base.mark_image(width=EMOJI_PX, height=EMOJI_PX).encode(
        x=alt.value(-EMOJI_PX / 2 - 3), url="emoji:N"
    )
    return base, emojis
