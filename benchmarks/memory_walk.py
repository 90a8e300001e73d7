"""Does the server's memory stay bounded through a busy session? A user's walk through every page.

    python -m benchmarks.memory_walk --fer2013 DIR [--repeat 2] [--live-seconds 20]

Starts ``streamlit run app/main.py`` as a user would, with its own runs folder and a small slice
of FER2013 as its default dataset, then walks the pages in headless Chromium, ``--repeat`` times:
Home; four portraits of tests/fixtures/faces on the Photo page, with the "What did the model look
at?" heatmap of the first; the Live page with the Pexels clip as a fake camera for
``--live-seconds``, then Stop; the clip on the Video page (frame step 4); three short trainings on
the Training page (Tutorial CNN, ``Images per class`` 40): one finished, one stopped once its
first epoch is validating then resumed to its end, one finished; then the Analysis page: the shipped model
evaluated on the slice's PrivateTest and compared with the first training, then the second
training compared with the third. After every step it prints the server process's resident
memory (VmRSS, split into its anonymous and file-backed parts) and its peak (VmHWM) from /proc;
the most the server and its child processes (a training runs in one) held together during the
step, sampled four times a second as their proportional set size (PSS: a library page both map
counts half to each, so the sum is what the machine gave them); and the load average. The
Analysis step reports also after each evaluation. Bounded caches show as a line that rises
through the first walk and stays flat through the next ones.

Every run is on the server in local mode (training open to whoever runs it, as on your own
machine). Needs Debian's Chromium and Playwright, like the browser tests; Linux only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app.emotions import CLASS_NAMES, REPO_ROOT
from app.runs import RUNS_DIR_ENV
from benchmarks.server_memory import children, memory_mb, proportional_mb, server_pid

sys.path.insert(0, str(REPO_ROOT / "tests"))
import browser  # the browser tests' helpers: server, Chromium, fake camera

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

PHOTOS = sorted((REPO_ROOT / "tests" / "fixtures" / "faces").glob("*.jpg"))[:4]
VIDEO = REPO_ROOT / "tests" / "fixtures" / "video" / "pexels_woman_sad_to_happy.mp4"
#: Images per class in the slice: train, PublicTest (validation) and PrivateTest (evaluation).
SLICE = {
    "train": ("train", "Training_", 40),
    "public": ("test", "PublicTest_", 40),
    "private": ("test", "PrivateTest_", 100),
}
#: The Training page's "Images per class" for every run of the walk.
LIMIT_PER_CLASS = 40
VIDEO_STEP = 4
#: Generous: a busy 2-core machine traces a training graph in minutes.
TIMEOUT_MS = 600_000


def fer2013_slice(source: Path, target: Path) -> Path:
    """The first few images of each class and split of ``source``, copied in the Kaggle layout."""
    for name in CLASS_NAMES:
        for folder, prefix, count in SLICE.values():
            images = sorted((source / folder / name).glob(f"{prefix}*.jpg"))[:count]
            (target / folder / name).mkdir(parents=True, exist_ok=True)
            for image in images:
                shutil.copyfile(image, target / folder / name / image.name)
    return target


def home(page: Page, url: str) -> str:
    from playwright.sync_api import expect

    page.goto(url)
    expect(page.get_by_role("heading", name="Emojify", level=1)).to_be_visible(timeout=TIMEOUT_MS)
    browser.wait_until_idle(page, TIMEOUT_MS)
    return "Home"


def photos(page: Page, url: str) -> str:
    """Each portrait uploaded in turn; the first one's heatmap switched on."""
    from playwright.sync_api import expect

    from pages.explanation import TOGGLE_LABEL

    page.goto(f"{url}/photo")
    for number, photo in enumerate(PHOTOS):
        browser.wait_until_idle(page, TIMEOUT_MS)
        browser.upload(page, photo)
        expect(page.get_by_text(re.compile(r"^Face 1: "))).to_be_visible(timeout=TIMEOUT_MS)
        browser.wait_until_idle(page, TIMEOUT_MS)
        if number == 0:
            browser.switch_on(page.get_by_role("switch", name=TOGGLE_LABEL).first, timeout_ms=60_000)
            expect(page.get_by_test_id("stImage").nth(1)).to_be_visible(timeout=TIMEOUT_MS)
    return f"Photo: {len(PHOTOS)} portraits, one heatmap"


