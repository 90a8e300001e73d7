"""training.evaluation_jobs: an evaluation outlives the page run that started it (issue 23, item 17).

A reload stops the page's script run; the evaluation must go on in the server and be found by the
reloaded page, once, with its result. The work here is a stand-in that waits for the test, so the
test decides when it is "in the middle"; the real work is covered by the Analysis page tests.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from training import evaluation_jobs
from training.analysis import Evaluation
from training.data import DatasetError
from training.evaluation_jobs import Status, describe


def tiny_evaluation() -> Evaluation:
    return Evaluation(
        "x", np.zeros(1, int), np.eye(7, dtype=np.float32)[:1], np.zeros((1, 48, 48), np.uint8), ("a",)
    )


def test_an_evaluation_goes_on_without_its_page_and_is_found_again() -> None:
    release, calls = threading.Event(), []

    def work(report):
        calls.append(1)
        report("classifying x", 3, 10)
        assert release.wait(30)
        return tiny_evaluation()

    key = ("model", "images-1")
    started = evaluation_jobs.start(key, "x", work)
    # The page that started it is gone (a reload); the new page finds the same job mid-way.
    found = evaluation_jobs.find(key)
    assert found is started
    for _ in range(300):
        if found.status.done == 3:
            break
        threading.Event().wait(0.01)
    assert found.status == Status("classifying x", 3, 10) and not found.finished
    assert describe(found.status) == "Classifying x: 3 of 10 images"
    assert describe(Status("reading the images of PrivateTest")) == "Reading the images of PrivateTest…"
    assert evaluation_jobs.start(key, "x", work) is started  # asking again does not start it again

    release.set()
    assert found.future.result(timeout=30).sources == ("a",)
    assert evaluation_jobs.find(key).finished and calls == [1]


def test_a_failed_evaluation_is_reported_and_can_be_started_again() -> None:
    key = ("model", "images-2")

    def broken(report):
        raise DatasetError("no images in /nowhere")

    failed = evaluation_jobs.start(key, "x", broken)
    with pytest.raises(DatasetError, match="no images"):
        failed.future.result(timeout=30)

    retried = evaluation_jobs.start(key, "x", lambda report: tiny_evaluation())
    assert retried is not failed and retried.future.result(timeout=30).split == "x"
    evaluation_jobs.forget(key)
    assert evaluation_jobs.find(key) is None


def test_only_the_newest_evaluations_are_kept() -> None:
    jobs = [
        evaluation_jobs.start(("model", f"many-{i}"), "x", lambda report: tiny_evaluation())
        for i in range(12)
    ]
    for job in jobs:
        job.future.result(timeout=30)

    kept = [evaluation_jobs.find(("model", f"many-{i}")) for i in range(12)]
    assert kept[-evaluation_jobs.KEPT :] == jobs[-evaluation_jobs.KEPT :]
    assert kept[: 12 - evaluation_jobs.KEPT] == [None] * (12 - evaluation_jobs.KEPT)


def test_the_kept_evaluations_hold_a_bounded_number_of_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight 20,000-image uploads would keep 400 MB of pixels: the images held are bounded too."""
    monkeypatch.setattr(evaluation_jobs, "KEPT_IMAGES", 25)

    def images(n: int) -> Evaluation:
        return Evaluation(
            "x",
            np.zeros(n, int),
            np.eye(7, dtype=np.float32)[np.zeros(n, int)],
            np.zeros((n, 48, 48), np.uint8),
            tuple("a" * n),
        )

    jobs = [evaluation_jobs.start(("model", f"big-{i}"), "x", lambda report: images(10)) for i in range(4)]
    for job in jobs:
        job.future.result(timeout=30)
    newest = evaluation_jobs.start(("model", "huge"), "x", lambda report: images(40))
    newest.future.result(timeout=30)

    kept = [evaluation_jobs.find(("model", f"big-{i}")) for i in range(4)]
    assert evaluation_jobs.find(("model", "huge")) is newest  # the newest stays, however big
    assert kept == [None] * 4
