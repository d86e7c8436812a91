"""What a live session reports, as typed immutable values (times in seconds of session audio)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    item_id: str
    start: float


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    item_id: str
    end: float


@dataclass(frozen=True, slots=True)
class Committed:
    """An utterance's audio is final (by VAD, by the client, or at the length limit)."""

    item_id: str
    previous_item_id: str | None
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Delta:
    """Text of an utterance that will not change (``delta``, sent once, appended to the
    previous deltas), and the current whole hypothesis (``partial``: the stable text and
    a tentative tail that later decodes may revise). ``lag_s``: how far the engine is
    behind the audio it was given."""

    item_id: str
    delta: str
    partial: str
    lag_s: float


@dataclass(frozen=True, slots=True)
class SpeakerSegment:
    """Who said a piece of an utterance: ``speaker`` is the session's label (``Speaker_0``...),
    ``name`` the speaker library's name when the voice is known."""

    item_id: str
    id: str
    text: str
    speaker: str
    name: str | None
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Completed:
    item_id: str
    transcript: str
    start: float
    end: float
    lag_s: float


LiveEvent = SpeechStarted | SpeechStopped | Committed | Delta | SpeakerSegment | Completed
