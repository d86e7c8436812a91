"""Short encoder context for live decoding (``TranscribeOptions.short_context``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from saywho.asr import whisper
from saywho.types import TranscribeOptions


def test_context_is_the_audio_plus_a_margin_at_least_ten_seconds() -> None:
    assert whisper.short_context_frames(0.5) == 1_000
    assert whisper.short_context_frames(3.0) == 1_000
    assert whisper.short_context_frames(9.5) == 1_200  # ceil(9.5 + 2) s
    assert whisper.short_context_frames(15.0) == 1_700
    assert whisper.short_context_frames(27.9) == 0  # 30 s or more: Whisper's own window


class FakeWhisper:
    """faster-whisper's interface: records the encoder frames each decode ran with and
    returns one segment with the compression ratio queued for that decode."""

    model = SimpleNamespace(is_multilingual=False)

    def __init__(self, ratios: list[float]) -> None:
        self.ratios = ratios
        self.frames: list[int] = []

    def transcribe(self, audio: np.ndarray, **kwargs: object):
        ratio = self.ratios.pop(0)

        def segments():
            features = np.zeros((80, 3_000), np.float32)
            self.frames.append(whisper._trimmed_encode(lambda f: f.shape[-1])(features))
            yield SimpleNamespace(start=0.0, end=1.0, text=" hello", words=[], seek=0, tokens=[1],
                                  temperature=0.0, avg_logprob=-0.1, compression_ratio=ratio, no_speech_prob=0.0)

        return segments(), SimpleNamespace(language="en", language_probability=1.0)


def test_short_context_encodes_only_the_audio() -> None:
    fake = FakeWhisper([1.2])
    seen: list[str] = []
    result = whisper.transcribe(fake, np.zeros(16_000 * 3, np.float32), TranscribeOptions(short_context=True),
                                on_segment=lambda s: seen.append(s.text))
    assert fake.frames == [1_000]
    assert [s.text for s in result.segments] == [" hello"]
    assert seen == [" hello"]


def test_a_looping_short_decode_is_decoded_again_at_full_context() -> None:
    fake = FakeWhisper([3.5, 1.2])  # the first (short-context) decode repeats itself
    seen: list[str] = []
    result = whisper.transcribe(fake, np.zeros(16_000 * 3, np.float32), TranscribeOptions(short_context=True),
                                on_segment=lambda s: seen.append(s.text))
    assert fake.frames == [1_000, 3_000]
    assert [s.compression_ratio for s in result.segments] == [1.2]
    assert seen == [" hello"]  # the looping decode's segments were never shown


def test_full_context_by_default() -> None:
    fake = FakeWhisper([1.2])
    whisper.transcribe(fake, np.zeros(16_000 * 3, np.float32), TranscribeOptions())
    assert fake.frames == [3_000]


def test_live_partials_use_the_short_context() -> None:
    from saywho.streaming import LiveOptions, LiveSession

    session = LiveSession(LiveOptions())
    assert session._asr_options(short=True).short_context  # partials while the speech goes on
    assert not session._asr_options().short_context  # the decode that becomes the final text
    assert not LiveSession(LiveOptions(short_context=False))._asr_options(short=True).short_context


def test_short_context_keeps_the_words_of_real_speech(dev_dir) -> None:
    """The real model: JFK's 11 s give the same words with a 13 s context as with 30 s."""
    from saywho.audio.decode import load_audio
    from saywho.pipeline import run_asr

    audio = load_audio(dev_dir / "asr" / "jfk.wav").samples
    base = TranscribeOptions(diarize=False, identify=False)
    full = [w.text for w in run_asr(audio, base).words]
    short = [w.text for w in run_asr(audio, TranscribeOptions(diarize=False, identify=False,
                                                               short_context=True)).words]
    assert short == full and len(full) > 15
