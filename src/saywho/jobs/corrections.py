"""Corrections a person makes to a job's speakers: merge two speakers, move a line (or
some of its words) to another speaker, split a line in two.

Each correction is a small JSON object kept, in order, beside the job
(``JobStore.corrections``); the corrected transcript is the pipeline's result with
every correction replayed (``apply_corrections``), so undo is dropping the last one and
every export, rename and enrolment sees the same corrected speakers.

Line indices refer to ``segments`` of the transcript as corrected up to that point.
A line moved to ``"new"`` goes to a speaker that did not exist (the next free
``Speaker_N``): the way to separate two people the diarization kept as one.

Voices follow: a merge or a move may carry ``fingerprints`` (label -> the voice of the
lines that speaker holds after it, made from the job's audio by ``JobService.correct``),
which replace the machine's, so enrolling a corrected speaker learns the corrected
voice. Without them a merged speaker's fingerprint is the speech-weighted mean of both.
Renames are kept in the same history (``{"op": "rename", "label", "name", "before"}``)
so that undo takes them back in order; they change no line.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from saywho.errors import InvalidOptionError, NotFoundError
from saywho.types import Segment, SpeakerInfo, SpeakerTurn, Transcript, Word

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

OPS = ("merge", "move", "split")
RENAME = "rename"
NEW_SPEAKER = "new"


def validate(transcript: Transcript, edit: Mapping[str, Any], *, taken: Sequence[str] = ()) -> dict[str, Any]:
    """``edit`` checked against ``transcript`` (the corrected one so far) and made
    canonical: a ``"new"`` target gets its label here (never one in ``taken``, the
    labels used before, so a stored name never lands on another voice), so replaying is
    deterministic. Raises ``InvalidOptionError`` / ``NotFoundError`` with the field at fault."""
    op = edit.get("op")
    if op not in OPS:
        raise InvalidOptionError(f"unknown correction '{op}': choose one of {', '.join(OPS)}", param="op")
    labels = [s.label for s in transcript.speakers]
    if op == "merge":
        source, target = _label(edit, "source", labels), _label(edit, "target", labels)
        if source == target:
            raise InvalidOptionError("merge needs two different speakers", param="target")
        return {"op": "merge", "source": source, "target": target}
    line = _line(edit, transcript)
    words = transcript.segments[line].words
    if op == "split":
        at = _int(edit, "word")
        if not 0 < at < len(words):
            raise InvalidOptionError(f"a line of {len(words)} words splits before word 1 to {len(words) - 1}",
                                     param="word")
        return {"op": "split", "line": line, "word": at}
    target = edit.get("target")
    target = next_label([*labels, *taken]) if target == NEW_SPEAKER else _label(edit, "target", labels)
    first, last = edit.get("first_word"), edit.get("last_word")
    if first is None and last is None:
        first, last = 0, max(0, len(words) - 1)
    else:
        first, last = _int(edit, "first_word"), _int(edit, "last_word")
        if not 0 <= first <= last < max(1, len(words)):
            raise InvalidOptionError(f"words {first}-{last} are not in a line of {len(words)} words",
                                     param="first_word")
    return {"op": "move", "line": line, "target": target, "first_word": first, "last_word": last}


def apply_corrections(transcript: Transcript, edits: Iterable[Mapping[str, Any]]) -> Transcript:
    """``transcript`` with each (validated) correction applied in order."""
    for edit in edits:
        transcript = apply(transcript, edit)
    return transcript


def apply(transcript: Transcript, edit: Mapping[str, Any]) -> Transcript:
    if edit["op"] == RENAME:  # names live beside the transcript (JobStore.names)
        return transcript
    if edit["op"] == "split":
        return split_line(transcript, edit["line"], edit["word"])
    if edit["op"] == "merge":
        changed = merge(transcript, edit["source"], edit["target"])
    else:
        changed = move_words(transcript, edit["line"], edit["target"], edit["first_word"], edit["last_word"])
    return with_voices(changed, edit.get("fingerprints") or {})


def public(edit: Mapping[str, Any]) -> dict[str, Any]:
    """``edit`` as the API shows it: which voices were recomputed, not their 192 numbers."""
    view = {k: v for k, v in edit.items() if k != "fingerprints"}
    if edit.get("fingerprints"):
        view["voices"] = sorted(edit["fingerprints"])
    return view


def speakers_changed(before: Transcript, edit: Mapping[str, Any]) -> tuple[str, ...]:
    """The speakers whose lines a (validated) correction changes: a merge's target; a
    move's line's speaker and its target."""
    if edit["op"] == "merge":
        return (edit["target"],)
    if edit["op"] != "move":
        return ()
    source = before.segments[edit["line"]].speaker
    return tuple(x for x in dict.fromkeys((source, edit["target"])) if x is not None)


def lines_of(transcript: Transcript, label: str) -> list[tuple[float, float]]:
    """(start, end) seconds of every line ``label`` holds."""
    return [(s.start, s.end) for s in transcript.segments if s.speaker == label]


def with_voices(transcript: Transcript, voices: Mapping[str, Sequence[float]]) -> Transcript:
    """``transcript`` whose speakers in ``voices`` have those fingerprints (unit length)."""
    d = transcript.diarization
    present = {s.label for s in transcript.speakers}
    voices = {k: v for k, v in voices.items() if k in present}
    if d is None or not voices:
        return transcript
    fingerprints = {**d.fingerprints, **{k: _unit(v) for k, v in voices.items()}}
    return dataclasses.replace(transcript, diarization=dataclasses.replace(d, fingerprints=fingerprints))


def next_label(labels: Sequence[str]) -> str:
    numbers = [int(m.group(1)) for x in labels if (m := re.fullmatch(r"Speaker_(\d+)", x))]
    return f"Speaker_{max(numbers, default=-1) + 1}"


# ---------------------------------------------------------------------------
# The three corrections
# ---------------------------------------------------------------------------


def merge(transcript: Transcript, source: str, target: str) -> Transcript:
    """Every line and turn of ``source`` becomes ``target``'s; their voices' fingerprints
    are averaged by speech time, so enrolling the merged speaker uses both."""

    def m(label: str | None) -> str | None:
        return target if label == source else label

    talk = {s.label: s.speech_s for s in transcript.speakers}
    speakers = tuple(
        dataclasses.replace(s, speech_s=round(s.speech_s + talk.get(source, 0.0), 3)) if s.label == target else s
        for s in transcript.speakers if s.label != source
    )
    # Consecutive lines of one speaker stay separate lines: a person may have chosen them.
    segments = _numbered([_relabel_segment(s, m) for s in transcript.segments])
    diarization = transcript.diarization
    if diarization is not None:
        fingerprints = dict(diarization.fingerprints)
        if source in fingerprints and target in fingerprints:
            fingerprints[target] = _mean_voice(fingerprints.pop(source), talk.get(source, 0.0),
                                               fingerprints[target], talk.get(target, 0.0))
        fingerprints.pop(source, None)
        relabelled = diarization.relabel({source: target})
        diarization = dataclasses.replace(relabelled, turns=_join_turns(relabelled.turns),
                                          exclusive=_join_turns(relabelled.exclusive), fingerprints=fingerprints)
    return dataclasses.replace(transcript, segments=segments, speakers=speakers, diarization=diarization,
                               words=tuple(Word(w.start, w.end, w.text, w.probability, m(w.speaker))
                                           for w in transcript.words))


def split_line(transcript: Transcript, line: int, at: int) -> Transcript:
    """Line ``line`` becomes two lines, the second starting at its word ``at``."""
    segment = transcript.segments[line]
    before, after = _piece(segment, segment.words[:at]), _piece(segment, segment.words[at:])
    segments = [*transcript.segments[:line], before, after, *transcript.segments[line + 1:]]
    return dataclasses.replace(transcript, segments=_numbered(segments))


def move_words(transcript: Transcript, line: int, target: str, first: int, last: int) -> Transcript:
    """Words ``first..last`` of line ``line`` go to ``target`` (a new line of their own
    when they are part of the line); the timeline's turns follow."""
    segment = transcript.segments[line]
    source = segment.speaker
    words = segment.words
    if not words:  # a line without word times moves whole
        pieces = [dataclasses.replace(segment, speaker=target)]
        start, end = segment.start, segment.end
    else:
        moved = tuple(dataclasses.replace(w, speaker=target) for w in words[first:last + 1])
        pieces = [p for p in (_piece(segment, words[:first]), _piece(segment, moved, speaker=target),
                              _piece(segment, words[last + 1:])) if p.words]
        whole = first == 0 and last == len(words) - 1
        start, end = (segment.start, segment.end) if whole else (moved[0].start, moved[-1].end)
    segments = _numbered([*transcript.segments[:line], *pieces, *transcript.segments[line + 1:]])
    all_words = tuple(dataclasses.replace(w, speaker=target)
                      if start <= w.start and w.end <= end and w.speaker == source else w
                      for w in transcript.words)
    seconds = end - start
    speakers = list(transcript.speakers)
    if target not in {s.label for s in speakers}:
        speakers.append(SpeakerInfo(target))
    speakers = [dataclasses.replace(s, speech_s=round(max(0.0, s.speech_s - seconds), 3)) if s.label == source
                else dataclasses.replace(s, speech_s=round(s.speech_s + seconds, 3)) if s.label == target else s
                for s in speakers]
    diarization = transcript.diarization
    if diarization is not None:
        diarization = dataclasses.replace(
            diarization,
            turns=_reassign(diarization.turns, start, end, source, target),
            exclusive=_reassign(diarization.exclusive, start, end, source, target),
            speakers=tuple(dict.fromkeys((*diarization.speakers, target))),
        )
    moved_out = dataclasses.replace(transcript, segments=segments, words=all_words, speakers=tuple(speakers),
                                    diarization=diarization)
    if source is not None and not any(s.speaker == source for s in segments):
        return _without_speaker(moved_out, source)
    return moved_out


