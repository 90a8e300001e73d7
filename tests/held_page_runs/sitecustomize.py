"""Loaded by a test's app server (this folder on its PYTHONPATH): lets the test hold a page run at
the last step of a full script run, where Streamlit drops the fragments that run did not draw.

A busy machine can pause a script thread there for seconds (load 20-35 on 2 cores); a test can't
wait for that to happen by chance. While the file named by ``EMOJIFY_HOLD_FRAGMENT_CLEANUP``
exists, each full run appends a line to ``<that file>.waiting`` and waits there until the test
removes the file. Nothing else changes: the run then does what it would have done.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

HOLD = os.environ.get("EMOJIFY_HOLD_FRAGMENT_CLEANUP")

if HOLD:
    from streamlit.runtime.fragment import MemoryFragmentStorage

    _clear = MemoryFragmentStorage.clear

    def _held_clear(self: MemoryFragmentStorage, new_fragment_ids: frozenset[str] | None = None) -> None:
        hold = Path(HOLD)
        if hold.exists():
            with hold.with_name(hold.name + ".waiting").open("a") as waiting:
                waiting.write(f"{sorted(new_fragment_ids or ())}\n")
            while hold.exists():
                time.sleep(0.05)
        _clear(self, new_fragment_ids)

    MemoryFragmentStorage.clear = _held_clear
