"""Runs of words checked against the speakers' voices (``saywho.diarization.verify``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from saywho.diarization import verify
from saywho.types import Diarization, SpeakerTurn, Word

A = (1.0, 0.0, 0.0)
B = (0.0, 1.0, 0.0)


def _diarization(turns: list[SpeakerTurn], speakers=("A", "B")) -> Diarization:
    prints = {"A": A, "B": B, "C": (0.0, 0.0, 1.0)}
    return Diarization(10.0, tuple(turns), tuple(turns), tuple(speakers), {k: prints[k] for k in speakers})


def _sentence(start: float, n: int, speaker: str | None = None, step: float = 0.3) -> list[Word]:
    words = [Word(start + i * step, start + i * step + 0.25, f" w{i}", 0.9, speaker) for i in range(n)]
    words[-1] = dataclasses.replace(words[-1], text=words[-1].text + ".")
    return words


@pytest.fixture
def voices(monkeypatch):
    """A fake voice per stretch of time: B from 4 s on, A before; records the spans."""
    spans: list[tuple[float, float]] = []

    def embed(samples, wanted, *, model=None, workers=1):
        spans.extend(wanted)
        return np.array([B if (a + b) / 2 >= 4.0 else A for a, b in wanted], dtype=np.float32)

    monkeypatch.setattr(verify.embedding, "embed", embed)
    monkeypatch.setattr(verify.embedding, "get_model", lambda device="cpu": None)
    return spans


def test_a_run_in_anothers_voice_moves_to_that_speaker(voices) -> None:
    # The turns say A until 6 s, but B's voice starts at 4 s: the sentence at 4.2 s is B's.
    words = _sentence(0.5, 5) + _sentence(4.2, 5) + _sentence(7.0, 4)
    d = _diarization([SpeakerTurn(0, 6, "A"), SpeakerTurn(6, 9, "B")])
    got = verify.speaker_words(np.zeros(160_000, np.float32), words, d)
    assert [w.speaker for w in got] == ["A"] * 5 + ["B"] * 5 + ["B"] * 4
    assert all(w.speaker is None for w in words)  # input untouched
    assert [(w.start, w.end, w.text) for w in got] == [(w.start, w.end, w.text) for w in words]


def test_short_runs_keep_the_speaker_their_turns_gave_them(voices) -> None:
    words = _sentence(0.5, 5) + _sentence(4.2, 1)  # a 0.25 s word in B's voice
    d = _diarization([SpeakerTurn(0, 6, "A"), SpeakerTurn(6, 9, "B")])
    got = verify.speaker_words(np.zeros(160_000, np.float32), words, d)
    assert [w.speaker for w in got] == ["A"] * 6
    assert all(b - a >= verify.MIN_RUN_S for a, b in voices)


def test_a_speaker_keeps_its_last_run(voices) -> None:
    # B's only words sound like A (its only run): they stay B's, so B keeps words.
    words = _sentence(0.5, 5, "A") + _sentence(2.2, 5, "B")
    d = _diarization([SpeakerTurn(0, 2, "A"), SpeakerTurn(2, 4, "B")])
    got = verify.verified(np.zeros(160_000, np.float32), words, d)
    assert [w.speaker for w in got] == ["A"] * 5 + ["B"] * 5


def test_one_speaker_or_no_words_is_left_alone(voices) -> None:
    one = _diarization([SpeakerTurn(0, 9, "A")], speakers=("A",))
    words = _sentence(4.2, 5)
    assert [w.speaker for w in verify.speaker_words(np.zeros(160_000, np.float32), words, one)] == ["A"] * 5
    assert verify.speaker_words(np.zeros(160_000, np.float32), [], _diarization([SpeakerTurn(0, 9, "A")])) == ()
    assert voices == []


def test_runs_break_at_speaker_changes_and_sentence_ends() -> None:
    words = _sentence(0.0, 3, "A") + _sentence(1.0, 2, "A") + _sentence(2.0, 2, "B")
    assert [list(r) for r in verify.runs(words)] == [[0, 1, 2], [3, 4], [5, 6]]


def test_real_voices_correct_a_mislabelled_turn() -> None:
    """CAM++ on two synthetic voices: a turn given to the wrong speaker has its words moved back."""
    from saywho.diarization.embedding import embed
    from saywho.evaluation.synth import conversation, demo_lines

    conv = conversation(demo_lines(["piper:joe", "espeak:en-us+f3"], 4), gap_s=0.4, seed=1)
    first, second, third, fourth = conv.turns
    prints = embed(conv.samples, [(first.start, first.end), (second.start, second.end)])
    speakers = {first.speaker: "Speaker_0", second.speaker: "Speaker_1"}
    d = Diarization(
        duration=len(conv.samples) / 16_000,
        turns=(), speakers=("Speaker_0", "Speaker_1"),
        # The third line (the first voice's) is wrongly inside Speaker_1's turn.
        exclusive=(SpeakerTurn(first.start, first.end, "Speaker_0"),
                   SpeakerTurn(second.start, third.end, "Speaker_1"),
                   SpeakerTurn(fourth.start, fourth.end, "Speaker_1")),
        fingerprints={"Speaker_0": tuple(prints[0]), "Speaker_1": tuple(prints[1])},
    )
    words = [w for t in conv.turns for w in _sentence(t.start + 0.05, 5, step=(t.duration - 0.3) / 5)]
    got = verify.speaker_words(conv.samples, words, d)
    truth = [speakers[t.speaker] for t in conv.turns for _ in range(5)]
    assert [w.speaker for w in got] == truth


def test_a_long_run_is_fingerprinted_on_its_middle(voices) -> None:
    words = _sentence(0.0, 30, "A") + _sentence(12.0, 3, "B")  # a 9 s run of A
    d = _diarization([SpeakerTurn(0, 9.5, "A"), SpeakerTurn(11, 14, "B")])
    verify.verified(np.zeros(16_000 * 15, np.float32), words, d)
    start, end = voices[0]
    assert end - start == pytest.approx(verify.MAX_SPAN_S)
    assert (start + end) / 2 == pytest.approx((words[0].start + words[29].end) / 2)
