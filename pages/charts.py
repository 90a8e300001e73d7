"""Altair charts shared by the pages, so a probability bar looks the same everywhere."""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence

import altair as alt
import cv2
import pandas as pd

from app.emotions import CLASS_NAMES, emoji_png

#: Side of the emoji pictures beside the bars, in pixels.
EMOJI_PX = 18
#: Height per bar: enough for every class name at the axis' font size, so none is dropped.
ROW_PX = 24


@functools.cache
def emoji_data_url(emotion: str, side: int = EMOJI_PX * 2) -> str:
    """The shipped emoji picture of ``emotion`` as a small PNG data URL (2× for sharp screens).

    Pictures, not emoji characters: not every browser or OS has an emoji font, and a missing one
    turns the chart's labels into empty boxes.
    """
    picture = cv2.imread(str(emoji_png(emotion)), cv2.IMREAD_UNCHANGED)
    small = cv2.resize(picture, (side, side), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", small)
    if not ok:
        raise ValueError(f"could not encode the {emotion} emoji")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")


def probability_chart(probabilities: Sequence[float], shown: str | None = None) -> alt.Chart:
    """Horizontal bars, one per emotion in class order, the ``shown`` one highlighted.

    ``shown`` is the verdict the page displays (the Live page may hold an emotion that is not
    the most likely one for a moment, see app.live); by default the most likely emotion. Every
    class keeps its name and emoji picture, whatever the chart's width.
    """
    if shown is None:
        shown = CLASS_NAMES[max(range(len(probabilities)), key=probabilities.__getitem__)]
    data = pd.DataFrame(
        {
            "emotion": list(CLASS_NAMES),
            "probability": [float(p) for p in probabilities],
            "shown": [name == shown for name in CLASS_NAMES],
            "emoji": [emoji_data_url(name) for name in CLASS_NAMES],
        }
    )
    y = alt.Y(
        "emotion:N",
        sort=list(CLASS_NAMES),
        title=None,
        axis=alt.Axis(labelOverlap=False, labelPadding=EMOJI_PX + 8, ticks=False, labelFontSize=13),
    )
    base = alt.Chart(data).encode(y=y)
    bars = base.mark_bar(cornerRadiusEnd=3).encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=None)),
        color=alt.condition("datum.shown", alt.value("#f59e0b"), alt.value("#94a3b8")),
        tooltip=[alt.Tooltip("emotion:N"), alt.Tooltip("probability:Q", format=".1%")],
    )
    labels = bars.mark_text(align="left", dx=3).encode(text=alt.Text("probability:Q", format=".0%"))
    emojis = base.mark_image(width=EMOJI_PX, height=EMOJI_PX).encode(
        x=alt.value(-EMOJI_PX / 2 - 3), url="emoji:N"
    )
    return (bars + labels + emojis).properties(height=ROW_PX * len(CLASS_NAMES))
