"""Whisper's repetition loops (``saywho.asr.loops``) and how a live session avoids them."""

from __future__ import annotations

import numpy as np

from saywho.asr.loops import clean_prompt, looped, unlooped
from saywho.types import Word


def _words(text: str, step: float = 0.4) -> list[Word]:
    return [Word(step * i, step * i + 0.3, f" {t}", 0.9) for i, t in enumerate(text.split())]


def test_a_repeated_unit_too_many_words_or_a_high_compression_ratio_is_a_loop() -> None:
    assert looped(_words("Yeah. " * 5), 10.0)  # five copies in a row
    assert looped(_words("I think that we should " * 5), 30.0)  # a five-word unit
    assert looped(_words(" ".join(f"w{i}" for i in range(40))), 5.0)  # 40 words in 5 s
    assert not looped(_words("no, no, no, no. I said it four times."), 10.0)
    assert not looped(_words("Okay. Okay. Does anyone want to see Steve's feedback?"), 15.0)
    assert not looped([], 1.0)


def test_unlooped_keeps_two_copies_of_a_run_and_everything_else() -> None:
    words = _words("so Yeah. Yeah. Yeah. Yeah. Yeah. Yeah. that's it, it it")
    assert [w.text.strip() for w in unlooped(words)] == ["so", "Yeah.", "Yeah.", "that's", "it,", "it", "it"]


def test_a_prompt_keeps_one_copy_of_each_repeated_run_and_its_end() -> None:
    assert clean_prompt("Yeah. " * 60) == "Yeah."
    assert clean_prompt("Right. " + "I think that we should " * 10 + "go.") == "Right. I think that we should go."
    long = " ".join(f"word{i}" for i in range(200))
    cut = clean_prompt(long, max_chars=100)
    assert len(cut) <= 100 and long.endswith(cut) and cut.startswith("word")
    assert clean_prompt("") == ""


def test_a_live_final_decode_that_loops_is_decoded_again_without_the_prompt() -> None:
    """The session's prompt is cleaned of repeats; a final decode that still loops is redone
    without a prompt, and the loop never reaches the transcript or the next prompt."""
    from saywho.streaming import Completed
    from saywho.streaming.engine import LiveOptions, LiveSession
    from saywho.types import SAMPLE_RATE

    class Looping(LiveSession):
        prompts: list[str | None]

        def _speech_spans(self):
            end = min(len(self._audio), int(max(0.0, 3.0 - self._offset / SAMPLE_RATE) * SAMPLE_RATE))
            return [(0, end)] if end > 0 else []

        def _decode(self, audio, *, short=False, prompt=True, lead="", rest=True):
            options = self._asr_options(short=short, prompt=prompt, lead=lead)
            self.prompts.append(options.initial_prompt)
            if options.initial_prompt and not short:  # the prompt drags the final decode into a loop
                return _words("Yeah. " * 40, step=0.07)
            return _words("so we meet on Monday")

        def _speaker_segments(self, item, audio, words, t0):
            return []

    session = Looping(LiveOptions(prompt="Yeah. " * 60))
    session.prompts = []
    events = []
    for _ in range(50):
        events += session.feed(np.zeros(1600, dtype=np.float32))
    events += session.finish()
    assert [e.transcript for e in events if isinstance(e, Completed)] == ["so we meet on Monday"]
    assert set(session.prompts) == {"Yeah.", None}  # cleaned, and once none
    assert session._asr_options().initial_prompt == "Yeah. so we meet on Monday"


def test_a_live_session_with_a_repetitive_prompt_transcribes_a_real_meeting_without_loops(dev_dir) -> None:
    """Prompted with "Okay. " x 60, tiny.en decoded three of the first five utterances of
    the dev00 meeting (15 s) to "Okay." about 110 times each; now the words stay at a
    speaking rate."""
    from scipy.io import wavfile

    from saywho.streaming import Completed
    from saywho.streaming.engine import LiveOptions, LiveSession

    _, audio = wavfile.read(dev_dir / "diarization" / "dev00.wav")
    audio = np.asarray(audio[: 15 * 16_000], dtype=np.float32)
    session = LiveSession(LiveOptions(prompt="Okay. " * 60, identify=False))
    events = []
    for block in np.array_split(audio, 15):
        events += session.feed(block)
    events += session.finish()
    done = [e for e in events if isinstance(e, Completed)]
    words = sum(len(e.transcript.split()) for e in done)
    assert done and 0 < words <= 6 * 15, [e.transcript for e in done]
    assert not any(looped(_words(e.transcript), e.end - e.start) for e in done), [e.transcript for e in done]
