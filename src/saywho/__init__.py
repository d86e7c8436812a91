"""saywho: who said what. Diarized transcripts offline on a CPU."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# OpenMP threads that spin while waiting make torch's LSTM and convolutions 5-15x
# slower whenever another process shares the cores (measured: segmentation of 2 min
# took 34-64 s instead of 5 s on 2 busy cores). Sleeping waiters cost nothing when the
# machine is quiet. It must be set before torch loads OpenMP; users may override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .types import Diarization, Transcript

__all__ = ["__version__", "transcribe", "diarize"]


def transcribe(audio: Any, options: Any = None, *, hook: Any = None) -> Transcript:
    """Transcribe a file path or a 16 kHz mono float32 array into a diarized Transcript."""
    from .pipeline import transcribe as _transcribe

    return _transcribe(audio, options, hook=hook)


def diarize(audio: Any, options: Any = None, *, hook: Any = None) -> Diarization:
    """Who spoke when, for a file path or a 16 kHz mono float32 array."""
    from .pipeline import diarize as _diarize

    return _diarize(audio, options, hook=hook)
