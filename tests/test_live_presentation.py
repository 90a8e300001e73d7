"""benchmarks.live_browser's reading of presented-frame times: rates, freezes and recoveries.

The soak test and the issue-25 benchmark judge the Live page by these numbers, so they are
checked here on frame times whose answer is known: a steady 25 frames/s, and the same with the
picture frozen for 3 s and then recovering.
"""

from __future__ import annotations

import pytest

from benchmarks.live_browser import presentation

FRAME_MS = 40.0  # 25 frames/s


def steady(start_ms: float, end_ms: float) -> list[float]:
    return [start_ms + i * FRAME_MS for i in range(int((end_ms - start_ms) / FRAME_MS))]


def test_a_steady_picture_has_no_freeze():
    shown = presentation(steady(0, 10_000), 0, 10_000)
    assert shown["presented_fps"] == pytest.approx(25.0)
    assert shown["windows_fps"] == (25.0, 25.0)
    assert shown["freezes"] == shown["longest_recovery_s"] == 0


def test_a_frozen_picture_counts_until_it_moves_again():
    times = steady(0, 4_000) + steady(7_000, 10_000)  # nothing presented from 3.96 s to 7 s
    shown = presentation(times, 0, 10_000)
    assert shown["freezes"] == 1
    assert shown["longest_freeze_s"] == pytest.approx(3.04)
    # Recovered at the fifth frame within a second after the gap: 7.16 s, 3.2 s after the last one.
    assert shown["longest_recovery_s"] == pytest.approx(3.2)
    assert shown["worst_window_fps"] == pytest.approx(15.0)


def test_a_picture_still_frozen_at_the_end_counts_to_the_end():
    shown = presentation(steady(0, 2_000), 0, 10_000)
    assert shown["longest_freeze_s"] == shown["longest_recovery_s"] == pytest.approx(8.04)
    assert shown["worst_window_fps"] == 0.0
