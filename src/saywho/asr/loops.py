"""Whisper's repetition loops: telling them apart from speech, and keeping them out of prompts.

With a fixed temperature of 0, nothing stops Whisper from repeating a word or a phrase
until its window is full ("Yeah. Yeah. Yeah. ..." 112 times over 15 s of meeting). A
repetitive prompt invites exactly that: tiny.en given "Yeah. " x 60 as the previous text
loops on three of six 15 s stretches of the dev meetings, and "the the ..." on five of
six, where the same audio without a prompt decodes to 9-38 words. A live session whose
prompt is its own past text can feed a loop into the next utterance's prompt, and so on.

- ``looped``: a decode that holds a loop (faster-whisper's compression-ratio test, a
  unit of 1-8 words repeated ``MIN_REPEATS`` times in a row, or more words than anyone
  says in the time);
- ``unlooped``: the words with every such run cut to two copies (what is left when the
  decode without a prompt loops too);
- ``clean_prompt``: previous text with repeated runs cut to one copy, at most
  ``max_chars`` long, so that a prompt never carries a loop forward.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from faster_whisper.transcribe import get_compression_ratio

from saywho.asr.whisper import LOOP_COMPRESSION_RATIO

if TYPE_CHECKING:
    from saywho.types import Word

# A unit of at most MAX_UNIT words said this many times in a row is a loop; people do
# say "no, no, no, no" (four), rarely five times.
MIN_REPEATS = 5
MAX_UNIT = 8
# Fast speech is 4-5 words per second; more words than this per second of audio, plus a
# few, are not speech.
MAX_WORDS_PER_S = 6.0
SPARE_WORDS = 5


def word_key(token: str) -> str:
    """A word as repeats and agreements compare it: lower case, letters, digits and "'"."""
    return re.sub(r"[^\w']", "", token.lower())


def _runs(keys: list[str]) -> list[tuple[int, int, int]]:
    """(start, unit, copies) of every run of a unit of 1..MAX_UNIT tokens repeated at least
    twice in a row, longest first where runs overlap; runs do not overlap each other."""
    found: list[tuple[int, int, int]] = []
    i = 0
    while i < len(keys):
        best = (1, 1)  # (copies, unit)
        for unit in range(1, MAX_UNIT + 1):
            pattern = keys[i : i + unit]
            if len(pattern) < unit or not any(pattern):
                break
            copies = 1
            while keys[i + copies * unit : i + (copies + 1) * unit] == pattern:
                copies += 1
            if copies * unit > best[0] * best[1] and copies >= 2:
                best = (copies, unit)
        copies, unit = best
        if copies >= 2:
            found.append((i, unit, copies))
            i += copies * unit
        else:
            i += 1
    return found


def _cut(tokens: list, keys: list[str], keep: int, at_least: int) -> list:
    """``tokens`` with each run of at least ``at_least`` copies cut to ``keep`` copies."""
    out, i = [], 0
    for start, unit, copies in _runs(keys):
        out += tokens[i:start]
        out += tokens[start : start + unit * (keep if copies >= at_least else copies)]
        i = start + unit * copies
    return out + tokens[i:]


def looped(words: list[Word] | tuple[Word, ...], duration_s: float) -> bool:
    """Whether a decode of ``duration_s`` seconds of audio holds a repetition loop."""
    text = " ".join(w.text.strip() for w in words).strip()
    if not text:
        return False
    if len(words) > MAX_WORDS_PER_S * duration_s + SPARE_WORDS:
        return True
    if get_compression_ratio(text) > LOOP_COMPRESSION_RATIO:
        return True
    return any(copies >= MIN_REPEATS for _, _, copies in _runs([word_key(w.text) for w in words]))


def unlooped(words: list[Word] | tuple[Word, ...]) -> list[Word]:
    """``words`` with every run of ``MIN_REPEATS`` or more copies of a unit cut to two."""
    words = list(words)
    return _cut(words, [word_key(w.text) for w in words], keep=2, at_least=MIN_REPEATS)


def clean_prompt(text: str, max_chars: int = 400) -> str:
    """The end of ``text`` (at most ``max_chars``, whole words) with every repeated run of
    words cut to one copy ("Yeah. Yeah. Yeah." -> "Yeah."); "" when nothing is left."""
    tokens = text.split()
    kept = _cut(tokens, [word_key(t) for t in tokens], keep=1, at_least=2)
    out = " ".join(kept)
    if len(out) > max_chars:
        out = out[len(out) - max_chars :]
        out = out.split(" ", 1)[1] if " " in out else out
    return out.strip()
