"""How long does each page take to appear and to become usable? Cold (fresh server) and warm.

    python -m benchmarks.page_load [--pages photo live ...]

For each page: start ``streamlit run app/main.py``, open the page in Debian's Chromium straight
after the server answers its health check (a cold start: nothing imported or loaded yet), and
time from navigation to (1) the page's title, (2) its first control a user acts on (an uploader,
the Start button), (3) for pages that use the model, the moment it is loaded and nothing is
running any more. Then the same page is opened again on that warm server.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from app.emotions import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests"))
import browser  # the browser tests' helpers: server and Chromium

TIMEOUT_MS = 120_000


def _title(name: str) -> Callable[[browser.Page], None]:
    return lambda page: page.get_by_role("heading", name=name, level=1).wait_for(timeout=TIMEOUT_MS)


def _control(page: browser.Page, path: str) -> None:
    """Wait for the control a user of ``path`` acts on first."""
    if path in ("photo", "video"):
        page.get_by_test_id("stFileUploader").first.wait_for(timeout=TIMEOUT_MS)
    elif path == "live":
        browser.webrtc_frame(page).get_by_role("button", name="START").wait_for(timeout=TIMEOUT_MS)
    elif path == "training":
        page.get_by_role("button", name="Start training").wait_for(timeout=TIMEOUT_MS)
    else:
        page.get_by_test_id("stMain").get_by_text("Seven emotions").or_(
            page.get_by_test_id("stSelectbox").first
        ).first.wait_for(timeout=TIMEOUT_MS)


#: (url path, title, whether the page loads the model)
PAGES = {
    "home": ("", "Emojify", False),
    "photo": ("photo", "Photo", True),
    "live": ("live", "Live", True),
    "video": ("video", "Video", True),
    "training": ("training", "Training", False),
    "analysis": ("analysis", "Analysis", False),
}


#: What a page that does not wait for the model (Photo) says while it loads in the background.
LOADING = "Loading the emotion model"


def time_page(page: browser.Page, url: str, key: str) -> tuple[float, float, float]:
    """Seconds to the title, to the first control, and until no script run is in progress (for a
    page that uses the model, also until it no longer says that the model is loading)."""
    path, title, uses_model = PAGES[key]
    started = time.perf_counter()
    page.goto(f"{url}/{path}")
    _title(title)(page)
    titled = time.perf_counter() - started
    _control(page, path)
    usable = time.perf_counter() - started
    if uses_model:
        loading = page.get_by_test_id("stMain").get_by_text(LOADING)
        loading.first.wait_for(state="detached", timeout=TIMEOUT_MS)
    browser.wait_until_idle(page, TIMEOUT_MS)
    return titled, usable, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.page_load", description=__doc__.split(".")[0])
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES), help="pages to time")
    args = parser.parse_args(argv)
    if (reason := browser.missing_browser()) is not None:
        parser.error(reason)
    print("seconds from navigation to: title / first control / model loaded and idle")
    with browser.chromium() as chromium:
        for key in args.pages:
            with browser.streamlit_server() as url:
                page = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                cold = time_page(page, url, key)
                warm = time_page(page, url, key)
                page.context.close()
            print(
                f"{key:<9} cold {cold[0]:5.1f} / {cold[1]:5.1f} / {cold[2]:5.1f}   "
                f"warm {warm[0]:5.1f} / {warm[1]:5.1f} / {warm[2]:5.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
