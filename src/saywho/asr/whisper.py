"""Speech -> Word / Segment with faster-whisper (int8 on CPU, word timestamps on)."""

from __future__ import annotations

import logging
import math
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from saywho.errors import InvalidOptionError, ModelNotFoundError
from saywho.models.registry import resolve_asr_model
from saywho.runtime import split_device
from saywho.types import SAMPLE_RATE, Hook, Segment, TranscribeOptions, Word, no_progress

if TYPE_CHECKING:
    from collections.abc import Callable

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
        kind, index = split_device(device)
        model = WhisperModel(path, device=kind, device_index=index, compute_type=compute_type,
                             cpu_threads=int(threads))
    except Exception as exc:
        raise ModelNotFoundError(f"cannot load speech model '{name}': {str(exc).splitlines()[0][:200]}",
                                 param="model") from None
    model.feature_extractor = _blocked_feature_extractor(model.feature_extractor)
    model.encode = _trimmed_encode(model.encode)
    return model


# Short encoder context (``TranscribeOptions.short_context``, for live decoding).
# Whisper's encoder reads 30 s of features however short the audio: 0.75 s of 2 cores
# for tiny.en int8, most of a live decode. CTranslate2 encodes shorter inputs (10 s in
# 0.1 s); the decoder then sees less trailing silence, and on short utterances it can
# loop ("specification specification ..."). So the context is the audio plus
# SHORT_CONTEXT_MARGIN_S, at least SHORT_CONTEXT_MIN_S, and a segment whose compression
# ratio exceeds LOOP_COMPRESSION_RATIO (faster-whisper's own repetition test) is decoded
# again at full context. On 40 utterances of the dev meetings, tiny.en's words against
# base's then differed by 28.3 % (full context: 27.4 %; a 10 s context without the
# margin or the loop check: 56.6 %), with 2 of 45 inputs decoded again, in 0.42x the time.
SHORT_CONTEXT_MIN_S = 10.0
SHORT_CONTEXT_MARGIN_S = 2.0
LOOP_COMPRESSION_RATIO = 2.4
# A short-context decode that loops ran on to Whisper's 224 new tokens (". . . . ." after
# "and I'm Sheila and Texas."): 1.4 s of 2 cores for 2.2 s of audio, where the decode
# takes 0.17 s. Its new tokens are capped near what the audio can hold (speech is under
# 6 words a second, about 1.3 tokens a word), and of a decode that loops only the segments
# before the loop are kept; only a first segment that loops is decoded again at full context.
SHORT_CONTEXT_TOKENS_PER_S = 10
SHORT_CONTEXT_SPARE_TOKENS = 20
# With the prompt (at most 223 tokens in faster-whisper) within Whisper's 448 tokens.
SHORT_CONTEXT_MAX_TOKENS = 200
_FULL_CONTEXT_FRAMES = 3_000  # Whisper's 30 s of 10 ms feature frames
_encoder_frames: ContextVar[int] = ContextVar("saywho_encoder_frames", default=0)


