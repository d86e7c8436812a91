"""saywho: who said what. Diarized transcripts offline on a CPU."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any


def _cores_are_busy() -> bool:
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:
        return False


# OpenMP threads that spin while waiting make torch's LSTM and convolutions 2-15x
# slower when another process holds the cores (2 min of diarization: 17 s instead of
# 9 s with one core busy; 34-64 s on a machine loaded 6x), while on idle cores spinning
# is twice as fast (5 s against 9 s). So: sleep-waiting only when the cores are already
# busy as saywho starts. It must be decided before torch loads OpenMP; an explicit
# OMP_WAIT_POLICY is left alone.
if "OMP_WAIT_POLICY" not in os.environ and _cores_are_busy():
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .types import Diarization, Transcript

__all__ = ["__version__", "diarize", "transcribe"]


def transcribe(audio: Any, options: Any = None, *, hook: Any = None) -> Transcript:
    """Transcribe a file path or a 16 kHz mono float32 array into a diarized Transcript."""
    from .pipeline import transcribe as _transcribe

    return _transcribe(audio, options, hook=hook)


def diarize(audio: Any, options: Any = None, *, hook: Any = None) -> Diarization:
    """Who spoke when, for a file path or a 16 kHz mono float32 array."""
    from .pipeline import diarize as _diarize

    return _diarize(audio, options, hook=hook)
