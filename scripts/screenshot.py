"""Screenshot a page of the running app for the docs, the way a user would see it.

    python scripts/screenshot.py photo docs/photo-page.png \\
        --upload tests/fixtures/faces/london_009_happy.jpg --wait-text "Face 1:"
    FER2013_DIR=/root/data/fer2013 python scripts/screenshot.py analysis docs/analysis-page.png \\
        --click "Evaluate on PrivateTest" --wait-text "most confident"
    python scripts/screenshot.py photo docs/photo-gradcam.png \\
        --upload tests/fixtures/faces/london_009_happy.jpg --toggle "What did the model look at?" \\
        --wait-text "Grad-CAM:"
    python scripts/screenshot.py video docs/video-page.png --upload \\
        tests/fixtures/video/pexels_woman_sad_to_happy.mp4 --click Start --wait-text Timeline --video-at 14

Starts its own server and headless Chromium with the browser tests' helpers (``tests/browser.py``),
opens PAGE_PATH (``""`` for Home), optionally uploads a file, clicks buttons and switches on
toggles (by label, in order), waits for a text, optionally shows the page's video at a given
second, then saves the whole page. Streamlit scrolls inside its main block rather than the
document, so "the whole page" means growing the viewport to that block's height first. The PNG is
then re-encoded with a palette when that keeps it under ``--max-kb``, so screenshots don't bloat
the repository.
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
VIDEO = "document.querySelector('video')"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page_path", help='URL path of the page, e.g. "photo"; "" for Home')
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--upload", type=Path, help="file to put into the page's file uploader")
    parser.add_argument(
        "--camera", type=Path, help="a .y4m to play as the webcam; the page's WebRTC Start is pressed"
    )
    parser.add_argument(
        "--click",
        action="append",
        default=[],
        help="label of a button to click once the page is idle (repeatable)",
    )
    parser.add_argument(
        "--toggle",
        action="append",
        default=[],
        help="label of a toggle to switch on after the clicks, once the page is idle (repeatable)",
    )
    parser.add_argument("--wait-text", help="text that must be visible before the screenshot")
    parser.add_argument("--video-at", type=float, help="show the page's video at this second")
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
        for label in args.click:
            browser.wait_until_idle(page, TIMEOUT_MS)
            button = page.get_by_role("button", name=label).first
            expect(button).to_be_visible(timeout=TIMEOUT_MS)
            button.click()
        for label in args.toggle:
            browser.wait_until_idle(page, TIMEOUT_MS)
            toggle = page.get_by_label(label).first
            expect(toggle).to_be_attached(timeout=TIMEOUT_MS)
            toggle.check(force=True)  # Streamlit draws its own switch over the hidden checkbox
        if args.wait_text:
            expect(page.get_by_text(args.wait_text).first).to_be_visible(timeout=TIMEOUT_MS)
        browser.wait_until_idle(page, TIMEOUT_MS)
        page.wait_for_load_state("networkidle")  # images and charts fetched after the run
        if args.video_at is not None:
            page.wait_for_function(f"{VIDEO}.readyState >= 1", timeout=TIMEOUT_MS)
            page.evaluate(f"{VIDEO}.currentTime = {args.video_at}")
            page.wait_for_function(f"!{VIDEO}.seeking && {VIDEO}.readyState >= 2", timeout=TIMEOUT_MS)
        # Elements still drawing (skeletons) or images still decoding would change the page's
        # height after it is measured: wait for both, then measure.
        expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=TIMEOUT_MS)
        page.wait_for_function(
            "() => [...document.images].every(img => img.complete && img.naturalWidth > 0)",
            timeout=TIMEOUT_MS,
        )
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
