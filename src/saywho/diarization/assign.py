"""Words -> speakers -> readable speaker blocks.

Each word goes to the exclusive speaker turn that holds its midpoint, else to the
one that overlaps it most, else to the nearest turn (so that every word of a
diarized transcript has a speaker). Blocks break on a speaker change and on
silences longer than ``gap_s``. Inputs are never modified: new values are returned.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from saywho.types import Segment, SpeakerTurn, Word

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

# Tokens that attach to the previous word without a space.
_CLOSING = set(".,!?;:%)]}»”’…。，、！？；：")
_CONTRACTIONS = ("'s", "'t", "'re", "'ll", "'ve", "'d", "'m", "n't", "’s", "’t", "’re", "’ll", "’ve", "’d", "’m")
# Marks that a sentence carries once (a repeated one is a decoding artefact).
_SINGLE_MARKS = set(".,!?;:")
# Languages written without spaces between words.
_NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "km", "my", "yue", "bo"}


def join_words(tokens: Iterable[str], language: str | None = None) -> str:
    """Join ASR word tokens into text, whether or not they carry leading spaces.

    No space goes before punctuation or a contraction suffix; languages written
    without spaces are joined directly. A mark that repeats the one the text already
    ends with is joined once ("watching." + "." -> "watching."; an ellipsis stays).
    """
    glue = "" if (language or "").split("-")[0] in _NO_SPACE_LANGUAGES else " "
    out: list[str] = []
    for token in tokens:
        t = token.strip()
        if out and t[0] in _SINGLE_MARKS and out[-1].endswith(t[0]) and not out[-1].endswith(t[0] * 2):
            t = t[1:].lstrip(t[0]) if t != t[0] * 3 else t  # "..." after a word is an ellipsis
        if not t:
            continue
        if out and glue and not (t[0] in _CLOSING or t.lower().startswith(_CONTRACTIONS)):
            out.append(glue)
        out.append(t)
    return "".join(out)


def assign_speakers(words: Sequence[Word], exclusive: Sequence[SpeakerTurn]) -> tuple[Word, ...]:
    """A copy of ``words`` with ``speaker`` set from the exclusive turns."""
    if not exclusive:
        return tuple(words)
    turns = sorted(exclusive, key=lambda t: t.start)
    starts = [t.start for t in turns]
    out = []
    for w in words:
        out.append(Word(w.start, w.end, w.text, w.probability, _speaker_for(w, turns, starts)))
    return tuple(out)


def _speaker_for(word: Word, turns: Sequence[SpeakerTurn], starts: Sequence[float]) -> str:
    mid = (word.start + word.end) / 2
    i = bisect.bisect_right(starts, mid) - 1
    # Exclusive turns do not overlap, so only turn i can hold the midpoint.
    if i >= 0 and turns[i].start <= mid < turns[i].end:
        return turns[i].speaker
    # Otherwise: the turn overlapping the word most, among the neighbours.
    lo = max(0, bisect.bisect_left(starts, word.start) - 2)
    hi = min(len(turns), bisect.bisect_right(starts, word.end) + 1)
    best, best_overlap = None, 0.0
    for t in turns[lo:hi]:
        overlap = min(t.end, word.end) - max(t.start, word.start)
        if overlap > best_overlap:
            best, best_overlap = t.speaker, overlap
    if best is not None:
        return best
    # No overlap at all: the nearest turn in time.
    nearest = min(turns[max(0, i - 1): i + 2] or turns,
                  key=lambda t: max(t.start - word.end, word.start - t.end, 0.0))
    return nearest.speaker


def speaker_blocks(
    words: Sequence[Word], *, gap_s: float = 1.5, language: str | None = None
) -> tuple[Segment, ...]:
    """Group consecutive words into blocks of one speaker, broken on long silences."""
    blocks: list[Segment] = []
    current: list[Word] = []

    def close() -> None:
        if current:
            blocks.append(
                Segment(
                    id=len(blocks),
                    start=current[0].start,
                    end=current[-1].end,
                    text=join_words((w.text for w in current), language),
                    words=tuple(current),
                    speaker=current[0].speaker,
                )
            )
            current.clear()

    for w in words:
        if current and (w.speaker != current[-1].speaker or w.start - current[-1].end > gap_s):
            close()
        current.append(w)
    close()
    return tuple(blocks)


def speech_time(turns: Iterable[SpeakerTurn]) -> dict[str, float]:
    """Total speaking time per speaker."""
    totals: dict[str, float] = {}
    for t in turns:
        totals[t.speaker] = totals.get(t.speaker, 0.0) + t.duration
    return totals
