"""A progress bar on stderr (tqdm) driven by the library's progress hook."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from saywho.progress import STEPS, ProgressScale


class ProgressBar:
    """``45%|#####     | [00:12<00:15, asr, chunks 3/12]`` on one terminal line.

    tqdm (already installed with faster-whisper) draws the bar and estimates the time
    left; ``ProgressScale`` supplies one honest 0-100 figure across steps that run side
    by side. ``close()`` completes the bar; ``close(interrupted=True)`` leaves it where
    it stopped and says so. While the bar is open, log records (saywho's, Ray's and
    other libraries' that reach the root logger) are written above it, never over it.
    """

    def __init__(self, label: str = "", stream: TextIO | None = None, width: int = 28,
                 steps: tuple[tuple[str, float], ...] = STEPS) -> None:
        self._bar = tqdm(total=100.0, desc=label.strip() or None, file=stream or sys.stderr, ncols=width + 60,
                         bar_format="{desc}{percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]",
                         mininterval=0.1, leave=True, dynamic_ncols=False)
        self.extra = ""  # e.g. "chunks 3/12"
        self.scale = ProgressScale(self._draw, steps)
        self._logs = logging_redirect_tqdm(loggers=[logging.getLogger()], tqdm_class=tqdm)
        self._logs.__enter__()

    def _draw(self, percent: float, step: str) -> None:
        self._bar.set_postfix_str(f"{step}, {self.extra}" if self.extra else step, refresh=False)
        self._bar.update(percent - self._bar.n)

    def __call__(self, step: str, *, completed: float | None = None, total: float | None = None) -> None:
        self.scale(step, completed=completed, total=total)

    def close(self, *, interrupted: bool = False) -> None:
        if interrupted:
            self._bar.set_postfix_str("interrupted", refresh=True)
        else:
            self.scale.finish()
        self._bar.close()
        self._logs.__exit__(None, None, None)
