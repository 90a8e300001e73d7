"""The script Streamlit runs for every visit and page view: the menu, then the page.

``app/main.py`` declares it to Streamlit (``streamlit run app/main.py``). Streamlit puts ``app/``
rather than the repository root on ``sys.path``; the root goes first so that ``app``, ``pages``,
``model`` and ``training`` import as packages everywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402  (after the path fix above, on purpose)
from streamlit.logger import get_logger  # noqa: E402

# The model loader's progress and timings go to the server's log, in Streamlit's format (once).
get_logger("app.model_loading")
get_logger("app.light_runtime")
# aiortc reports a video sender that died (its send loop ends on an exception) only as a warning:
# without this it never reached the log, while that browser's picture stood still for good.
get_logger("aiortc")

# Everything up to the imports below reaches the browser at once: a server's first visitor waits
# for those imports (~0.5 s of CPU, more on a busy machine) with a line that says what happens and
# the menu, rather than an empty page. Later visits find them imported.
st.set_page_config(page_title="Emojify", layout="wide")
# The line's slot is taken in every run, not only in the first: Streamlit names a fragment after
# its place on the page, so a slot in the first run alone renamed every fragment in the next one
# and the browser's timed redraws of the old names were dropped (the Live panel could freeze).
starting_slot = st.empty()
starting = starting_slot if "pages.shared" not in sys.modules else None
if starting is not None:
    starting.caption("Starting Emojify…")

# The menu icons are Material Symbols (a font Streamlit ships): emoji characters turn into empty
# boxes where no emoji font is installed.
PAGES = ROOT / "pages"
navigation = st.navigation(
    [
        st.Page(PAGES / "home.py", title="Home", icon=":material/home:", default=True),
        st.Page(PAGES / "photo.py", title="Photo", icon=":material/photo_camera:", url_path="photo"),
        st.Page(PAGES / "live.py", title="Live", icon=":material/videocam:", url_path="live"),
        st.Page(PAGES / "video.py", title="Video", icon=":material/movie:", url_path="video"),
        st.Page(
            PAGES / "training.py", title="Training", icon=":material/model_training:", url_path="training"
        ),
        st.Page(PAGES / "analysis.py", title="Analysis", icon=":material/analytics:", url_path="analysis"),
    ]
)

if starting is not None:
    # The model loads meanwhile when LiteRT serves it: ready by the time the page asks for it.
    from app.model_loading import load_now_if_light
    from app.runs import active_model_path

    load_now_if_light(active_model_path())

from pages.shared import access, run_page, warm_up  # noqa: E402

# The tab icon is the shipped happy emoji picture, for the same reason as the menu's. Streamlit
# reads an image icon with NumPy and Pillow, imported just now: given above, their import (half a
# second on a busy machine) came before the first words.
st.set_page_config(page_icon=str(ROOT / "emojis" / "happy.png"))
# A public switch that is neither on nor off is read as on (app.access); the owner must see why.
if problem := access().problem:
    st.error(problem, icon=":material/lock:")
try:
    # The first page's own imports follow: the starting line stays until it is drawn.
    run_page(navigation, announced=starting is not None)
finally:
    if starting is not None:
        starting.empty()
    # Once the first page a visitor opens is drawn, TensorFlow and the active model load in the
    # background (app.model_loading): started earlier, the import slows the drawing itself down.
    # streamlit-webrtc (aiortc, PyAV: 1-2 s) is imported by the Live page alone: here, before the
    # first page, it kept that page empty; on a thread after it, it slowed the first photo's
    # result. It no longer has to come before TensorFlow: app.keras_env sees to aiortc's SRTP
    # library.
    warm_up()
