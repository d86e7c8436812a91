"""One chunk of a long recording: ASR + diarization with local labels, and its result type."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from saywho.diarization.verify import speaker_words
from saywho.models.manager import ModelManager
from saywho.pipeline import model_names, recover_quiet_speech, run_asr, run_diarization
from saywho.types import (
    SAMPLE_RATE,
    Diarization,
    Hook,
    Segment,
    SpeakerCount,
    SpeakerTurn,
    TranscribeOptions,
    Word,
    no_progress,
)


def _turn_dicts(turns: Iterable[SpeakerTurn]) -> list[dict[str, Any]]:
    return [{"start_s": t.start, "end_s": t.end, "speaker": t.speaker} for t in turns]


def _turns_from(items: Iterable[dict[str, Any]]) -> tuple[SpeakerTurn, ...]:
    return tuple(SpeakerTurn(float(x["start_s"]), float(x["end_s"]), str(x["speaker"])) for x in items)


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """What one chunk yields. Times are seconds from the chunk's start; labels are local.

    ``segments`` are overlap-aware speaker turns, ``exclusive`` one speaker at a time
    (for word assignment); ``fingerprints`` one unit-norm voice embedding per local
    speaker; ``words`` carry their local speaker.
    """

    duration: float
    segments: tuple[SpeakerTurn, ...]
    speakers_detected: tuple[str, ...]
    fingerprints: dict[str, tuple[float, ...]]
    words: tuple[Word, ...]
    models: dict[str, str] = field(default_factory=dict)
    language: str = ""
    language_probability: float = 0.0
    exclusive: tuple[SpeakerTurn, ...] = ()
    asr_segments: tuple[Segment, ...] = ()

    def speech_s(self) -> dict[str, float]:
        """Seconds of speech per local speaker."""
        totals = dict.fromkeys(self.speakers_detected, 0.0)
        for t in self.segments:
            totals[t.speaker] = totals.get(t.speaker, 0.0) + t.duration
        return totals

    def to_dict(self) -> dict[str, Any]:
        """The per-chunk JSON (``POST /v1/audio/diarize-chunk``).

        The keys ``duration, segments, speakers_detected, fingerprints, words, models``
        are the contract; ``language``, ``language_probability``,
        ``exclusive_segments`` and ``asr_segments`` are additions the stitcher needs
        to build a Transcript identical to a short file's.
        """
        return {
            "duration": round(self.duration, 3),
            "segments": _turn_dicts(self.segments),
            "speakers_detected": list(self.speakers_detected),
            "fingerprints": {k: [float(x) for x in v] for k, v in self.fingerprints.items()},
            "words": [
                {"word": w.text, "start": w.start, "end": w.end, "probability": w.probability, "speaker": w.speaker}
                for w in self.words
            ],
            "models": dict(self.models),
            "language": self.language,
            "language_probability": self.language_probability,
            "exclusive_segments": _turn_dicts(self.exclusive),
            "asr_segments": [
                {"id": s.id, "num_words": len(s.words), "seek": s.seek, "start": s.start, "end": s.end, "text": s.text,
                 "tokens": list(s.tokens), "temperature": s.temperature, "avg_logprob": s.avg_logprob,
                 "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}
                for s in self.asr_segments
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkResult:
        words = tuple(
            Word(float(w["start"]), float(w["end"]), str(w["word"]), float(w.get("probability", 1.0)),
                 w.get("speaker"))
            for w in d.get("words", ())
        )
        # The words of the ASR segments, in order, are ``words`` (without speakers).
        plain = [Word(w.start, w.end, w.text, w.probability) for w in words]
        asr_segments = []
        taken = 0
        for s in d.get("asr_segments", ()):
            n = int(s.get("num_words", 0))
            asr_segments.append(Segment(
                id=int(s["id"]), start=float(s["start"]), end=float(s["end"]), text=s["text"],
                words=tuple(plain[taken: taken + n]), seek=int(s.get("seek", 0)), tokens=tuple(s.get("tokens", ())),
                temperature=float(s.get("temperature", 0.0)), avg_logprob=float(s.get("avg_logprob", 0.0)),
                compression_ratio=float(s.get("compression_ratio", 0.0)),
                no_speech_prob=float(s.get("no_speech_prob", 0.0)),
            ))
            taken += n
        return cls(
            duration=float(d["duration"]),
            segments=_turns_from(d.get("segments", ())),
            speakers_detected=tuple(d.get("speakers_detected", ())),
            fingerprints={k: tuple(float(x) for x in v) for k, v in d.get("fingerprints", {}).items()},
            words=words,
            models=dict(d.get("models", {})),
            language=str(d.get("language", "")),
            language_probability=float(d.get("language_probability", 0.0)),
            exclusive=_turns_from(d.get("exclusive_segments", ())),
            asr_segments=tuple(asr_segments),
        )


def chunk_options(options: TranscribeOptions) -> TranscribeOptions:
    """Options for one chunk: a chunk may hold fewer speakers than the recording, so
    only an upper bound of the speaker-count hint applies to it."""
    upper = options.speakers.num or options.speakers.max
    return dataclasses.replace(options, speakers=SpeakerCount(max=upper))


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
