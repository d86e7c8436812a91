"""Synthesised multi-speaker speech with known turns, for tests, benchmarks and demos.

Voices are ``flite:slt``, ``flite:awb``, ``flite:rms``, ``flite:kal16``,
``espeak:en-us+f3`` (any espeak-ng voice) and ``piper:joe`` (the bundled Piper voice).
flite and espeak-ng are Debian packages; Piper comes with ``piper-tts``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from saywho.audio.decode import decode_audio, write_wav
from saywho.errors import InvalidOptionError
from saywho.models.registry import BUNDLED
from saywho.types import SAMPLE_RATE, SpeakerTurn

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

DEFAULT_VOICES = ("flite:slt", "flite:awb", "piper:joe", "flite:rms", "espeak:en-us+f3", "flite:kal16")

_piper_lock = threading.Lock()
_piper_voice = None


def available(voice: str) -> bool:
    engine = voice.split(":", 1)[0]
    if engine == "flite":
        return shutil.which("flite") is not None
    if engine == "espeak":
        return shutil.which("espeak-ng") is not None
    if engine == "piper":
        try:
            BUNDLED["en_US-joe-medium"].locate()
            import piper  # noqa: F401
        except Exception:
            return False
        return True
    return False


def _piper() -> object:
    global _piper_voice
    with _piper_lock:
        if _piper_voice is None:
            from piper import PiperVoice  # lazy: optional dependency (saywho[tts])

            _piper_voice = PiperVoice.load(str(BUNDLED["en_US-joe-medium"].locate()))
        return _piper_voice


def speak(voice: str, text: str) -> np.ndarray:
    """One utterance as 16 kHz mono float32, leading/trailing silence trimmed."""
    engine, _, name = voice.partition(":")
    if engine == "piper":
        voice_model = _piper()
        # No sampling noise: Piper's VITS draws random noise on every call, which made the
        # test material (and so the tests' figures) change from run to run.
        from piper import SynthesisConfig

        quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        chunks = list(voice_model.synthesize(text, syn_config=quiet))  # type: ignore[attr-defined]
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        rate = chunks[0].sample_rate
        samples = _resample(audio, rate)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "u.wav"
            if engine == "flite":
                cmd = ["flite", "-voice", name or "slt", "-t", text, "-o", str(out)]
            elif engine == "espeak":
                cmd = ["espeak-ng", "-v", name or "en-us", "-s", "165", "-w", str(out), text]
            else:
                raise InvalidOptionError(f"unknown voice engine in '{voice}'")
            subprocess.run(cmd, check=True, capture_output=True)
            samples = decode_audio(out).samples
    return trim(samples)


def _resample(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return audio
    from scipy.signal import resample_poly

    g = np.gcd(rate, SAMPLE_RATE)
    return resample_poly(audio, SAMPLE_RATE // g, rate // g).astype(np.float32)


def trim(samples: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Cut leading and trailing near-silence (10 ms frames under ``threshold`` RMS)."""
    frame = SAMPLE_RATE // 100
    n = len(samples) // frame
    if n == 0:
        return samples
    rms = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1))
    voiced = np.flatnonzero(rms > threshold)
    if voiced.size == 0:
        return samples[:0]
    return samples[voiced[0] * frame: (voiced[-1] + 1) * frame]


@dataclass(frozen=True, slots=True)
class Conversation:
    samples: np.ndarray
    turns: tuple[SpeakerTurn, ...]  # reference: speaker = voice name
    texts: tuple[tuple[str, str], ...]  # (voice, text) in order

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def write(self, path: str | os.PathLike[str]) -> Path:
        write_wav(path, self.samples)
        return Path(path)

    def rttm(self, uri: str = "audio") -> str:
        return "".join(
            f"SPEAKER {uri} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n" for t in self.turns
        )


def conversation(
    lines: Sequence[tuple[str, str]],
    *,
    gap_s: float = 0.5,
    lead_s: float = 0.5,
    gains: dict[str, float] | None = None,
    seed: int = 0,
    noise_db: float | None = -60.0,
) -> Conversation:
    """Concatenate (voice, text) utterances with silences; the reference turns are exact."""
    rng = np.random.default_rng(seed)
    pieces: list[np.ndarray] = [np.zeros(int(lead_s * SAMPLE_RATE), np.float32)]
    turns: list[SpeakerTurn] = []
    t = lead_s
    cache: dict[tuple[str, str], np.ndarray] = {}
    for voice, text in lines:
        key = (voice, text)
        if key not in cache:
            cache[key] = speak(voice, text)
        u = cache[key] * (gains or {}).get(voice, 1.0)
        turns.append(SpeakerTurn(round(t, 3), round(t + len(u) / SAMPLE_RATE, 3), voice))
        pieces.append(u)
        t += len(u) / SAMPLE_RATE
        gap = gap_s * float(rng.uniform(0.8, 1.2))
        pieces.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
        t += len(pieces[-1]) / SAMPLE_RATE
    samples = np.concatenate(pieces).astype(np.float32)
    if noise_db is not None:
        samples = samples + (10 ** (noise_db / 20) * rng.standard_normal(len(samples))).astype(np.float32)
    return Conversation(samples=samples, turns=tuple(turns), texts=tuple(lines))


# Short, distinct sentences for test conversations (public-domain style prose).
SENTENCES = (
    "Good morning everyone, let us start with the budget for next quarter.",
    "I think the numbers look fine, but the travel costs went up again.",
    "We should book the trains earlier, the prices double in the last week.",
    "Can somebody send me the spreadsheet before lunch please?",
    "The new design review is scheduled for Thursday afternoon.",
    "I will not be there on Thursday, could we move it to Friday?",
    "Friday works for me, as long as it is before three o'clock.",
    "Then Friday at two, in the small meeting room on the second floor.",
    "Did anyone hear back from the customer about the delivery date?",
    "Yes, they want the first batch of units by the end of the month.",
    "That is tight, but the factory said it can be done.",
    "Let us write that down as an action for the operations team.",
)


def demo_lines(voices: Sequence[str], turns: int = 8) -> list[tuple[str, str]]:
    """A round-robin conversation of ``turns`` lines across ``voices``."""
    return [(voices[i % len(voices)], SENTENCES[i % len(SENTENCES)]) for i in range(turns)]
