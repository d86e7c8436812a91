"""saywho: who said what. Diarized transcripts offline on a CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from saywho.types import Diarization, Transcript

__all__ = ["__version__", "diarize", "transcribe"]


def transcribe(audio: Any, options: Any = None, *, hook: Any = None) -> Transcript:
    """Transcribe a file path or a 16 kHz mono float32 array into a diarized Transcript."""
    from saywho.pipeline import transcribe as _transcribe  # lazy: `import saywho` loads no models

    return _transcribe(audio, options, hook=hook)


def diarize(audio: Any, options: Any = None, *, hook: Any = None) -> Diarization:
    """Who spoke when, for a file path or a 16 kHz mono float32 array."""
    from saywho.pipeline import diarize as _diarize  # lazy: `import saywho` loads no models

    return _diarize(audio, options, hook=hook)