def _without_speaker(transcript: Transcript, label: str) -> Transcript:
    """A speaker left with no line is gone: from the speakers, turns and fingerprints."""
    diarization = transcript.diarization
    if diarization is not None:
        diarization = dataclasses.replace(
            diarization, turns=tuple(t for t in diarization.turns if t.speaker != label),
            exclusive=tuple(t for t in diarization.exclusive if t.speaker != label),
            speakers=tuple(x for x in diarization.speakers if x != label),
            fingerprints={k: v for k, v in diarization.fingerprints.items() if k != label})
    return dataclasses.replace(transcript, speakers=tuple(s for s in transcript.speakers if s.label != label),
                               diarization=diarization)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _label(edit: Mapping[str, Any], key: str, labels: Sequence[str]) -> str:
    value = edit.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidOptionError(f"'{key}' must be a speaker label", param=key)
    if value not in labels:
        raise NotFoundError(f"no speaker '{value}' (the job has {', '.join(labels)})", param=key)
    return value


def _int(edit: Mapping[str, Any], key: str) -> int:
    value = edit.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(f"'{key}' must be a whole number", param=key)
    return value


def _line(edit: Mapping[str, Any], transcript: Transcript) -> int:
    line = _int(edit, "line")
    if not 0 <= line < len(transcript.segments):
        raise NotFoundError(f"no line {line} (the transcript has {len(transcript.segments)})", param="line")
    return line


