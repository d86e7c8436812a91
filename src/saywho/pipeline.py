"""The whole job for one recording: decode -> ASR -> diarize -> assign -> Transcript.

``assemble`` (module ``saywho.assemble``) is shared with the long-recording path,
which produces the same ASR and diarization values chunk by chunk and stitches them
before assembling.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from saywho.asr import quiet
from saywho.asr import whisper as asr_stage
from saywho.assemble import assemble, model_names
from saywho.audio.decode import AudioSource, load_audio
from saywho.diarization.pipeline import diarize as diarize_stage
from saywho.diarization.verify import speaker_words
from saywho.models.manager import ModelManager, process_wide
from saywho.runtime import check_device, set_torch_threads
from saywho.types import (
    Diarization,
    DiarizeOptions,
    Hook,
    Identifier,
    Segment,
    TranscribeOptions,
    Transcript,
    Word,
    no_progress,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

logger = logging.getLogger(__name__)

# The process-wide ASR model manager (models kept while the process lives).
default_manager = process_wide(lambda: ModelManager(asr_stage.load_model, ttl_s=-1))


def run_asr(
    audio: np.ndarray, options: TranscribeOptions, *, hook: Hook = no_progress,
    manager: ModelManager | None = None, on_segment: Callable[[Segment], None] | None = None,
) -> asr_stage.AsrResult:
    with (manager or default_manager()).acquire(asr_stage.model_key(options)) as model:
        return asr_stage.transcribe(model, audio, options, hook=hook, on_segment=on_segment)


def run_diarization(
    audio: np.ndarray, options: DiarizeOptions, *, hook: Hook = no_progress
) -> Diarization:
    return diarize_stage(audio, options, hook=hook)


def diarize(audio: AudioSource | np.ndarray, options: DiarizeOptions | None = None, *,
            hook: Hook | None = None) -> Diarization:
    """Who spoke when, for a file path, bytes or a 16 kHz mono float32 array."""
    hook = hook or no_progress
    options = options or DiarizeOptions()
    check_device(options.device)
    hook("decode", completed=0, total=1)
    decoded = load_audio(audio)
    hook("decode", completed=1, total=1)
    return run_diarization(decoded.samples, options, hook=hook)


def transcribe(
    audio: AudioSource | np.ndarray,
    options: TranscribeOptions | None = None,
    *,
    hook: Hook | None = None,
    manager: ModelManager | None = None,
    identifier: Identifier | None = None,
    on_segment: Callable[[Segment], None] | None = None,
) -> Transcript:
    """Decode, transcribe, diarize and assign words to speakers for one recording.

    ``on_segment`` receives each ASR segment as soon as it is decoded (before speakers
    are known), for streaming text.
    """
    options = options or TranscribeOptions()
    check_device(options.device)
    hook = hook or no_progress
    hook("decode", completed=0, total=1)
    decoded = load_audio(audio)
    hook("decode", completed=1, total=1)
    words: tuple[Word, ...] | None = None
    if options.diarize:
        result, diarization = _asr_and_diarization(decoded.samples, options, hook, manager, on_segment)
        result = recover_quiet_speech(decoded.samples, result, diarization, _side_by_side(options) or options, manager)
        words = speaker_words(decoded.samples, result.words, diarization, device=options.diarize_options.device)
    else:
        result = run_asr(decoded.samples, options, hook=hook, manager=manager, on_segment=on_segment)
        diarization = None
    identities = identifier(diarization) if (identifier and diarization and options.identify) else {}
    return assemble(
        result,
        diarization,
        options,
        identities=identities,
        warnings=decoded.warnings,
        models=model_names(options),
        words=words,
    )


def _asr_and_diarization(
    samples: np.ndarray,
    options: TranscribeOptions,
    hook: Hook,
    manager: ModelManager | None,
    on_segment: Callable[[Segment], None] | None,
) -> tuple[asr_stage.AsrResult, Diarization]:
    """ASR and diarization side by side, each on its share of the CPU cores.

    Neither library scales well from one core to two, so on a CPU with no thread count
    given the cores are split between them: on 2 cores a 2-minute recording took 9.3 s
    this way against 14.5 s one after the other.
    """
    asr_options = _side_by_side(options)
    if asr_options is None:
        result = run_asr(samples, options, hook=hook, manager=manager, on_segment=on_segment)
        return result, run_diarization(samples, options.diarize_options, hook=hook)
    set_torch_threads((os.cpu_count() or 1) - asr_options.cpu_threads)  # diarization's share (set once per process)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize") as pool:
        diarization = pool.submit(run_diarization, samples, options.diarize_options, hook=hook)
        result = run_asr(samples, asr_options, hook=hook, manager=manager, on_segment=on_segment)
        return result, diarization.result()


def _side_by_side(options: TranscribeOptions) -> TranscribeOptions | None:
    """The ASR options when ASR and diarization share the CPU (ASR on half the cores),
    None when they run one after the other."""
    cores = os.cpu_count() or 1
    if options.device != "cpu" or options.cpu_threads or cores < 2:
        return None
    return replace(options, cpu_threads=max(1, cores // 2))


def recover_quiet_speech(
    samples: np.ndarray,
    result: asr_stage.AsrResult,
    diarization: Diarization,
    asr_options: TranscribeOptions,
    manager: ModelManager | None,
) -> asr_stage.AsrResult:
    """Words for quiet speech that diarization found and ASR's VAD dropped (``asr.quiet``).

    ``asr_options`` are the options ``result`` was decoded with, so that the pass uses
    the model instance already loaded for them."""
    regions = quiet.missed_regions(samples, result.words, diarization.turns)
    if not regions:
        return result
    with (manager or default_manager()).acquire(asr_stage.model_key(asr_options)) as model:
        return quiet.merged(result, *quiet.transcribe_quiet(model, samples, regions, asr_options))


def transcript_options(**overrides: Any) -> TranscribeOptions:
    """TranscribeOptions with keyword overrides (a convenience for callers and tests)."""
    return TranscribeOptions(**overrides)
