"""The quiet-speech ASR pass: which stretches it decodes again, and how it merges."""

from __future__ import annotations

import numpy as np

from saywho.asr import quiet
from saywho.asr.whisper import AsrResult
from saywho.types import SAMPLE_RATE, Segment, SpeakerTurn, Word


def _audio(loud: tuple[float, float], soft: tuple[float, float], seconds: float = 10.0) -> np.ndarray:
    audio = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    for (a, b), level in ((loud, 0.5), (soft, 0.02)):
        n = int((b - a) * SAMPLE_RATE)
        audio[int(a * SAMPLE_RATE) : int(a * SAMPLE_RATE) + n] = level * np.sin(np.arange(n) / 7.0)
    return audio


def test_only_quiet_speech_without_words_is_decoded_again() -> None:
    audio = _audio(loud=(1.0, 3.0), soft=(5.0, 6.0))
    turns = (SpeakerTurn(1.0, 3.0, "A"), SpeakerTurn(5.0, 6.0, "B"), SpeakerTurn(8.0, 8.2, "B"))
    # The loud stretch has no words either: ASR has judged it, it is left alone.
    assert quiet.missed_regions(audio, (), turns) == [(5.0, 6.0)]
    # A word inside the quiet stretch: nothing is missing there.
    assert quiet.missed_regions(audio, (Word(5.4, 5.6, " yes"),), turns) == []
    # Overlapping turns of two speakers are one stretch.
    both = (SpeakerTurn(5.0, 5.5, "A"), SpeakerTurn(5.3, 6.0, "B"))
    assert quiet.missed_regions(audio, (), both) == [(5.0, 6.0)]
    assert quiet.missed_regions(np.zeros(16000, dtype=np.float32), (), turns) == []
    assert quiet.missed_regions(audio, (), ()) == []


def test_merged_keeps_time_order_and_numbers_segments() -> None:
    first = Segment(id=0, start=0.0, end=1.0, text=" a", words=(Word(0.1, 0.5, " a"),))
    last = Segment(id=1, start=4.0, end=5.0, text=" c", words=(Word(4.1, 4.5, " c"),))
    result = AsrResult(language="en", language_probability=1.0, segments=(first, last),
                       words=first.words + last.words, duration=6.0)
    middle = Segment(id=0, start=2.0, end=3.0, text=" b", words=(Word(2.1, 2.5, " b"),))
    out = quiet.merged(result, (middle,), middle.words)
    assert [s.text for s in out.segments] == [" a", " b", " c"]
    assert [s.id for s in out.segments] == [0, 1, 2]
    assert [w.text for w in out.words] == [" a", " b", " c"]
    assert quiet.merged(result, (), ()) is result
