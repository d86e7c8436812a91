"""Which words of a live decode are stable: sent once as a delta, never revised.

The stable-prefix policy of ``LiveSession`` (``streaming/engine.py``; docs/realtime.md
says why each rule is there): words two decodes agree on (LocalAgreement-2, as in
whisper_streaming, matched by text and time), words heard once with a high probability
before the edge of the decoded audio, unsure words bridged by sure ones after them; a
later decode joined to the stable words at the seam by text; a partial that repeats a
run of words cut before the copy; guesses at the pause dropped from the final words.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from saywho.asr.loops import word_key as norm

if TYPE_CHECKING:
    from saywho.types import Word


# A last word Whisper gives less than this probability is a guess at the pause after the
# speech (" and" at 0.02 after a sentence: the previous text as the prompt invites one).
TRAILING_GUESS = 0.1


def after(words: list[Word], t: float) -> list[Word]:
    """The words whose middle lies after ``t`` seconds."""
    return [w for w in words if w.start + w.end > 2 * t]


# The last stable word and its copy in a later decode end at most this far apart.
SEAM_S = 1.0
SEAM_WORDS = 8  # the last stable words looked for in a later decode


def past(words: list[Word], stable: list[Word]) -> list[Word]:
    """The words of a decode that come after the utterance's ``stable`` words.

    Where the decode has the last stable word (the last run of words it shares with the
    stable ones, ending within ``SEAM_S``): the words after its copy. Otherwise, the words
    whose middle lies after the last stable word's end. By time alone, two decodes that
    place a word differently (the short context against the 30 s window, 0.3-0.5 s) gave
    it twice ("that" then "that much", "So," then "So, I don't"). Matched by text, a word
    said again ("Hello. Hello.") is still heard: its first copy is the stable one."""
    if not stable:
        return list(words)
    texts = [norm(w.text) for w in words]
    tail = [norm(w.text) for w in stable[-SEAM_WORDS:]]
    matcher = difflib.SequenceMatcher(a=tail, b=texts, autojunk=False)
    for block in reversed(matcher.get_matching_blocks()):
        if block.size and block.a + block.size == len(tail):
            last = words[block.b + block.size - 1]
            if abs(last.end - stable[-1].end) <= SEAM_S:
                return words[block.b + block.size:]
            break
    return after(words, stable[-1].end)


# Two decodes hear "the same word" when their texts agree and their ends lie this close.
MATCH_S = 0.6


def heard_before(new: list[Word], old: list[Word]) -> list[bool]:
    """For each word of ``new``: whether ``old`` (the previous decode) has it, in order and
    at about the same time. The words agreed from the start (LocalAgreement) always are."""
    texts = [norm(w.text) for w in old]
    prefix = 0
    while prefix < min(len(new), len(old)) and norm(new[prefix].text) == texts[prefix]:
        prefix += 1
    found, j = [True] * prefix, prefix
    for word in new[prefix:]:
        text = norm(word.text)
        k = next((k for k in range(j, len(old)) if texts[k] == text and abs(old[k].end - word.end) <= MATCH_S), None)
        found.append(k is not None)
        if k is not None:
            j = k + 1
    return found


def firm(new: list[Word], old: list[Word], edge: float, probability: float, bridge: int) -> int:
    """How many of ``new``'s first words are stable (sent once, never revised).

    A word is sure when the previous decode heard it too (LocalAgreement-2), or when it was
    heard with at least ``probability`` and ends before ``edge``. The stable words run to
    the last of ``bridge`` sure words in a row that end before ``edge``: an unsure word
    between sure ones ("Well," at 0.38 before a confident sentence) is taken as heard, so
    that one doubtful word no longer holds back everything after it until the commit."""
    sure = [heard or (w.probability >= probability and w.end <= edge)
            for w, heard in zip(new, heard_before(new, old), strict=True)]
    count = 0
    while count < len(sure) and sure[count]:
        count += 1
    if bridge > 0:
        for i in range(len(new) - bridge, count - 1, -1):  # the last run of `bridge` sure words before the edge
            if all(sure[i:i + bridge]) and new[i + bridge - 1].end <= edge:
                return i + bridge
    return count


# A partial decode that says a run of this many words or more twice in a row is cut
# before the second copy: the short context now and then hears a whole sentence twice
# ("Oh, I'm originally from Chicago. Oh, I'm originally from Chicago."), and both copies
# were sent. The final decode has the last word on what was said.
REPEAT_RUN = 3


def before_repeat(words: list[Word]) -> list[Word]:
    """``words`` up to the end of the first run of ``REPEAT_RUN`` or more words that the
    next words repeat."""
    keys = [norm(w.text) for w in words]
    for i in range(len(keys)):
        for size in range(REPEAT_RUN, (len(keys) - i) // 2 + 1):
            if keys[i:i + size] == keys[i + size:i + 2 * size]:
                return words[:i + size]
    return words


def without_trailing_guesses(words: list[Word]) -> list[Word]:
    """The words without the improbable or punctuation-only words at their end."""
    end = len(words)
    while end and (words[end - 1].probability < TRAILING_GUESS or not norm(words[end - 1].text)):
        end -= 1
    return words[:end]
