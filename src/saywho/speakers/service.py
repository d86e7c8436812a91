"""What the CLI, the server's worker and the jobs share about known voices: where
fingerprints for enrolment come from, and naming a recording's speakers from the
library (wired once, here).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from saywho.audio.decode import load_audio
from saywho.errors import InvalidOptionError, SpeakerLibraryError
from saywho.formats import transcript_from_dict
from saywho.speakers.export import unit_vectors
from saywho.speakers.identify import MIN_SPEECH_S, embed_reference_with_speech
from saywho.speakers.library import Speaker, SpeakerLibrary
from saywho.types import SAMPLE_RATE, Identifier, Transcript

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping, Sequence

logger = logging.getLogger(__name__)


def library_identifier(
    path: str | os.PathLike[str] | None, *, strict: bool = False, warn: Callable[[str], None] | None = None
) -> Identifier | None:
    """The library's matcher for ``pipeline.transcribe``, or None when it holds no voices.

    ``path`` None is the default library. A damaged library raises
    ``SpeakerLibraryError`` when ``strict`` (the user named it), else it is logged and
    speakers stay anonymous (``warn(message)`` says so, default: the log).
    """
    library = SpeakerLibrary(path)
    if strict and not library.exists():
        raise InvalidOptionError(f"no speaker library at {library.path}", param="speakers_db")
    try:
        return library.identifier() if library.exists() and len(library) else None
    except SpeakerLibraryError as exc:
        if strict:
            raise
        if warn is not None:
            warn(exc.message)
        else:
            logger.warning("speakers stay anonymous: %s", exc.message)
        return None


def name_speakers(transcript: Transcript, identifier: Identifier | None) -> Transcript:
    """A copy of ``transcript`` whose speakers carry the names ``identifier`` recognises
    (the transcript itself when it has no speakers or none is recognised)."""
    if identifier is None or transcript.diarization is None:
        return transcript
    try:
        names = identifier(transcript.diarization)
    except Exception as exc:
        logger.warning("speaker identification skipped: %s", exc)
        return transcript
    if not names:
        return transcript
    speakers = tuple(
        dataclasses.replace(s, name=names[s.label][0], score=round(names[s.label][1], 4)) if s.label in names else s
        for s in transcript.speakers
    )
    return dataclasses.replace(transcript, speakers=speakers)


def fingerprint_from_audio(
    source: Any, *, start: float | None = None, end: float | None = None
) -> tuple[np.ndarray, float]:
    """(fingerprint, speech seconds) of one voice in an audio file/bytes, optionally cut to [start, end)."""
    samples = load_audio(source).samples
    if start is not None or end is not None:
        a = 0.0 if start is None else float(start)
        b = len(samples) / SAMPLE_RATE if end is None else float(end)
        if a < 0 or b <= a:
            raise InvalidOptionError(f"--start/--end must satisfy 0 <= start < end (got {a:g}, {b:g})",
                                     param="start")
        samples = samples[int(a * SAMPLE_RATE): int(b * SAMPLE_RATE)]
    return embed_reference_with_speech(samples)


# A speaker a person made (a line moved to "a new speaker") may hold a short line; its
# fingerprint is still worth having, though enrolment asks for MIN_SPEECH_S of speech.
MIN_LINES_SPEECH_S = 0.5
# A voice from more lines than this (seconds) uses lines spread over them: a correction
# on a long recording stays quick, and minutes of speech make a stable fingerprint.
MAX_LINES_S = 120.0


def fingerprint_of_spans(
    source: Any, spans: Sequence[tuple[float, float]], *, min_speech_s: float = MIN_LINES_SPEECH_S,
    max_s: float = MAX_LINES_S,
) -> tuple[np.ndarray, float]:
    """(fingerprint, speech seconds) of the speech inside ``spans`` (seconds) of one recording
    (a path, bytes or 16 kHz samples): the voice of the lines a corrected speaker now holds.

    Made as a reference fingerprint is (VAD, ~10 s pieces, speech-weighted mean), so it
    is comparable with diarization's and the library's. Of more than ``max_s`` of lines,
    lines spread evenly over them are used, about ``max_s`` in all. Raises ``InvalidOptionError``
    with under ``min_speech_s`` of speech there."""
    samples = source if isinstance(source, np.ndarray) else load_audio(source).samples
    spans = [(a, b) for a, b in spans if b > a]
    total = sum(b - a for a, b in spans)
    if total > max_s:  # lines spread over the recording, about max_s of them: bounded time, the same voice
        keep = max(1, round(len(spans) * max_s / total))
        spans = [spans[i] for i in sorted({round(x) for x in np.linspace(0, len(spans) - 1, keep)})]
    pieces = [samples[max(0, int(a * SAMPLE_RATE)): int(b * SAMPLE_RATE)] for a, b in spans]
    pieces = [p for p in pieces if len(p)]
    if not pieces:
        raise InvalidOptionError("the speaker's lines hold no audio", param="line")
    gap = np.zeros(int(0.2 * SAMPLE_RATE), dtype=np.float32)  # lines kept apart, so VAD sees each edge
    audio = np.concatenate([part for p in pieces for part in (np.asarray(p, dtype=np.float32), gap)])
    return embed_reference_with_speech(audio, min_speech_s=min_speech_s)


def fingerprint_from_transcript(data: Mapping[str, Any], label: str) -> tuple[np.ndarray, float]:
    """(fingerprint, speech seconds) of one speaker of a saywho JSON result.

    ``label`` is the anonymous label (``Speaker_1``) or the name the result shows.
    """
    return fingerprint_of_speaker(transcript_from_dict(dict(data)), label)


def enrol_from_transcript(
    library_path: str | os.PathLike[str] | None, transcript: Transcript, label: str, name: str, *, source: str
) -> Speaker:
    """Add ``label``'s voice in ``transcript`` to the library at ``library_path`` as ``name``
    (merged into an existing speaker of that name). Raises ``InvalidOptionError`` when the
    transcript has no fingerprint for ``label`` or too little of its speech."""
    fingerprint, speech_s = fingerprint_of_speaker(transcript, label)
    return SpeakerLibrary(library_path).add(name, fingerprint, source=source, speech_s=speech_s, merge=True)


def fingerprint_of_speaker(transcript: Transcript, label: str) -> tuple[np.ndarray, float]:
    """(fingerprint, speech seconds) of one speaker of ``transcript`` (its label or name)."""
    d = transcript.diarization
    if d is None or not d.fingerprints:
        raise InvalidOptionError(
            "the transcript holds no speaker fingerprints (was it written with -f json and diarization on?)",
            param="transcript_json",
        )
    match = next((s for s in transcript.speakers if label in (s.label, s.name)), None)
    key = match.label if match is not None else label
    if key not in d.fingerprints:
        raise InvalidOptionError(
            f"no speaker '{label}' in the transcript (it has {', '.join(d.fingerprints)})", param="label"
        )
    speech_s = float(match.speech_s) if match is not None else 0.0
    if match is not None and speech_s < MIN_SPEECH_S:
        raise InvalidOptionError(
            f"{label} speaks for only {speech_s:.1f} s in this transcript; enrolment needs at least "
            f"{MIN_SPEECH_S:g} s of speech",
            param="label",
        )
    return unit_vectors(d.fingerprints[key])[0], speech_s