def _trimmed_encode(encode: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
    """``WhisperModel.encode`` that reads only the first ``_encoder_frames`` feature frames
    when a short-context decode in this thread set them (0: all of them)."""

    def trimmed(features: np.ndarray) -> Any:
        frames = _encoder_frames.get()
        if frames and features.shape[-1] > frames:
            features = features[..., :frames]
        return encode(features)

    return trimmed


def short_context_tokens(duration: float) -> int:
    """The most new tokens a short-context decode of ``duration`` seconds may generate."""
    return min(SHORT_CONTEXT_MAX_TOKENS, int(SHORT_CONTEXT_TOKENS_PER_S * duration) + SHORT_CONTEXT_SPARE_TOKENS)


def short_context_frames(duration: float) -> int:
    """Encoder frames for a short-context decode of ``duration`` seconds (0: full context)."""
    seconds = max(SHORT_CONTEXT_MIN_S, math.ceil(duration + SHORT_CONTEXT_MARGIN_S))
    frames = int(seconds * 100)
    return frames if frames < _FULL_CONTEXT_FRAMES else 0


# Log-mel features of a long input are computed this many frames (60 s) at a time.
FEATURE_BLOCK_FRAMES = 6_000


def _blocked_feature_extractor(extractor: Any) -> Any:
    """faster-whisper's feature extractor, computing the same features block by block.

    faster-whisper computes the spectrogram of the whole input at once: for a 5-minute
    chunk, about 250 MB of transient frames and complex spectra, the largest peak of
    the ASR stage. STFT frames are independent, so blocks of frames give the same
    values; the one global step (the clamp at max - 8) runs on the assembled result.
    """
    base = type(extractor)

    class BlockedFeatureExtractor(base):  # type: ignore[misc, valid-type]
        def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None) -> np.ndarray:
            if chunk_length is not None:
                self.n_samples = chunk_length * self.sampling_rate
                self.nb_max_frames = self.n_samples // self.hop_length
            waveform = np.asarray(waveform, dtype=np.float32)
            if padding:
                waveform = np.pad(waveform, (0, padding))
            half = self.n_fft // 2
            if len(waveform) <= half:  # too short to reflect: the original handles it
                return super().__call__(waveform, padding=0)
            signal = np.pad(waveform, (half, half), mode="reflect")
            frames = (len(signal) - self.n_fft) // self.hop_length  # at least 1; the last is dropped
            window = np.hanning(self.n_fft + 1)[:-1].astype("float32")
            log_spec = np.empty((self.mel_filters.shape[0], frames), dtype=np.float32)
            for first in range(0, frames, FEATURE_BLOCK_FRAMES):
                last = min(first + FEATURE_BLOCK_FRAMES, frames)
                piece = signal[first * self.hop_length : (last - 1) * self.hop_length + self.n_fft]
                stft = self.stft(piece, self.n_fft, self.hop_length, window=window, center=False,
                                 return_complex=True).astype("complex64")
                magnitudes = np.abs(stft) ** 2
                mel_spec = self.mel_filters @ magnitudes
                log_spec[:, first:last] = np.log10(np.clip(mel_spec, a_min=1e-10, a_max=None))
            np.maximum(log_spec, log_spec.max() - 8.0, out=log_spec)
            log_spec += 4.0
            log_spec /= 4.0
            return log_spec

    blocked = BlockedFeatureExtractor.__new__(BlockedFeatureExtractor)
    blocked.__dict__.update(extractor.__dict__)
    return blocked


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
    frames = short_context_frames(duration) if options.short_context else 0
    if frames:
        token = _encoder_frames.set(frames)
        try:
            result = _transcribe(model, audio, options, hook=hook, on_segment=None,
                                 max_new_tokens=short_context_tokens(duration))
        finally:
            _encoder_frames.reset(token)
        loop = next((i for i, s in enumerate(result.segments) if s.compression_ratio > LOOP_COMPRESSION_RATIO), None)
        if loop is None or loop > 0:
            if loop is not None:
                logger.debug("short-context decode looped; keeping the %d segments before the loop", loop)
                kept = result.segments[:loop]
                result = replace(result, segments=kept, words=tuple(w for s in kept for w in s.words))
            if on_segment is not None:  # after the loop check: a segment shown is never taken back
                for segment in result.segments:
                    on_segment(segment)
            return result
        logger.debug("short-context decode looped; decoding %.1f s again at full context", duration)
    return _transcribe(model, audio, options, hook=hook, on_segment=on_segment)


def _transcribe(
    model: Any,
    audio: np.ndarray,
    options: TranscribeOptions,
    *,
    hook: Hook,
    on_segment: Callable[[Segment], None] | None,
    max_new_tokens: int | None = None,
) -> AsrResult:
    duration = len(audio) / SAMPLE_RATE
    hook("asr", completed=0.0, total=duration)
    try:
        raw_segments, info = model.transcribe(
            audio,
            language=options.language or None,
            task=options.task,
            beam_size=options.beam_size,
            temperature=options.temperature,
            initial_prompt=options.initial_prompt or None,
            hotwords=options.hotwords or None,
            word_timestamps=True,
            vad_filter=options.vad_filter,
            # faster-whisper's default: each 30 s window sees the text before it.
            # Without it, words that need context change inside long monologues.
            condition_on_previous_text=options.condition_on_previous_text,
            max_new_tokens=max_new_tokens,
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
        if options.skip_rest_s and seg_words and seg_words[-1].end >= duration - options.skip_rest_s:
            break  # the rest would be decoded in a window of its own (see TranscribeOptions)
    hook("asr", completed=duration, total=duration)
    return AsrResult(
        language=info.language,
        language_probability=info.language_probability,
        segments=tuple(segments),
        words=tuple(words),
        duration=duration,
    )
