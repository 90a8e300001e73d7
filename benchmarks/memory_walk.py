"""Does the server's memory stay bounded through a busy session? A walk through every page's work.

    python -m benchmarks.memory_walk --fer2013 DIR [--repeat 2] [--per-class 20]

One process does, in order, what the pages do in the server (the same functions, the same
process-wide caches: app.model_loading's models, app.video_jobs' results, Grad-CAM per model,
training.jobs' job thread): load the shipped model; every portrait of tests/fixtures/faces
through the photo pipeline, with the Grad-CAM heatmap of each face; 300 frames of the Pexels clip
through the Live page's processor; the clip through a Video job (frame step 4); three tiny
trainings on a slice of FER2013 (``--per-class`` images per class, one epoch of the classic CNN);
then an evaluation of the shipped model and of each trained one on PrivateTest (the Analysis
page's ``predict_dataset``, each model loaded as the pages load it). The walk runs ``--repeat``
times; the resident memory (VmRSS, and the peak VmHWM) is printed after every step. Bounded
caches show as a line that rises through the first walk and stays flat through the next ones.
Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH, REPO_ROOT

PHOTOS = REPO_ROOT / "tests" / "fixtures" / "faces"
VIDEO = REPO_ROOT / "tests" / "fixtures" / "video" / "pexels_woman_sad_to_happy.mp4"
LIVE_FRAMES = 300
TRAININGS = 3


def memory_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def report(step: str, started: float) -> None:
    rss, peak = memory_mb()
    print(
        f"{step:<40} RSS {rss:6.0f} MB   peak {peak:6.0f} MB   {time.monotonic() - started:6.0f} s",
        flush=True,
    )


def photos_with_heatmaps() -> int:
    """The Photo page's work on every portrait, with its "What did the model look at?" switch on."""
    from app.explain import heatmap_image
    from app.framing import crop_faces
    from app.images import read_image, to_gray
    from pages.explanation import grad_cam
    from pages.shared import load_pipeline, model_version

    pipeline = load_pipeline()
    explainer = grad_cam(model_version(), pipeline.classifier.model)
    faces_seen = 0
    for photo in sorted(PHOTOS.glob("*.jpg")):
        rgb = read_image(photo)
        faces = pipeline.analyze(rgb)
        pipeline.annotate(rgb, faces)
        for face, crop in zip(faces, crop_faces(to_gray(rgb), [f.box for f in faces]), strict=True):
            heatmap_image(explainer, crop[:, :, 0], CLASS_NAMES.index(face.emotion))
            faces_seen += 1
    return faces_seen


def live_stream() -> None:
    """The Live page's processor on a stretch of the clip, as one webcam stream."""
    from app.live import LiveProcessor
    from app.video import video_frames
    from benchmarks.live_pipeline import WEBCAM_SIZE
    from pages.shared import load_pipeline

    live = LiveProcessor(load_pipeline(), background_scan=True)
    for count, (seconds, rgb) in enumerate(video_frames(VIDEO, WEBCAM_SIZE, 5.0)):
        live.process(rgb, timestamp=seconds)
        if count >= LIVE_FRAMES:
            break


def video_job() -> None:
    """The Video page's job on the clip at frame step 4."""
    from app import video_jobs
    from app.video import VIDEO_SETTINGS
    from pages.shared import load_pipeline

    data = VIDEO.read_bytes()
    job = video_jobs.start(VIDEO.name, data, load_pipeline(), 4, VIDEO_SETTINGS, {"step": 4})
    job.done.wait()
    if job.problem is not None:
        raise RuntimeError(job.problem)


def train(fer2013: Path, runs_dir: Path, name: str, per_class: int) -> Path:
    """One tiny run through the Training page's job manager; its best model."""
    from training.config import TrainConfig
    from training.jobs import manager

    config = TrainConfig(
        data_dir=fer2013,
        run_name=name,
        arch="classic",
        epochs=1,
        batch_size=32,
        augment=False,
        limit_per_class=per_class,
        runs_dir=runs_dir,
    )
    job = manager().start(config)
    progress = job.wait()
    best = runs_dir / name / "best.keras"
    if not best.is_file():
        raise RuntimeError(f"training {name} ended without a model: {progress}")
    return best


def evaluate(models: list[Path], fer2013: Path, per_class: int) -> None:
    """The Analysis page's evaluation of each model on PrivateTest, each loaded as the pages do."""
    from app.model_loading import loaded
    from training.analysis import predict_dataset
    from training.data import load_split

    dataset = load_split(fer2013, "private_test", limit_per_class=per_class)
    for model in models:
        predict_dataset(loaded(model), dataset)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.memory_walk", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--fer2013", type=Path, default=os.environ.get("FER2013_DIR"), help="FER2013 folder ($FER2013_DIR)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="walks in a row (default 2)")
    parser.add_argument(
        "--per-class", type=int, default=20, help="FER2013 images per class for training and evaluation"
    )
    args = parser.parse_args(argv)
    if args.fer2013 is None:
        parser.error("--fer2013 DIR (or FER2013_DIR) is needed for the trainings and evaluations")
    started = time.monotonic()
    print(f"cpu cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the start")
    from app.model_loading import loaded

    report("start", started)
    with tempfile.TemporaryDirectory(prefix="emojify-walk-") as tmp:
        runs_dir = Path(tmp)
        for walk in range(1, args.repeat + 1):
            loaded(DEFAULT_MODEL_PATH)
            report(f"walk {walk}: shipped model loaded", started)
            faces = photos_with_heatmaps()
            report(f"walk {walk}: {faces} faces, photo + Grad-CAM", started)
            live_stream()
            report(f"walk {walk}: live, {LIVE_FRAMES} frames", started)
            video_job()
            report(f"walk {walk}: video job", started)
            trained = []
            for number in range(1, TRAININGS + 1):
                trained.append(train(args.fer2013, runs_dir, f"walk{walk}-{number}", args.per_class))
                report(f"walk {walk}: training {number}", started)
            evaluate([DEFAULT_MODEL_PATH, *trained], args.fer2013, args.per_class)
            report(f"walk {walk}: {1 + len(trained)} evaluations", started)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
