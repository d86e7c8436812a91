"""A progress bar on stderr driven by the library's progress hook."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from saywho.progress import STEPS, ProgressScale


class ProgressBar:
    """Draws ``[#####.....]  45% asr  0:12 left`` on one terminal line."""

    def __init__(self, label: str = "", stream: TextIO | None = None, width: int = 28,
                 steps: tuple[tuple[str, float], ...] = STEPS) -> None:
        self._stream = stream or sys.stderr
        self._label = label
        self._width = width
        self._start = time.monotonic()
        self._last_draw = 0.0
        self.extra = ""  # e.g. "chunks 3/12"
        self.scale = ProgressScale(self._draw, steps)

    def _draw(self, percent: float, step: str) -> None:
        now = time.monotonic()
        if percent < 100 and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        filled = int(self._width * percent / 100)
        elapsed = now - self._start
        eta = ""
        if 3 < percent < 100 and elapsed > 1:
            left = elapsed * (100 - percent) / percent
            eta = f" {int(left // 60)}:{int(left % 60):02d} left"
        extra = f" {self.extra}" if self.extra else ""
        line = f"\r{self._label}[{'#' * filled}{'.' * (self._width - filled)}] {percent:3.0f}% {step:<12}{extra}{eta}"
        self._stream.write(line.ljust(100)[:120])
        self._stream.flush()

    def __call__(self, step: str, *, completed: float | None = None, total: float | None = None) -> None:
        self.scale(step, completed=completed, total=total)

    def close(self) -> None:
        self.scale.finish()
        self._stream.write("\n")
        self._stream.flush()
