"""How long does each page take to appear and to become usable? Cold (fresh server) and warm.

    python -m benchmarks.page_load [--pages photo live ...]

For each page: start ``streamlit run app/main.py``, open the page in Debian's Chromium straight
after the server answers its health check (a cold start: nothing imported or loaded yet), and
time from navigation to (1) the page's title, (2) its first control a user acts on (an uploader,
the Start button), (3) for pages that use the model, the moment it is loaded and nothing is
running any more. Then the same page is opened again on that warm server, and by a new visitor
(a browser context with nothing cached, as most visitors of a running server). Last, on another fresh
server, a visitor reads the Home page (the Photo page for Home itself) and clicks the page in the
sidebar: a first visit by navigation.

"Blank" is the longest time the page's main block showed no words at all: from navigation to its
first words (Streamlit's front end loading, then the script's first line), or after a click, from
the moment Streamlit cleared the previous page until the new one wrote something. What the main
block shows is recorded in the page itself on every animation frame (:data:`SEEN`), so the times
are what the browser drew, not when Playwright's polling noticed it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

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

#: Run in every document of a benchmark's browser context before the page's own scripts: on each
#: animation frame after a change to the document, whether the main block shows words (visible
#: text, ``innerText``), its title and whether the sidebar shows the navigation, in ms since the
#: navigation started; and each click's time.
SEEN = """(() => {
  const seen = (window.__emojifySeen = []), clicks = (window.__emojifyClicks = []);
  let last = null, pending = false;
  const look = () => {
    pending = false;
    const main = document.querySelector('[data-testid="stMain"]');
    const words = !!(main && main.innerText.trim());
    const title = main?.querySelector("h1")?.innerText ?? null;
    const navigation = !!document.querySelector('[data-testid="stSidebarNav"]');
    if (`${words}|${title}|${navigation}` === last) return;
    last = `${words}|${title}|${navigation}`;
    seen.push([performance.now(), words, title, navigation]);
  };
  new MutationObserver(() => { if (!pending) { pending = true; requestAnimationFrame(look); } })
    .observe(document, { subtree: true, childList: true, characterData: true });
  document.addEventListener("click", () => clicks.push(performance.now()), true);
})()"""


@dataclass(frozen=True)
class Drawn:
    """Seconds from the navigation (or a click) until the main block showed words again after
    being blank (the previous page's words do not count), until its title, and the longest time in
    between that it showed no words."""

    words: float
    title: float
    blank: float


def drawn(page: browser.Page, title: str, since_click: bool = False) -> Drawn:
    """What :data:`SEEN` recorded in ``page`` from its navigation's start, or from the last click,
    until the main block's title read ``title``."""
    seen = page.evaluate("window.__emojifySeen")
    since = page.evaluate("window.__emojifyClicks.at(-1)") if since_click else 0.0
    earlier = [words for at, words, *_ in seen if at < since]
    blank_from = None if earlier and earlier[-1] else since
    blank, words_at = 0.0, None
    for at, words, heading, _ in (row for row in seen if row[0] >= since):
        if words and blank_from is not None:
            blank, blank_from = max(blank, at - blank_from), None
            words_at = at if words_at is None else words_at
        elif not words and blank_from is None:
            blank_from = at
        if heading == title:
            return Drawn(((words_at or at) - since) / 1000, (at - since) / 1000, blank / 1000)
    raise RuntimeError(f"the main block never showed the title {title!r}: {seen}")


def time_page(page: browser.Page, url: str, key: str) -> tuple[float, float, float, float]:
    """Seconds the page stayed blank, to the title, to the first control, and until no script
    run is in progress (for a page that uses the model, also until it no longer says that the
    model is loading)."""
    path, title, uses_model = PAGES[key]
    started = time.perf_counter()
    page.goto(f"{url}/{path}")
    _title(title)(page)
    _control(page, path)
    usable = time.perf_counter() - started
    if uses_model:
        loading = page.get_by_test_id("stMain").get_by_text(LOADING)
        loading.first.wait_for(state="detached", timeout=TIMEOUT_MS)
    browser.wait_until_idle(page, TIMEOUT_MS)
    idle = time.perf_counter() - started
    shown = drawn(page, title)
    return shown.blank, shown.title, usable, idle


def time_navigation(page: browser.Page, url: str, key: str) -> Drawn:
    """A visitor on a fresh server reads the Home page (the Photo page for Home), then clicks
    ``key``'s page in the sidebar."""
    first = "photo" if key == "home" else "home"
    path, title, _ = PAGES[first]
    page.goto(f"{url}/{path}")
    _title(title)(page)
    _control(page, path)
    browser.wait_until_idle(page, TIMEOUT_MS)
    page.wait_for_timeout(READING_MS)
    title = PAGES[key][1]
    link = "Home" if key == "home" else title  # the other pages' links read as their titles
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=link).click()
    _title(title)(page)
    return drawn(page, title, since_click=True)


def new_visitor(chromium: browser.Browser) -> browser.Page:
    """A page in a browser context of its own: nothing cached, no session."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(SEEN)
    return context.new_page()


#: How long the visitor of :func:`time_navigation` reads the first page before clicking.
READING_MS = 3000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.page_load", description=__doc__.split(".")[0])
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES), help="pages to time")
    args = parser.parse_args(argv)
    if (reason := browser.missing_browser()) is not None:
        parser.error(reason)
    print(f"cpu cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the start")
    print("seconds from navigation: blank / title / first control / model loaded and idle;")
    print("clicked in the sidebar on a fresh server: blank / title, from the click")
    print("(blank: the longest time the main block showed no words; warm: the same page again;")
    print(" new visitor: the page in a browser with nothing cached, on the server that served it)")
    with browser.chromium() as chromium:
        for key in args.pages:
            page, newcomer = new_visitor(chromium), new_visitor(chromium)
            with browser.streamlit_server() as url:
                cold = time_page(page, url, key)
                warm = time_page(page, url, key)
                new = time_page(newcomer, url, key)
            with browser.streamlit_server() as url:
                clicked = time_navigation(page, url, key)
            page.context.close()
            newcomer.context.close()
            print(
                f"{key:<9} cold {' / '.join(f'{t:5.2f}' for t in cold)}   "
                f"warm {' / '.join(f'{t:5.2f}' for t in warm)}   "
                f"new visitor {' / '.join(f'{t:5.2f}' for t in new)}   "
                f"clicked {clicked.blank:5.2f} / {clicked.title:5.2f}   "
                f"load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
