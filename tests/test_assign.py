"""Words -> speakers -> blocks: midpoint rule, overlap fallback, gaps, text joining."""

from __future__ import annotations

from saywho.diarization.assign import assign_speakers, join_words, speaker_blocks
from saywho.types import SpeakerTurn, Word

TURNS = (SpeakerTurn(0.0, 2.0, "A"), SpeakerTurn(2.0, 4.0, "B"), SpeakerTurn(6.0, 8.0, "A"))


def test_midpoint_decides() -> None:
    words = [Word(1.5, 2.4, "x"), Word(1.9, 3.0, "y")]  # midpoints 1.95 (A), 2.45 (B)
    got = assign_speakers(words, TURNS)
    assert [w.speaker for w in got] == ["A", "B"]


def test_input_is_not_modified() -> None:
    words = (Word(0.1, 0.2, "x"),)
    got = assign_speakers(words, TURNS)
    assert words[0].speaker is None and got[0].speaker == "A"


def test_most_overlap_when_midpoint_in_a_gap() -> None:
    # midpoint 4.6 is in the gap 4-6; only B overlaps the word.
    assert assign_speakers([Word(3.7, 5.5, "w")], TURNS)[0].speaker == "B"


def test_nearest_turn_when_nothing_overlaps() -> None:
    assert assign_speakers([Word(5.0, 5.5, "w")], TURNS)[0].speaker == "A"
    assert assign_speakers([Word(4.2, 4.4, "w")], TURNS)[0].speaker == "B"


def test_no_turns_keeps_words() -> None:
    words = (Word(0, 1, "a"),)
    assert assign_speakers(words, ()) == words


def test_blocks_break_on_speaker_change_and_long_silence() -> None:
    words = [
        Word(0.0, 0.5, " Hello", speaker="A"), Word(0.6, 1.0, ",", speaker="A"),
        Word(1.1, 1.5, " there", speaker="A"), Word(3.5, 4.0, " again", speaker="A"),  # 2 s gap
        Word(4.1, 4.5, " Hi", speaker="B"),
    ]
    blocks = speaker_blocks(words, gap_s=1.5)
    assert [(b.speaker, b.text) for b in blocks] == [("A", "Hello, there"), ("A", "again"), ("B", "Hi")]
    assert blocks[0].start == 0.0 and blocks[0].end == 1.5
    assert [b.id for b in blocks] == [0, 1, 2]


def test_join_words_with_or_without_leading_spaces() -> None:
    with_spaces = [" I", " don't", " know", ",", " really", "."]
    without = ["I", "don't", "know", ",", "really", "."]
    assert join_words(with_spaces) == join_words(without) == "I don't know, really."


def test_join_words_contractions_and_languages() -> None:
    assert join_words(["it", "'s", "fine", "!"]) == "it's fine!"
    assert join_words(["你好", "世界"], language="zh") == "你好世界"