def _relabel_segment(segment: Segment, m: Any) -> Segment:
    return dataclasses.replace(segment, speaker=m(segment.speaker),
                               words=tuple(dataclasses.replace(w, speaker=m(w.speaker)) for w in segment.words))


def _piece(segment: Segment, words: Sequence[Word], *, speaker: str | None = None) -> Segment:
    words = tuple(words)
    if not words:
        return dataclasses.replace(segment, words=(), text="")
    return dataclasses.replace(segment, start=words[0].start, end=words[-1].end, words=words,
                               text="".join(w.text for w in words), speaker=speaker or segment.speaker,
                               tokens=())


def _numbered(segments: Sequence[Segment]) -> tuple[Segment, ...]:
    return tuple(dataclasses.replace(s, id=i) for i, s in enumerate(segments))


def _join_turns(turns: Iterable[SpeakerTurn]) -> tuple[SpeakerTurn, ...]:
    """Turns sorted, touching or overlapping turns of one speaker joined."""
    joined: list[SpeakerTurn] = []
    last: dict[str, int] = {}
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        i = last.get(t.speaker)
        if i is not None and t.start <= joined[i].end + 1e-6:
            joined[i] = SpeakerTurn(joined[i].start, max(joined[i].end, t.end), t.speaker)
            continue
        last[t.speaker] = len(joined)
        joined.append(t)
    return tuple(joined)


def _reassign(turns: Sequence[SpeakerTurn], start: float, end: float, source: str | None,
              target: str) -> tuple[SpeakerTurn, ...]:
    """``source``'s turns lose [start, end), which becomes ``target``'s."""
    out: list[SpeakerTurn] = []
    for t in turns:
        if t.speaker != source or t.end <= start or t.start >= end:
            out.append(t)
            continue
        if t.start < start:
            out.append(SpeakerTurn(t.start, start, t.speaker))
        if t.end > end:
            out.append(SpeakerTurn(end, t.end, t.speaker))
    out.append(SpeakerTurn(start, end, target))
    return _join_turns(out)


def _mean_voice(a: Sequence[float], a_s: float, b: Sequence[float], b_s: float) -> tuple[float, ...]:
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return _unit(va * max(a_s, 1e-3) + vb * max(b_s, 1e-3))


def _unit(v: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    vector = np.asarray(v, dtype=np.float64)
    norm = float(np.linalg.norm(vector)) or 1.0
    return tuple(float(x) for x in vector / norm)
