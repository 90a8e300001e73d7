"""The Live page's verdict panel as one HTML element: header, chart and the narrow-screen line.

One element, built from one :class:`app.live.Verdict`, so its parts cannot disagree: drawn as
separate Streamlit elements, a fragment rerun replaced the header before the chart and the
chart's Vega view redrew later still, and the header and the chart's highlighted bar were
seen from different moments. The element carries the verdict in ``data-`` attributes (its
number, emotion and confidence as the labels print it) for the browser tests, and the number of
the redraw that drew it (``data-drawn``): the browser's watch (pages/live_watch.py) asks for a full
rerun when that number stops changing while the video plays, because then the panel's periodic
redraw has stopped and it shows a moment long gone.

On a narrow screen Streamlit stacks the page's columns, which put the panel below the video; the
element's compact line (emoji, emotion, confidence, or the stream's state) is then pinned under
the app's header, so the verdict and the video are seen together. On a wide screen it is hidden.
"""

from __future__ import annotations

from html import escape

from app.emotions import CLASS_NAMES
from app.live import SmoothedFace, Verdict
from pages.shared import emoji_data_url

#: Streamlit stacks columns below this width (its own breakpoint): the compact line shows there.
NARROW_MAX_PX = 640
HEADER_EMOJI_PX = 72
COMPACT_EMOJI_PX = 28
BAR_EMOJI_PX = 18
#: The probability chart's colours, as on the other pages' charts (pages/charts.py).
SHOWN_COLOUR = "#f59e0b"
OTHER_COLOUR = "#94a3b8"

STYLE = f"""<style>
.live-panel h3 {{ margin: 0; padding: 0; font-size: 1.75rem; line-height: 1.2; }}
.live-panel p {{ margin: 0.25rem 0; }}
.live-panel .muted {{ color: rgba(49, 51, 63, 0.6); font-size: 0.875rem; }}
.live-head {{ display: flex; align-items: center; gap: 1rem; margin-bottom: 0.5rem; }}
.live-bars {{ display: grid; grid-template-columns: {BAR_EMOJI_PX}px 4.5rem 1fr 2.5rem;
  align-items: center; gap: 0.25rem 0.5rem; font-size: 0.875rem; margin: 0.5rem 0; }}
.live-bars .track {{ background: #f1f5f9; border-radius: 3px; height: 14px; }}
.live-bars .bar {{ background: {OTHER_COLOUR}; border-radius: 0 3px 3px 0; height: 14px; }}
.live-bars .shown .bar {{ background: {SHOWN_COLOUR}; }}
.live-bars .shown {{ font-weight: 600; }}
.live-bars .row {{ display: contents; }}
.live-compact {{ display: none; }}
@media (max-width: {NARROW_MAX_PX}px) {{
  .live-compact {{ display: flex; align-items: center; gap: 0.5rem; position: fixed; top: 3.75rem;
    left: 0; right: 0; z-index: 1000; padding: 0.35rem 1rem; background: #ffffff;
    border-bottom: 1px solid #e2e8f0; box-shadow: 0 2px 4px rgba(0, 0, 0, 0.08); font-size: 1rem; }}
  .live-compact img {{ flex: none; }}
}}
</style>"""


def status_html(state: str, title: str, detail: str, verdict: Verdict | None = None, *, drawn: int) -> str:
    """The panel while there is no face to describe: what the stream is doing, and what to do.

    ``verdict`` is the faceless verdict the video draws meanwhile, if there is one; ``drawn``
    counts the panel's redraws.
    """
    compact = f'<div class="live-compact" data-testid="live-compact">{escape(title)}</div>'
    body = f"<h3>{escape(title)}</h3><p class='muted'>{detail}</p>"
    number = "" if verdict is None else f' data-verdict="{verdict.number}"'
    return _panel(f'data-state="{state}"{number}', compact + body, drawn)


def verdict_html(verdict: Verdict, *, drawn: int) -> str:
    """The main face's emoji, emotion, confidence and probabilities, and the other faces'."""
    face = verdict.main_face
    if face is None:
        raise ValueError("a verdict without a face has no emotion to show: use status_html")
    confidence = f"{face.confidence:.0%}"
    compact = (
        f'<div class="live-compact" data-testid="live-compact">{_emoji(face.emotion, COMPACT_EMOJI_PX)}'
        f"<strong>{face.emotion}</strong> {confidence} confident</div>"
    )
    head = (
        f'<div class="live-head">{_emoji(face.emotion, HEADER_EMOJI_PX)}'
        f"<div><h3>{face.emotion}</h3><p>{confidence} confident</p></div></div>"
    )
    held = ""
    if face.held:
        leader = face.probabilities[CLASS_NAMES.index(face.leader)]
        held = (
            f"<p class='muted'>Held: {face.leader} leads with {leader:.0%}, not yet clearly enough to "
            "switch (lower <em>Smoothing</em> to switch sooner).</p>"
        )
    others = ""
    if len(verdict.faces) > 1:
        names = ", ".join(f"{other.emotion} ({other.confidence:.0%})" for other in verdict.faces[1:])
        others = f"<p class='muted'>{len(verdict.faces)} faces; the others: {names}</p>"
    attributes = (
        f'data-state="face" data-verdict="{verdict.number}" data-emotion="{face.emotion}" '
        f'data-confidence="{confidence}"'
    )
    return _panel(attributes, compact + head + held + _bars(face) + others, drawn)


def _bars(face: SmoothedFace) -> str:
    """One bar per emotion in class order, the shown one highlighted: the Photo page's chart, in HTML."""
    rows = []
    for name, probability in zip(CLASS_NAMES, face.probabilities, strict=True):
        shown = " shown" if name == face.emotion else ""
        rows.append(
            f'<div class="row{shown}" data-emotion="{name}">{_emoji(name, BAR_EMOJI_PX)}'
            f"<span>{name}</span>"
            f'<div class="track"><div class="bar" style="width: {probability:.1%}"></div></div>'
            f"<span>{probability:.0%}</span></div>"
        )
    return f'<div class="live-bars" data-testid="live-bars">{"".join(rows)}</div>'


def _emoji(emotion: str, width: int) -> str:
    source = emoji_data_url(emotion, width)
    return f'<img src="{source}" width="{width}" height="{width}" alt="{emotion} emoji">'


def _panel(attributes: str, content: str, drawn: int) -> str:
    return (
        f'{STYLE}<div class="live-panel" data-testid="live-panel" {attributes} data-drawn="{drawn}">'
        f"{content}</div>"
    )
