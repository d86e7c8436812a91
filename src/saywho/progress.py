"""One monotonic 0-100 scale over the pipeline's steps, for progress bars and job events.

Library code reports ``hook(step, completed=..., total=...)`` in each step's own unit;
``ProgressScale`` maps that onto an overall percentage that never goes backwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

# (step, share of the whole) in pipeline order; shares add up to 100.
STEPS: tuple[tuple[str, float], ...] = (
    ("decode", 5.0),
    ("asr", 50.0),
    ("segmentation", 15.0),
    ("embeddings", 25.0),
    ("clustering", 5.0),
)

# A long recording (``longform.transcribe_long``): streaming decode and chunk plan,
# chunks done / total, then global speakers and stitching.
LONG_STEPS: tuple[tuple[str, float], ...] = (
    ("decode", 4.0),
    ("chunks", 94.0),
    ("clustering", 2.0),
)


class ProgressScale:
    """Turns step-local progress into an overall percentage (monotonic, thread-safe)."""

    def __init__(
        self,
        on_update: Callable[[float, str], None],
        steps: tuple[tuple[str, float], ...] = STEPS,
    ) -> None:
        self._on_update = on_update
        self._ranges: dict[str, tuple[float, float]] = {}
        start = 0.0
        total = sum(w for _, w in steps) or 1.0
        for name, weight in steps:
            share = 100.0 * weight / total
            self._ranges[name] = (start, start + share)
            start += share
        self._percent = 0.0
        self._lock = threading.Lock()

    @property
    def percent(self) -> float:
        return self._percent

    def __call__(self, step: str, *, completed: float | None = None, total: float | None = None) -> None:
        lo, hi = self._ranges.get(step, (self._percent, self._percent))
        fraction = 0.0
        if completed is not None and total:
            fraction = min(max(completed / total, 0.0), 1.0)
        value = lo + (hi - lo) * fraction
        with self._lock:
            value = max(value, self._percent)
            self._percent = value
        self._on_update(value, step)

    def finish(self) -> None:
        with self._lock:
            self._percent = 100.0
        self._on_update(100.0, "done")
