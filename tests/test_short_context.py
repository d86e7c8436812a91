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

    def __init__(self, ratios: list[float | tuple[float, ...]]) -> None:
        self.ratios = ratios  # per decode: one segment's ratio, or a tuple for several segments
        self.frames: list[int] = []
        self.max_new_tokens: list[object] = []

    def transcribe(self, audio: np.ndarray, **kwargs: object):
        ratios = self.ratios.pop(0)
        self.max_new_tokens.append(kwargs.get("max_new_tokens"))

        def segments():
            features = np.zeros((80, 3_000), np.float32)
            self.frames.append(whisper._trimmed_encode(lambda f: f.shape[-1])(features))
            for i, ratio in enumerate(ratios if isinstance(ratios, tuple) else (ratios,)):
                word = SimpleNamespace(start=float(i), end=i + 0.5, word=f" w{i}", probability=0.9)
                yield SimpleNamespace(start=float(i), end=i + 1.0, text=f" hello{i or ''}", words=[word], seek=0,
                                      tokens=[1], temperature=0.0, avg_logprob=-0.1, compression_ratio=ratio,
                                      no_speech_prob=0.0)

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


def test_a_short_decode_that_loops_after_its_first_segment_keeps_what_came_before() -> None:
    """A loop on 224 tokens of ". . ." took 1.4 s where the decode takes 0.17 s: new tokens
    are capped near what the audio can hold, and the segments before a loop are kept
    without decoding again."""
    fake = FakeWhisper([(1.2, 29.7, 1.1)])
    result = whisper.transcribe(fake, np.zeros(16_000 * 3, np.float32), TranscribeOptions(short_context=True))
    assert fake.frames == [1_000]  # no second decode
    assert [s.text for s in result.segments] == [" hello"] and [w.text for w in result.words] == [" w0"]
    assert fake.max_new_tokens == [whisper.short_context_tokens(3.0)] and whisper.short_context_tokens(3.0) == 50
    assert whisper.short_context_tokens(60.0) == whisper.SHORT_CONTEXT_MAX_TOKENS
    whisper.transcribe(fake := FakeWhisper([1.2]), np.zeros(16_000 * 3, np.float32), TranscribeOptions())
    assert fake.max_new_tokens == [None]  # full context: Whisper's own limit


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
