"""What one chunk of a long recording yields (``ChunkResult``) and the options a chunk
runs with. Free of the models' libraries: the process that plans and stitches a long
recording imports this, and only its workers import ``chunk`` (torch, the models).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from saywho.types import Segment, SpeakerCount, SpeakerTurn, TranscribeOptions, Word

if TYPE_CHECKING:
    from collections.abc import Iterable


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
