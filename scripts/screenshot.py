"""Screenshot a page of the running app for the docs, the way a user would see it.

    python scripts/screenshot.py photo docs/photo-page.png \\
        --upload tests/fixtures/faces/london_009_happy.jpg --wait-text "Face 1:"

Starts its own server and headless Chromium with the browser tests' helpers (``tests/browser.py``),
opens PAGE_PATH (``""`` for Home), optionally uploads a file, waits for a text, then saves the
whole page. Streamlit scrolls inside its main block rather than the document, so "the whole page"
means growing the viewport to that block's height first. The PNG is then re-encoded with a
palette when that keeps it under ``--max-kb``, so screenshots don't bloat the repository.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import browser  # lives in tests/, shared with the browser tests

TIMEOUT_MS = 120_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page_path", help='URL path of the page, e.g. "photo"; "" for Home')
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--upload", type=Path, help="file to put into the page's file uploader")
    parser.add_argument(
        "--camera", type=Path, help="a .y4m to play as the webcam; the page's WebRTC Start is pressed"
    )
    parser.add_argument("--wait-text", help="text that must be visible before the screenshot")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000, help="minimum height; taller pages grow")
    parser.add_argument("--max-kb", type=int, default=400, help="size to stay under by using a palette")
    return parser.parse_args(argv)


def capture(args: argparse.Namespace) -> bytes:
    """The page as PNG bytes, once it is loaded, fed and idle."""
    from playwright.sync_api import expect

    camera = browser.fake_camera_args(args.camera) if args.camera else []
    with browser.streamlit_server() as url, browser.chromium(camera) as chromium:
        page = chromium.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(f"{url}/{args.page_path.lstrip('/')}")
        expect(page.get_by_test_id("stMain")).to_be_visible(timeout=TIMEOUT_MS)
        if args.upload:
            browser.upload(page, args.upload)
        if args.camera:
            browser.start_webrtc(page, TIMEOUT_MS)
        if args.wait_text:
            expect(page.get_by_text(args.wait_text).first).to_be_visible(timeout=TIMEOUT_MS)
        browser.wait_until_idle(page, TIMEOUT_MS)
        page.wait_for_load_state("networkidle")  # images and charts fetched after the run
        content_height = page.get_by_test_id("stMain").evaluate("main => main.scrollHeight")
        page.set_viewport_size({"width": args.width, "height": max(args.height, content_height)})
        return page.screenshot(full_page=True)


def shrink_png(png: bytes, max_bytes: int) -> bytes:
    """``png`` optimised, as 256 colours if full colour would exceed ``max_bytes``."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    for candidate in (image, image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)):
        buffer = io.BytesIO()
        candidate.save(buffer, format="PNG", optimize=True)
        if buffer.tell() <= max_bytes:
            break
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if reason := browser.missing_browser():
        print(f"error: {reason}", file=sys.stderr)
        return 2
    png = shrink_png(capture(args), args.max_kb * 1024)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png)
    width, height = Image.open(io.BytesIO(png)).size
    print(f"{args.out}: {width}×{height}, {len(png) / 1024:.0f} kB")
    if len(png) > args.max_kb * 1024:
        print(f"warning: over {args.max_kb} kB even with a palette", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
