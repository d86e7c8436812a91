"""Words -> speakers -> blocks: midpoint rule, overlap fallback, gaps, text joining."""

from __future__ import annotations

from saywho.diarization.assign import assign_speakers, join_words, speaker_blocks
from saywho.types import SpeakerTurn, Word

TURNS = (SpeakerTurn(0.0, 2.0, "A"), SpeakerTurn(2.0, 4.0, "B"), SpeakerTurn(6.0, 8.0, "A"))


def test_midpoint_decides() -> None:
    words = [Word(1.5, 2.4, "x"), Word(1.9, 3.0, "y")]  # midpoints 1.95 (A), 2.45 (B)
    got = assign_speakers(words, TURNS, sentences=False)
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


def _sentence_words(texts_and_times):
    return [Word(a, b, t) for t, a, b in texts_and_times]


def test_a_sentence_split_by_a_late_turn_boundary_stays_with_its_speaker() -> None:
    # The README's "I needed / to design": B's turn starts 2 words early.
    turns = (SpeakerTurn(0.0, 10.2, "A"), SpeakerTurn(10.2, 10.8, "B"), SpeakerTurn(10.8, 20.0, "A"))
    words = _sentence_words([(" I", 10.2, 10.4), (" needed", 10.4, 10.7), (" to", 10.8, 10.9),
                             (" design", 10.9, 11.4), (" the", 11.5, 11.6), (" house.", 11.6, 12.2)])
    assert {w.speaker for w in assign_speakers(words, turns)} == {"A"}
    assert [w.speaker for w in assign_speakers(words, turns, sentences=False)][:2] == ["B", "B"]


def test_a_real_interjection_inside_a_sentence_stays() -> None:
    turns = (SpeakerTurn(0.0, 2.0, "A"), SpeakerTurn(2.0, 4.0, "B"), SpeakerTurn(4.0, 6.0, "A"))
    words = _sentence_words([(" So", 0.1, 0.5), (" we", 0.6, 1.0), (" went", 1.1, 1.9),
                             (" wait", 2.1, 2.6), (" what", 2.7, 3.2), (" happened", 3.3, 3.9),
                             (" then", 4.1, 4.6), (" home.", 4.7, 5.5)])
    got = [w.speaker for w in assign_speakers(words, turns)]
    assert got == ["A", "A", "A", "B", "B", "B", "A", "A"]


def test_sentences_end_at_punctuation_and_pauses() -> None:
    turns = (SpeakerTurn(0.0, 1.0, "A"), SpeakerTurn(1.0, 9.0, "B"))
    # "Yes." is A's whole sentence: one word, but not inside B's sentence.
    words = _sentence_words([(" Yes.", 0.2, 0.8), (" I", 1.2, 1.4), (" see", 1.5, 1.9), (" it", 2.0, 2.4)])
    assert [w.speaker for w in assign_speakers(words, turns)] == ["A", "B", "B", "B"]
    # A long pause ends a sentence without punctuation.
    words = _sentence_words([(" yes", 0.2, 0.8), (" I", 2.2, 2.4), (" see", 2.5, 2.9), (" it", 3.0, 3.4)])
    assert [w.speaker for w in assign_speakers(words, turns)] == ["A", "B", "B", "B"]
