"""One monotonic 0-100 scale over the pipeline's steps, for progress bars and job events.

Library code reports ``hook(step, completed=..., total=...)`` in each step's own unit
(``saywho.types.ProgressHook``). ``ProgressScale`` keeps each step's own fraction
done and reports their weighted sum: when ASR and diarization run side by side, their
calls interleave, and the overall figure is still the share of the work done (a
sequential "current step" scale jumped to 62% as soon as segmentation started, while
ASR was not half done). ``TimingHook`` records when each step was first and last
reported, for per-stage times in benchmarks.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

# (step, share of the whole) for one recording; shares add up to 100. ASR and the
# three diarization steps run side by side on a CPU (``pipeline.transcribe``), so
# their shares are those of their CPU time on 2 cores.
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

__all__ = ["LONG_STEPS", "STEPS", "ProgressScale", "TimingHook"]


class ProgressScale:
    """Turns step-local progress into an overall percentage (monotonic, thread-safe).

    The percentage is ``sum(share[step] * fraction_done[step])``; each step's fraction
    only grows, so the sum never goes backwards whatever order the calls come in. It
    reaches 100 only when every step is complete (or ``finish()`` is called). Steps
    not in ``steps`` leave the figure as it is.
    """

    def __init__(
        self,
        on_update: Callable[[float, str], None],
        steps: tuple[tuple[str, float], ...] = STEPS,
    ) -> None:
        self._on_update = on_update
        total = sum(w for _, w in steps) or 1.0
        self._shares = {name: 100.0 * weight / total for name, weight in steps}
        self._fractions = dict.fromkeys(self._shares, 0.0)
        self._percent = 0.0
        self._lock = threading.Lock()

    @property
    def percent(self) -> float:
        return self._percent

    def __call__(self, step: str, *, completed: float | None = None, total: float | None = None) -> None:
        with self._lock:
            if step in self._shares and completed is not None and total:
                fraction = min(max(completed / total, 0.0), 1.0)
                self._fractions[step] = max(self._fractions[step], fraction)
                value = sum(self._shares[s] * f for s, f in self._fractions.items())
                # Rounding of the sum must neither go back nor reach 100 early.
                self._percent = max(self._percent, min(value, 100.0 if value >= 100.0 - 1e-9 else 99.99))
            value = self._percent
        self._on_update(value, step)

    def finish(self) -> None:
        with self._lock:
            self._percent = 100.0
        self._on_update(100.0, "done")


class TimingHook:
    """A progress hook that records, per step, the wall-clock time of its first and last
    report: ``seconds()`` gives each step's span (steps running side by side overlap).
    ``then`` receives every call as well (e.g. a progress bar)."""

    def __init__(self, then: Callable[..., None] | None = None, clock: Callable[[], float] = time.perf_counter):
        self._then = then
        self._clock = clock
        self._lock = threading.Lock()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, step: str, *, completed: float | None = None, total: float | None = None) -> None:
        now = self._clock()
        with self._lock:
            self.first.setdefault(step, now)
            self.last[step] = now
        if self._then is not None:
            self._then(step, completed=completed, total=total)

    def seconds(self) -> dict[str, float]:
        """Seconds from each step's first report to its last, in order of first report."""
        with self._lock:
            return {s: round(self.last[s] - t, 3) for s, t in sorted(self.first.items(), key=lambda kv: kv[1])}
