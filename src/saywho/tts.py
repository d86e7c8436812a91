"""Text-to-speech with Piper, encoded to mp3 / opus / aac / flac / wav / pcm with PyAV.

OpenAI's voice names (alloy, echo, nova...) map onto the installed Piper voice(s);
``pcm`` is OpenAI's raw 24 kHz 16-bit little-endian mono.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from saywho.errors import InvalidOptionError, ModelNotFoundError
from saywho.models.registry import BUNDLED

logger = logging.getLogger(__name__)

# OpenAI's voices; all map onto an installed voice (only one is bundled today).
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
)
# OpenAI's speech model names, accepted as "the default Piper voice".
OPENAI_TTS_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "piper")

FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
MEDIA_TYPES = {
    "mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
    "wav": "audio/wav", "pcm": "audio/pcm",
}
OUTPUT_RATE = 24_000  # OpenAI's rate for pcm; used for every format but opus (48 kHz)
MIN_SPEED, MAX_SPEED = 0.25, 4.0

# (container, codec, sample format) for PyAV.
_ENCODERS = {
    "mp3": ("mp3", "libmp3lame", "s16p"),
    "opus": ("ogg", "libopus", "s16"),
    "aac": ("adts", "aac", "fltp"),
    "flac": ("flac", "flac", "s16"),
    "wav": ("wav", "pcm_s16le", "s16"),
}


def installed_voices() -> list[str]:
    """Names of the Piper voices that are installed."""
    names = []
    for m in BUNDLED.values():
        if m.kind != "tts":
            continue
        try:
            m.locate()
        except ModelNotFoundError:
            continue
        names.append(m.alias)
    return names


def resolve_voice(voice: str, default: str) -> str:
    """An installed voice name for ``voice`` (an installed name, or an OpenAI name)."""
    installed = installed_voices()
    if not installed:
        raise ModelNotFoundError("no text-to-speech voice is installed (pip install 'saywho[tts]')",
                                 param="voice")
    if voice in installed:
        return voice
    if voice in OPENAI_VOICES:
        return default if default in installed else installed[0]
    valid = ", ".join([*installed, *OPENAI_VOICES])
    raise InvalidOptionError(f"unknown voice '{voice}': choose one of {valid}", param="voice")


def check_model(model: str) -> None:
    """Accept OpenAI's speech model names and installed voice names."""
    if model in OPENAI_TTS_MODELS or model in installed_voices():
        return
    raise ModelNotFoundError(
        f"unknown speech model '{model}': use one of {', '.join([*OPENAI_TTS_MODELS, *installed_voices()])}",
        param="model",
    )


def load_voice(name: str) -> Any:
    """Loader for the model manager: a ``piper.PiperVoice``."""
    bundled = BUNDLED.get(name)
    if bundled is None or bundled.kind != "tts":
        raise ModelNotFoundError(f"unknown voice '{name}'", param="voice")
    from piper import PiperVoice

    return PiperVoice.load(str(bundled.locate()))


@dataclass(frozen=True, slots=True)
class Speech:
    samples: np.ndarray  # (num_samples,) int16
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def float_samples(self, rate: int) -> np.ndarray:
        """(num_samples,) float32 in [-1, 1] at ``rate`` Hz (e.g. 16 kHz for ASR)."""
        frames = _resampled(self, rate)
        if not frames:
            return np.zeros(0, np.float32)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32) / 32768.0


def synthesize(voice: Any, text: str, *, speed: float = 1.0) -> Speech:
    """Speak ``text`` with a loaded Piper voice; ``speed`` 0.25-4.0 (1 = natural)."""
    if not text.strip():
        raise InvalidOptionError("input is empty", param="input")
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise InvalidOptionError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}", param="speed")
    from piper.config import SynthesisConfig

    config = SynthesisConfig(length_scale=1.0 / speed)
    chunks = list(voice.synthesize(text, syn_config=config))
    if not chunks:
        return Speech(np.zeros(0, np.int16), voice.config.sample_rate)
    samples = np.concatenate([np.frombuffer(c.audio_int16_bytes, dtype=np.int16) for c in chunks])
    return Speech(samples, chunks[0].sample_rate)


def encode(speech: Speech, fmt: str) -> bytes:
    """Encode 16-bit mono speech as ``fmt`` (one of FORMATS)."""
    if fmt not in FORMATS:
        raise InvalidOptionError(f"unknown response_format '{fmt}': choose one of {', '.join(FORMATS)}",
                                 param="response_format")
    import av

    rate = 48_000 if fmt == "opus" else OUTPUT_RATE
    frames = _resampled(speech, rate)
    if fmt == "pcm":
        return b"".join(f.to_ndarray().astype("<i2").tobytes() for f in frames)
    container_name, codec, sample_format = _ENCODERS[fmt]
    out = io.BytesIO()
    with av.open(out, mode="w", format=container_name) as container:
        stream = cast("av.AudioStream", container.add_stream(codec, rate=rate, layout="mono"))
        stream.format = sample_format
        if fmt == "mp3":
            stream.bit_rate = 64_000
        reformat = av.AudioResampler(format=sample_format, layout="mono", rate=rate)
        for frame in frames:
            for f in reformat.resample(frame):
                container.mux(stream.encode(f))
        for f in reformat.resample(None):
            container.mux(stream.encode(f))
        container.mux(stream.encode(None))
    return out.getvalue()


def _resampled(speech: Speech, rate: int) -> list[Any]:
    """Packed s16 mono frames at ``rate`` (1024 samples each, the AAC frame size)."""
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate, frame_size=1024)
    frame = av.AudioFrame.from_ndarray(speech.samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = speech.sample_rate
    return [*resampler.resample(frame), *resampler.resample(None)]