def live(seconds: float) -> Callable[[Page, str], str]:
    def step(page: Page, url: str) -> str:
        from playwright.sync_api import expect

        page.goto(f"{url}/live")
        browser.start_webrtc(page, TIMEOUT_MS)
        expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=TIMEOUT_MS)
        time.sleep(seconds)  # the stream runs: the length of the step, not a wait for something
        stop = browser.webrtc_frame(page).get_by_role("button", name=re.compile("^stop$", re.IGNORECASE))
        stop.click()
        expect(
            browser.webrtc_frame(page).get_by_role("button", name=re.compile("^start$", re.IGNORECASE))
        ).to_be_visible(timeout=60_000)
        return f"Live: {seconds:.0f} s streamed, stopped"

    return step


def video(page: Page, url: str) -> str:
    from playwright.sync_api import expect

    page.goto(f"{url}/video")
    expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=TIMEOUT_MS)
    browser.wait_until_idle(page, TIMEOUT_MS)
    field = page.get_by_label("Frame step", exact=True)
    field.fill(str(VIDEO_STEP))
    field.press("Enter")
    browser.wait_until_idle(page, TIMEOUT_MS)
    browser.upload(page, VIDEO)
    expect(page.get_by_text(f"frames to process at frame step {VIDEO_STEP}")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible(timeout=TIMEOUT_MS)
    return f"Video: the clip at frame step {VIDEO_STEP}"


def start_training(page: Page, url: str, name: str, epochs: int) -> None:
    """Open the Training page and start a Tutorial CNN run ``name`` on the slice."""
    from playwright.sync_api import expect

    page.goto(f"{url}/training")
    expect(page.get_by_role("heading", name="Training", level=1)).to_be_visible(timeout=TIMEOUT_MS)
    browser.wait_until_idle(page, TIMEOUT_MS)
    page.get_by_text("Tutorial CNN").click()
    expect(page.get_by_text("The CNN of the FER2013 tutorials")).to_be_visible(timeout=TIMEOUT_MS)
    browser.wait_until_idle(page, TIMEOUT_MS)
    page.get_by_text("Quick trial and reproducibility").click()
    page.get_by_label("Images per class (0 = all)", exact=True).fill(str(LIMIT_PER_CLASS))
    page.get_by_label("Epochs", exact=True).fill(str(epochs))
    page.get_by_role("textbox", name="Run name").fill(name)
    heading = page.get_by_role("heading", name=re.compile(f"^Run {name}: "))
    busy = page.get_by_text("still letting go of the CPU")
    for _ in range(30):  # a stopped run's thread may still be letting go of the CPU: "try again"
        browser.wait_until_idle(page, TIMEOUT_MS)
        page.get_by_role("button", name="Start training").click()
        try:
            expect(heading.or_(busy).first).to_be_visible(timeout=120_000)
        except AssertionError:
            continue  # the click was lost in a rerun
        if heading.count():
            return
    raise RuntimeError(f"run {name} never started")


def run_heading(page: Page, name: str, state: str) -> Locator:
    """The heading of run ``name`` in ``state``: the first, as a rerun may briefly draw it twice."""
    return page.get_by_role("heading", name=f"Run {name}: {state}").first


def trained(name: str) -> Callable[[Page, str], str]:
    def step(page: Page, url: str) -> str:
        from playwright.sync_api import expect

        start_training(page, url, name, 1)
        expect(run_heading(page, name, "finished")).to_be_visible(timeout=TIMEOUT_MS)
        return f"Training {name}: 1 epoch"

    return step


def stopped_then_resumed(name: str) -> Callable[[Page, str], str]:
    def step(page: Page, url: str) -> str:
        from playwright.sync_api import expect

        start_training(page, url, name, 3)
        progress = page.get_by_test_id("stProgress").first
        # Stopped while epoch 1 validates or once epoch 2 trains: either way epoch 1 is kept.
        kept = re.compile(r"Epoch 1 of 3: .*validating|Epoch 2 of 3: batch")
        expect(progress).to_contain_text(kept, timeout=TIMEOUT_MS)
        # The page's Stop, not the toolbar's (shown while any script run is under way: it stops
        # that run, not the training).
        page.get_by_role("main").get_by_role("button", name="Stop").first.click()
        expect(run_heading(page, name, "stopped")).to_be_visible(timeout=TIMEOUT_MS)
        resume = page.get_by_role("button", name="Resume")
        reloaded = ""
        try:
            expect(resume).to_be_visible(timeout=180_000)
        except AssertionError:  # seen on a busy machine: the page stopped polling for it
            page.reload()
            reloaded = " (Resume showed only after a reload)"
        resume.click(timeout=TIMEOUT_MS)
        expect(run_heading(page, name, "finished")).to_be_visible(timeout=TIMEOUT_MS)
        return f"Training {name}: stopped, resumed{reloaded}"

    return step


def pick(page: Page, box: str, option: str) -> None:
    """Choose the option that starts with ``option`` in the selectbox labelled ``box``.

    A rerun under way when the list opens redraws the box and closes the list (seen on a busy
    machine), so the list is opened again until the option can be clicked.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    choice = page.get_by_role("option", name=re.compile(f"^{re.escape(option)}")).first
    for _ in range(10):
        browser.wait_until_idle(page, TIMEOUT_MS)
        page.get_by_role("combobox", name=box, exact=True).click(timeout=TIMEOUT_MS)
        try:
            choice.click(timeout=30_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        browser.wait_until_idle(page, TIMEOUT_MS)
        return
    raise RuntimeError(f"{box!r} never offered {option!r}")


def evaluated(page: Page, button: str, shown: str | re.Pattern[str]) -> None:
    """Press the Evaluate button that starts with ``button`` and wait for ``shown``; an evaluation
    this server has already done (a repeated walk's) is shown at once, without the button.

    ``shown`` must name the model: right after a pick, the previous model's result may still be on
    the page (the rerun not begun yet), and a line any model's result draws passed at once.
    """
    from playwright.sync_api import expect

    press = page.get_by_role("button", name=re.compile(f"^{button}")).first
    result = page.get_by_text(shown).first
    expect(press.or_(result).first).to_be_visible(timeout=TIMEOUT_MS)
    if press.is_visible():
        press.click(timeout=TIMEOUT_MS)
    expect(result).to_be_visible(timeout=TIMEOUT_MS)
    browser.wait_until_idle(page, TIMEOUT_MS)


def evaluated_a(model: str) -> re.Pattern[str]:
    """The line over model A's result once it was evaluated on the slice's PrivateTest."""
    return re.compile(f"^{re.escape(model)}.* on PrivateTest, evaluated on the images of PrivateTest")


def analysis(
    first: str, second: str, third: str, report: Callable[[str], None]
) -> Callable[[Page, str], str]:
    """The shipped model against the first run, then the second run against the third; the
    server's memory is reported after each evaluation (``report``), as each loads a model."""

    def step(page: Page, url: str) -> str:
        from playwright.sync_api import expect

        page.goto(f"{url}/analysis")
        expect(page.get_by_role("heading", name="Analysis", level=1)).to_be_visible(timeout=TIMEOUT_MS)
        pick(page, "Images", "PrivateTest")
        report("  Analysis page open, PrivateTest picked")
        pick(page, "Model", "Shipped default")
        evaluated(page, "Evaluate on PrivateTest", evaluated_a("Shipped default"))
        report("  shipped model evaluated")
        pick(page, "Model B (A is the model above)", f"Run {first}")
        evaluated(page, "Evaluate model B on PrivateTest", f"B = Run {first}")
        report(f"  run {first} evaluated, compared")
        pick(page, "Model", f"Run {second}")
        evaluated(page, "Evaluate on PrivateTest", evaluated_a(f"Run {second} "))
        report(f"  run {second} evaluated")
        pick(page, "Model B (A is the model above)", f"Run {third}")
        evaluated(page, "Evaluate model B on PrivateTest", f"B = Run {third}")
        expect(page.get_by_test_id("stException")).to_have_count(0)
        return "Analysis: 4 evaluations, 2 comparisons"

    return step


def resident_parts_mb(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed) resident memory of ``pid`` in MB: the heap (objects, buffers, what
    the allocator keeps) apart from mapped libraries, which an import adds and nothing gives back."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["RssAnon"].split()[0]) / 1024, int(fields["RssFile"].split()[0]) / 1024


class FamilyPeak:
    """The most memory the server and its children held together (PSS), sampled in a thread."""

    def __init__(self, pid: int, every_s: float = 0.25) -> None:
        self.pid, self.every_s = pid, every_s
        self._peak = 0.0
        self._lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(target=self._sample, name="family-peak", daemon=True).start()

    def _sample(self) -> None:
        while not self._done.wait(self.every_s):
            total = 0.0
            for member in (self.pid, *children(self.pid)):
                try:
                    total += proportional_mb(member)
                except (OSError, KeyError):  # it has just exited
                    continue
            with self._lock:
                self._peak = max(self._peak, total)

    def take(self) -> float:
        """The peak since the last take, in MB."""
        with self._lock:
            peak, self._peak = self._peak, 0.0
        return peak

    def close(self) -> None:
        self._done.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.memory_walk", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--fer2013", type=Path, default=os.environ.get("FER2013_DIR"), help="FER2013 folder ($FER2013_DIR)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="walks in a row (default 2)")
    parser.add_argument("--live-seconds", type=float, default=20.0, help="length of each live stream")
    parser.add_argument("--log", type=Path, help="keep the server's output in this file")
    args = parser.parse_args(argv)
    if args.fer2013 is None:
        parser.error("--fer2013 DIR (or FER2013_DIR) is needed for the trainings and evaluations")
    if reason := browser.missing_browser():
        print(f"error: {reason}", file=sys.stderr)
        return 2
    print(f"cpu cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    with tempfile.TemporaryDirectory(prefix="emojify-walk-") as tmp:
        data = fer2013_slice(args.fer2013, Path(tmp) / "fer2013")
        camera = Path(tmp) / "camera.y4m"
        browser.write_y4m(VIDEO, camera, 13.0, 16.5)
        env = {RUNS_DIR_ENV: str(Path(tmp) / "runs"), "FER2013_DIR": str(data)}
        with (
            browser.streamlit_server(env=env, log=args.log) as url,
            browser.chromium(browser.fake_camera_args(camera)) as chromium,
        ):
            pid = server_pid(url)
            started = time.monotonic()
            family = FamilyPeak(pid)

            def report(step: str) -> None:
                rss, peak = memory_mb(pid)
                anon, files = resident_parts_mb(pid)
                elapsed = time.monotonic() - started
                print(
                    f"{step:<48} RSS {rss:6.0f} MB (anon {anon:5.0f}, files {files:4.0f})   "
                    f"peak {peak:6.0f} MB   with children (PSS) {family.take():6.0f} MB   "
                    f"{elapsed:6.0f} s   load {os.getloadavg()[0]:5.2f}",
                    flush=True,
                )

            report("server started")
            for walk in range(1, args.repeat + 1):
                context = chromium.new_context(viewport={"width": 1400, "height": 1400})
                page = context.new_page()
                runs = [f"walk{walk}-{n}" for n in ("a", "b", "c")]
                steps = [
                    home,
                    photos,
                    live(args.live_seconds),
                    video,
                    trained(runs[0]),
                    stopped_then_resumed(runs[1]),
                    trained(runs[2]),
                    analysis(*runs, report=report),
                ]
                for step in steps:
                    report(f"walk {walk}: {step(page, url)}")
                context.close()
            family.close()
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
