"""The Video page's charts and tables: share of time, timelines and moments of change.

Every emotion is shown by name with its emoji *picture*, as on the other pages, never by emoji
character: where no colour-emoji font is installed, characters in a chart's axis, tooltip or a
table come out as outlines or empty boxes. Not a page: ``app/streamlit_app.py`` lists the pages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import altair as alt
import pandas as pd

from app.emotions import CLASS_NAMES
from app.video import Change
from pages.charts import EMOJI_PX, ROW_PX, emotion_rows
from pages.shared import emoji_data_url

#: Points per timeline; longer videos are thinned so the chart stays quick in the browser.
TIMELINE_POINTS = 800
#: Each emotion's colour in the share chart and the timelines.
COLOURS = {
    "angry": "#dc2626",
    "disgust": "#65a30d",
    "fear": "#9333ea",
    "happy": "#f59e0b",
    "neutral": "#94a3b8",
    "sad": "#2563eb",
    "surprise": "#06b6d4",
}


def share_chart(share: dict[str, float]) -> alt.LayerChart:
    """Share of the time each emotion was shown, as bars in class order, each with its emoji picture
    beside its name (pictures, not emoji characters: where no emoji font is installed those are
    empty boxes or outlines)."""
    data = pd.DataFrame(
        {
            "emotion": list(CLASS_NAMES),
            "share": [share[name] for name in CLASS_NAMES],
            "emoji": [emoji_data_url(name, EMOJI_PX) for name in CLASS_NAMES],
        }
    )
    base, emojis = emotion_rows(data)
    bars = base.mark_bar(cornerRadiusEnd=3).encode(
        x=alt.X("share:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=None)),
        color=alt.Color("emotion:N", scale=_colour_scale(), legend=None),
        tooltip=[alt.Tooltip("emotion:N"), alt.Tooltip("share:Q", format=".0%", title="share of time")],
    )
    return (bars + emojis).properties(height=alt.Step(ROW_PX))


def timeline_chart(face_rows: pd.DataFrame, duration_s: float) -> alt.LayerChart:
    """One face's smoothed probabilities over time, stacked; hovering shows a time's values.

    Every face's chart spans the whole video, so charts stacked on the page line up in time.
    """
    wide = face_rows.iloc[:: max(1, math.ceil(len(face_rows) / TIMELINE_POINTS))]
    long = wide.melt(id_vars=["time_s"], value_vars=list(CLASS_NAMES), var_name="emotion", value_name="p")
    areas = (
        alt.Chart(long)
        .mark_area()
        .encode(
            x=alt.X("time_s:Q", title="time (s)", scale=alt.Scale(domain=[0, duration_s])),
            y=alt.Y(
                "p:Q", stack="zero", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=None)
            ),
            color=alt.Color("emotion:N", scale=_colour_scale(), sort=list(CLASS_NAMES), title=None),
            order=alt.Order("emotion_index:Q"),
        )
        .transform_calculate(emotion_index=f"indexof({list(CLASS_NAMES)}, datum.emotion)")
    )
    nearest = alt.selection_point(nearest=True, on="pointerover", fields=["time_s"], empty=False)
    tooltip = [alt.Tooltip("time_s:Q", title="time (s)", format=".2f")] + [
        alt.Tooltip(f"{name}:Q", title=name, format=".0%") for name in CLASS_NAMES
    ]
    rule = (
        alt.Chart(wide)
        .mark_rule(color="#0f172a", strokeWidth=2)
        .encode(x="time_s:Q", opacity=alt.condition(nearest, alt.value(0.6), alt.value(0)), tooltip=tooltip)
        .add_params(nearest)
    )
    return (areas + rule).properties(height=200)


def _colour_scale() -> alt.Scale:
    return alt.Scale(domain=list(COLOURS), range=list(COLOURS.values()))


def emoji_and_name(emotion: str) -> str:
    """HTML: the emotion's emoji picture (at text height) and its name."""
    return (
        f'<img src="{emoji_data_url(emotion, EMOJI_PX)}" width="{EMOJI_PX}" alt="" '
        f'style="vertical-align:text-bottom"> {emotion}'
    )


def moments_html(changes: Sequence[Change]) -> str:
    """The moments of change as a small HTML table, each emotion with its emoji picture."""
    rows = "".join(
        f"<tr><td>{change.time_s:.1f} s</td><td>{emoji_and_name(change.before)}</td>"
        f"<td>{emoji_and_name(change.after)}</td></tr>"
        for change in changes
    )
    return (
        '<table style="width:100%;border-collapse:collapse">'
        '<tr style="text-align:left"><th>time</th><th>from</th><th>to</th></tr>'
        f"{rows}</table>"
    )
