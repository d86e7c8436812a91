"""Typed, immutable results and options shared by every stage.

Every stage returns new values of these types; none edits its input in place.
Times are seconds from the start of the recording.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from saywho.errors import InvalidOptionError

SAMPLE_RATE = 16_000


class ProgressHook(Protocol):
    """Called by library code to report progress; never prints.

    ``step`` names the stage (``decode``, ``asr``, ``segmentation``, ``embeddings``,
    ``clustering``, ``chunks``...). ``completed``/``total`` are in the stage's own unit.
    """

    def __call__(self, step: str, *, completed: float | None = None, total: float | None = None) -> None: ...


def no_progress(step: str, *, completed: float | None = None, total: float | None = None) -> None:
    """The default hook: report nothing."""


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word. ``text`` keeps the ASR's leading space if it had one."""

    start: float
    end: float
    text: str
    probability: float = 1.0
    speaker: str | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of text: an ASR segment, or (after assignment) one speaker block."""

    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: str | None = None
    # Decoder statistics (verbose_json); zeros when a segment is a speaker block.
    seek: int = 0
    tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    """One speaker speaking from ``start`` to ``end``."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class SpeakerInfo:
    """A speaker of one recording: anonymous label, display name, talk time.

    ``name`` is the library (or per-request) name when the voice was identified,
    with ``score`` the cosine similarity that identified it.
    """

    label: str
    name: str | None = None
    speech_s: float = 0.0
    score: float | None = None

    @property
    def display(self) -> str:
        return self.name or self.label


@dataclass(frozen=True, slots=True)
class Diarization:
    """Who spoke when.

    ``turns`` is overlap-aware (two speakers may hold the same instant);
    ``exclusive`` has at most one speaker at any instant, for word assignment.
    ``fingerprints`` maps each label to one unit-norm voice embedding.
    """

    duration: float
    turns: tuple[SpeakerTurn, ...]
    exclusive: tuple[SpeakerTurn, ...]
    speakers: tuple[str, ...]
    fingerprints: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def relabel(self, mapping: dict[str, str]) -> Diarization:
        """A copy with labels renamed through ``mapping`` (unknown labels kept)."""

        def m(label: str) -> str:
            return mapping.get(label, label)

        return Diarization(
            duration=self.duration,
            turns=tuple(SpeakerTurn(t.start, t.end, m(t.speaker)) for t in self.turns),
            exclusive=tuple(SpeakerTurn(t.start, t.end, m(t.speaker)) for t in self.exclusive),
            speakers=tuple(dict.fromkeys(m(s) for s in self.speakers)),
            fingerprints={m(k): v for k, v in self.fingerprints.items()},
        )


@dataclass(frozen=True, slots=True)
class Transcript:
    """The full result of ``saywho.transcribe``.

    ``segments`` are speaker blocks (one speaker each) when diarization ran, else
    the ASR's own segments. ``asr_segments`` are always the ASR's segments.
    """

    duration: float
    language: str
    text: str
    segments: tuple[Segment, ...]
    words: tuple[Word, ...]
    speakers: tuple[SpeakerInfo, ...] = ()
    asr_segments: tuple[Segment, ...] = ()
    diarization: Diarization | None = None
    models: dict[str, str] = field(default_factory=dict)
    task: str = "transcribe"
    warnings: tuple[str, ...] = ()

    def speaker_name(self, label: str | None) -> str | None:
        """Display name for a label (its library name when identified)."""
        if label is None:
            return None
        for s in self.speakers:
            if s.label == label:
                return s.display
        return label


# More speakers than this in one recording is a mistake, not a hint (and would split voices).
MAX_SPEAKERS = 64


@dataclass(frozen=True, slots=True)
class SpeakerCount:
    """Speaker-count hints, decided in one place (``clustering``); at most ``MAX_SPEAKERS``."""

    num: int | None = None
    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        for name in ("num", "min", "max"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or not 1 <= value <= MAX_SPEAKERS):
                raise InvalidOptionError(f"{name}_speakers must be an integer from 1 to {MAX_SPEAKERS}, "
                                         f"got {value!r}", param=f"{name}_speakers")
        if self.num is not None and (self.min is not None or self.max is not None):
            raise InvalidOptionError("give num_speakers, or min_speakers/max_speakers, not both",
                                     param="num_speakers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InvalidOptionError(f"min_speakers ({self.min}) is larger than max_speakers ({self.max})",
                                     param="min_speakers")


@dataclass(frozen=True, slots=True)
class DiarizeOptions:
    """Options of the diarization pipeline. Defaults are the tuned, fixed ones."""

    speakers: SpeakerCount = SpeakerCount()
    segmentation_model: str = "pyannote-segmentation-3.0"
    embedding_model: str = "campplus"
    device: str = "cpu"


@dataclass(frozen=True, slots=True)
class TranscribeOptions:
    """Options of ``saywho.transcribe``: one object instead of forty arguments."""

    model: str = "tiny.en"
    language: str | None = None
    task: Literal["transcribe", "translate"] = "transcribe"
    diarize: bool = True
    speakers: SpeakerCount = SpeakerCount()
    initial_prompt: str | None = None
    # Words or phrases to favour (faster-whisper's hotwords; ignored with an initial prompt).
    hotwords: str | None = None
    # 0: deterministic. faster-whisper's default fallback (0.0, 0.2, ..., 1.0) samples at
    # temperatures above 0 when a window looks wrong, and sampling draws from a random
    # generator per decoding thread: the same file then gives different text from run to
    # run ("Thank you." / "Thank you for watching.." on trailing silence). A list here
    # turns the fallback back on.
    temperature: float | tuple[float, ...] = 0.0
    # Off: with a fixed temperature 0 nothing breaks a repetition loop, and conditioned
    # decoding fell into one on the README sample's last seconds ("I'm going to go ahead
    # and see what I'm going to do." three times). --condition-on-previous-text turns it on.
    condition_on_previous_text: bool = False
    # Greedy decoding: on the dev set tiny.en scored 3.0% WER greedy against 5.1% with a
    # beam of 5, and the whole job ran 1.2x faster on 2 cores. --beam-size 5 is there.
    beam_size: int = 1
    # Silero VAD before ASR: no hallucinated words in silence or noise.
    vad_filter: bool = True
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0
    identify: bool = True
    # Seconds of silence after which a speaker block is broken even without a change.
    block_gap_s: float = 1.5
    # Encode only the audio (plus 2 s, at least 10 s) instead of Whisper's 30 s window:
    # live decoding of short utterances in about a third of the time (asr.whisper).
    short_context: bool = False
    # Stop once a segment's last word ends this close to the audio's end (0: off). After
    # a window whose last segment is unfinished (the audio ends in speech, or a pause kept
    # after it), faster-whisper decodes the rest from the last word on in a window of its
    # own: half of a live partial decode's time, for a fragment or a guess. Live decodes only.
    skip_rest_s: float = 0.0

    @property
    def diarize_options(self) -> DiarizeOptions:
        return DiarizeOptions(speakers=self.speakers, device=self.device)


# The progress hook every stage takes (``ProgressHook``).
Hook = ProgressHook

# Names for a recording's speakers: label -> (name, score) for the voices recognised
# (the speaker library's matcher, or per-request reference clips).
Identities = Mapping[str, tuple[str, float]]
Identifier = Callable[[Diarization], Identities]
