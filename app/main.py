"""Emojify's entry point: ``streamlit run app/main.py``.

Every visit runs ``app/streamlit_app.py`` (the menu, then the page). It is declared here as an
``st.App`` rather than run directly because the app needs a moment that comes before the first
visitor: the server's start (:func:`starting_server`).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402  (after the path fix above, on purpose)

from app.server_sockets import send_without_delay  # noqa: E402


@asynccontextmanager
async def starting_server(_: st.App) -> AsyncIterator[None]:
    """Before the first request: the server sends its small responses at once (app.server_sockets).
    Done in the first page run instead, it came after the first visitor had loaded Streamlit's
    front end, which is where it matters most."""
    send_without_delay()
    yield


app = st.App("streamlit_app.py", lifespan=starting_server)
