"""One chunk of a long recording: ASR + diarization with local labels (``ChunkResult``
and ``chunk_options`` live in ``result``, re-exported here)."""

from __future__ import annotations

import numpy as np

from saywho.diarization.verify import speaker_words
from saywho.longform.result import ChunkResult, chunk_options
from saywho.models.manager import ModelManager
from saywho.pipeline import model_names, recover_quiet_speech, run_asr, run_diarization
from saywho.types import SAMPLE_RATE, Diarization, Hook, TranscribeOptions, no_progress

__all__ = ["ChunkResult", "chunk_options", "diarize_chunk", "process_chunk"]


def process_chunk(
    samples: np.ndarray, options: TranscribeOptions, *, hook: Hook = no_progress, manager: ModelManager | None = None
) -> ChunkResult:
    """Transcribe and diarize one chunk (16 kHz mono float32) with local labels.

    The speaker-count hint of ``options`` is taken as given: callers that cut a
    recording pass ``chunk_options(options)``. ``manager`` holds the ASR models (the
    server's worker passes its own, which unloads idle models); default: the
    process-wide one.
    """
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    asr = run_asr(samples, options, hook=hook, manager=manager)
    words = asr.words
    if options.diarize:
        diarization = run_diarization(samples, options.diarize_options, hook=hook)
        asr = recover_quiet_speech(samples, asr, diarization, options, manager)
        words = speaker_words(samples, asr.words, diarization, device=options.diarize_options.device)
    else:
        diarization = Diarization(duration=len(samples) / SAMPLE_RATE, turns=(), exclusive=(), speakers=())
    return ChunkResult(
        duration=len(samples) / SAMPLE_RATE,
        segments=diarization.turns,
        speakers_detected=diarization.speakers,
        fingerprints=dict(diarization.fingerprints),
        words=words,
        models=model_names(options),
        language=asr.language,
        language_probability=asr.language_probability,
        exclusive=diarization.exclusive,
        asr_segments=asr.segments,
    )


def diarize_chunk(
    samples: np.ndarray, options: TranscribeOptions, *, hook: Hook = no_progress, manager: ModelManager | None = None
) -> ChunkResult:
    """Diarize one chunk without ASR (``saywho diarize`` on a long recording): turns,
    local speakers and their fingerprints, no words."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    diarization = run_diarization(samples, options.diarize_options, hook=hook)
    return ChunkResult(
        duration=len(samples) / SAMPLE_RATE,
        segments=diarization.turns,
        speakers_detected=diarization.speakers,
        fingerprints=dict(diarization.fingerprints),
        words=(),
        models={k: v for k, v in model_names(options).items() if k != "asr"},
        language=options.language or "",
        exclusive=diarization.exclusive,
    )
