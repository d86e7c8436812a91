"""Speech -> Word / Segment with faster-whisper (int8 on CPU, word timestamps on)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidOptionError, ModelNotFoundError
from .models import resolve_asr_model
from .types import SAMPLE_RATE, Hook, Segment, TranscribeOptions, Word, no_progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AsrResult:
    language: str
    language_probability: float
    segments: tuple[Segment, ...]
    words: tuple[Word, ...]
    duration: float


def model_key(options: TranscribeOptions) -> str:
    """The model manager key for an ASR model with its runtime settings."""
    return f"asr|{options.model}|{options.device}|{options.compute_type}|{options.cpu_threads}"


def load_model(key: str) -> Any:
    """Loader for the model manager: ``key`` comes from ``model_key``."""
    _, name, device, compute_type, threads = key.split("|")
    path = resolve_asr_model(name)
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=int(threads))
    except Exception as exc:  # hub unreachable, corrupt directory, bad device...
        raise ModelNotFoundError(f"cannot load speech model '{name}': {str(exc).splitlines()[0][:200]}",
                                 param="model") from None


def transcribe(
    model: Any,
    audio: np.ndarray,
    options: TranscribeOptions,
    *,
    hook: Hook = no_progress,
    on_segment: Callable[[Segment], None] | None = None,
) -> AsrResult:
    """Run faster-whisper over a whole 16 kHz mono array and collect typed results.

    ``on_segment`` sees each segment as soon as it is decoded (for streaming).
    """
    duration = len(audio) / SAMPLE_RATE
    if options.language and not model.model.is_multilingual and options.language != "en":
        raise InvalidOptionError(
            f"model '{options.model}' is English-only; use a multilingual model such as 'base' "
            f"for language '{options.language}'",
            param="language",
        )
    if options.task == "translate" and not model.model.is_multilingual:
        raise InvalidOptionError(
            f"model '{options.model}' is English-only and cannot translate; use 'base'", param="model"
        )
    hook("asr", completed=0.0, total=duration)
    try:
        raw_segments, info = model.transcribe(
            audio,
            language=options.language or None,
            task=options.task,
            beam_size=options.beam_size,
            temperature=options.temperature,
            initial_prompt=options.initial_prompt or None,
            word_timestamps=True,
            vad_filter=options.vad_filter,
            condition_on_previous_text=False,
        )
    except ValueError as exc:  # unknown language code and the like
        raise InvalidOptionError(str(exc), param="language") from None

    segments: list[Segment] = []
    words: list[Word] = []
    for raw in raw_segments:  # a generator: decoded lazily, consumed exactly once
        seg_words = tuple(
            Word(start=round(float(w.start), 3), end=round(float(w.end), 3), text=w.word,
                 probability=round(float(w.probability), 4))
            for w in (raw.words or ())
            if w.word.strip()
        )
        segments.append(
            Segment(
                id=len(segments),
                start=round(float(raw.start), 3),
                end=round(float(raw.end), 3),
                text=raw.text,
                words=seg_words,
                seek=raw.seek,
                tokens=tuple(raw.tokens),
                temperature=float(raw.temperature or 0.0),
                avg_logprob=float(raw.avg_logprob),
                compression_ratio=float(raw.compression_ratio),
                no_speech_prob=float(raw.no_speech_prob),
            )
        )
        words.extend(seg_words)
        if on_segment is not None:
            on_segment(segments[-1])
        hook("asr", completed=min(raw.end, duration), total=duration)
    hook("asr", completed=duration, total=duration)
    return AsrResult(
        language=info.language,
        language_probability=info.language_probability,
        segments=tuple(segments),
        words=tuple(words),
        duration=duration,
    )
