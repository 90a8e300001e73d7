"""The Analysis page's evaluations, run on a worker thread of the server and found again after a reload.

An evaluation used to run inside the page's script run (a cached function). Reloading the tab
stops that run, so the work was thrown away with it, and the reloaded page offered to start from
zero. Here each evaluation runs on one worker thread of the server process, keyed by the model
file version and the images (the page's old cache key), and stays in a small module-level
registry: every session, a reloaded tab included, finds it there running or finished, and the
page only watches it. One runs at a time: two would share (and halve) the CPU.

The work itself (:func:`evaluate_split`) is the CLI's: load the model, read the images, predict
in batches, attach the FER+ votes where the images have them (:mod:`training.ground_truth`).
Nothing here imports Streamlit; Keras only through :mod:`app.model_loading`, inside the worker.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from app import memory
from app.model_loading import loaded
from training import analysis
from training.analysis import Evaluation
from training.data import Dataset
from training.ground_truth import cached_votes, with_votes
from training.votes import VotesError, find_votes

#: Evaluations kept (each holds its images' pixels: 8 MB for PrivateTest), the newest first out last.
KEPT = 8
#: ...and the images they may hold together (about 2.5 kB each with their sources and answers, so
#: 50,000 is about 125 MB): eight 20,000-image uploads would otherwise keep 400 MB.
KEPT_IMAGES = 50_000

#: ``(phase, done, total)`` from the worker to its job.
Report = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Status:
    """What an evaluation is doing, as of one moment: ``phase`` and, while classifying, how far."""

    phase: str
    done: int = 0
    total: int = 0

    @property
    def fraction(self) -> float:
        """How far along, 0..1 (loading counts for the first 2 %)."""
        return 0.02 + 0.98 * self.done / self.total if self.total else 0.0


def describe(status: Status) -> str:
    """The status as the page's progress bar says it."""
    phase = status.phase[:1].upper() + status.phase[1:]  # not capitalize(): "PrivateTest" stays
    if status.total:
        return f"{phase}: {status.done:,} of {status.total:,} images"
    return f"{phase}…"


class EvaluationJob:
    """One evaluation on the worker: its latest :class:`Status` and, once done, its result or error."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._lock = threading.Lock()
        self._status = Status("waiting for another evaluation to finish")
        self.future: Future[Evaluation] = Future()

    def report(self, phase: str, done: int = 0, total: int = 0) -> None:
        with self._lock:
            self._status = Status(phase, done, total)

    @property
    def status(self) -> Status:
        with self._lock:
            return self._status

    @property
    def finished(self) -> bool:
        return self.future.done()


_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluation")
_lock = threading.Lock()
_jobs: OrderedDict[Hashable, EvaluationJob] = OrderedDict()


def find(key: Hashable) -> EvaluationJob | None:
    """The evaluation of ``key`` this server is running or has finished, if any."""
    with _lock:
        return _jobs.get(key)


def start(key: Hashable, label: str, work: Callable[[Report], Evaluation]) -> EvaluationJob:
    """The evaluation of ``key``: the one already there (running or done), else ``work`` queued on
    the worker. A failed one is replaced, so a fixed file or folder can be tried again."""
    with _lock:
        job = _jobs.get(key)
        if job is not None and not (job.finished and job.future.exception() is not None):
            _jobs.move_to_end(key)
            return job
        job = EvaluationJob(label)
        _jobs[key] = job
        _trim()
    _executor.submit(_run, job, work)
    return job


def _held(job: EvaluationJob) -> int:
    """How many images a job's finished result holds (0 while it runs or after it failed)."""
    if not job.finished or job.future.exception() is not None:
        return 0
    return len(job.future.result().y_true)


def _trim() -> None:
    """Drop the oldest evaluations past KEPT or KEPT_IMAGES (under ``_lock``); the newest stays."""
    while len(_jobs) > 1 and (len(_jobs) > KEPT or sum(map(_held, _jobs.values())) > KEPT_IMAGES):
        _jobs.popitem(last=False)


def forget(key: Hashable) -> None:
    """Drop ``key``'s evaluation (a failure once shown), so the page offers to start it again."""
    with _lock:
        _jobs.pop(key, None)


def _run(job: EvaluationJob, work: Callable[[Report], Evaluation]) -> None:
    try:
        job.future.set_result(work(job.report))
    except Exception as err:  # delivered to the page, which says what went wrong
        job.future.set_exception(err)
    finally:
        job.report("finished")
        with _lock:
            _trim()
        memory.release()  # the images read, a dropped evaluation and what a model load froze (app.memory)


def evaluate_split(
    model_path: Path, load: Callable[[], Dataset], label: str, *, votes: bool
) -> Callable[[Report], Evaluation]:
    """The work of one evaluation: ``model_path`` on the images ``load`` reads, with their FER+
    votes when ``votes`` (found as training finds them; none found, none attached)."""

    def work(report: Report) -> Evaluation:
        report("loading the model")
        classifier = loaded(model_path)
        report(f"reading the images of {label}")
        dataset = load()

        def progress(done: int, total: int) -> None:
            report(f"classifying {label}", done, total)

        evaluation = analysis.predict_dataset(classifier, dataset, on_progress=progress)
        if votes:
            try:
                found = cached_votes(find_votes(None, Path(dataset.root)))
            except VotesError:
                return evaluation
            evaluation, _ = with_votes(evaluation, found, Path(dataset.root))
        return evaluation

    return work
