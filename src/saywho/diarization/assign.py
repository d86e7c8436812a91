"""Words -> speakers -> readable speaker blocks.

Each word goes to the exclusive speaker turn that holds its midpoint, else to the
one that overlaps it most, else to the nearest turn (so that every word of a
diarized transcript has a speaker). Then sentences are kept together: inside a
sentence (words up to ``.``, ``?`` or ``!``, or a pause), a short run of words given to
another speaker -- under ``MIN_RUN_WORDS`` words or ``MIN_RUN_S`` seconds, the size
of a turn boundary misplaced by a few frames -- goes to the sentence's main speaker;
a longer run is a real interjection and stays. Blocks break on a speaker change and
on silences longer than ``gap_s``. Inputs are never modified: new values are returned.
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
# A run of words inside a sentence given to another speaker stays with that speaker
# only with at least this many words and seconds (else the sentence keeps one speaker).
MIN_RUN_WORDS = 3
MIN_RUN_S = 1.0
# A pause this long ends a sentence even without punctuation.
SENTENCE_PAUSE_S = 1.0
_SENTENCE_END = (".", "?", "!", "。", "？", "！", "…")
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


def assign_speakers(
    words: Sequence[Word], exclusive: Sequence[SpeakerTurn], *, sentences: bool = True
) -> tuple[Word, ...]:
    """A copy of ``words`` with ``speaker`` set from the exclusive turns (and, with
    ``sentences``, short runs inside a sentence given to its main speaker)."""
    if not exclusive:
        return tuple(words)
    turns = sorted(exclusive, key=lambda t: t.start)
    starts = [t.start for t in turns]
    speakers = [_speaker_for(w, turns, starts) for w in words]
    if sentences:
        speakers = _keep_sentences_together(words, speakers)
    return tuple(Word(w.start, w.end, w.text, w.probability, k) for w, k in zip(words, speakers, strict=True))


def sentences(words: Sequence[Word]) -> list[range]:
    """Index ranges of the sentences: up to end punctuation or a pause."""
    out, first = [], 0
    for i, w in enumerate(words):
        last = i == len(words) - 1
        pause = not last and words[i + 1].start - w.end >= SENTENCE_PAUSE_S
        if last or pause or w.text.strip().endswith(_SENTENCE_END):
            out.append(range(first, i + 1))
            first = i + 1
    return out


def _keep_sentences_together(words: Sequence[Word], speakers: list[str]) -> list[str]:
    """Short runs of another speaker inside a sentence go to its main speaker."""
    out = list(speakers)
    for sentence in sentences(words):
        if len({out[i] for i in sentence}) < 2:
            continue
        talk: dict[str, float] = {}
        for i in sentence:
            talk[out[i]] = talk.get(out[i], 0.0) + max(words[i].end - words[i].start, 0.01)
        main = max(talk, key=lambda k: talk[k])
        for run in speaker_runs(out, sentence):
            i, j = run[0], run[-1]
            if out[i] != main:
                n_words, seconds = j - i + 1, words[j].end - words[i].start
                if n_words < MIN_RUN_WORDS or seconds < MIN_RUN_S:
                    for k in run:
                        out[k] = main
    return out


def speaker_runs(speakers: Sequence[str | None], span: range) -> list[range]:
    """Index ranges of the runs of one speaker inside ``span`` (e.g. one sentence)."""
    out = []
    i = span.start
    while i < span.stop:
        j = i
        while j + 1 < span.stop and speakers[j + 1] == speakers[i]:
            j += 1
        out.append(range(i, j + 1))
        i = j + 1
    return out


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


def merge_turns(turns: Iterable[SpeakerTurn], gap_s: float = 1e-3) -> tuple[SpeakerTurn, ...]:
    """Turns sorted by start, each speaker's touching or overlapping turns joined."""
    out: list[SpeakerTurn] = []
    last: dict[str, int] = {}
    for t in sorted(turns, key=lambda t: (t.start, t.end, t.speaker)):
        j = last.get(t.speaker)
        if j is not None and t.start <= out[j].end + gap_s:
            out[j] = SpeakerTurn(out[j].start, max(out[j].end, t.end), t.speaker)
            continue
        last[t.speaker] = len(out)
        out.append(t)
    return tuple(sorted(out, key=lambda t: (t.start, t.end, t.speaker)))
