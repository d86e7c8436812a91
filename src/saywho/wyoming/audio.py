"""Wyoming PCM in and out: any declared rate/width/channels -> 16 kHz mono float32, and back.

Each ``audio-chunk`` carries its own format (the protocol says so), so chunks are
converted one by one to mono float32 at their own rate and resampled to 16 kHz in
runs of equal rate when the utterance ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from math import gcd

import numpy as np

from saywho.errors import AudioDecodeError, AudioTooLongError
from saywho.types import SAMPLE_RATE

logger = logging.getLogger(__name__)

MIN_RATE, MAX_RATE = 4_000, 192_000
WIDTHS = (1, 2, 3, 4)  # bytes: unsigned 8-bit, then signed little-endian 16/24/32-bit
MAX_CHANNELS = 16


@dataclass(frozen=True, slots=True)
class PcmFormat:
    rate: int
    width: int
    channels: int

    @classmethod
    def from_data(cls, data: dict, what: str) -> PcmFormat:
        """The format an ``audio-start``/``audio-chunk`` declares; ``AudioDecodeError`` if unusable."""
        try:
            rate, width, channels = (int(data[k]) for k in ("rate", "width", "channels"))
        except (KeyError, TypeError, ValueError):
            raise AudioDecodeError(f"{what} must declare integer rate, width and channels") from None
        if not MIN_RATE <= rate <= MAX_RATE:
            raise AudioDecodeError(f"{what} declares rate {rate} Hz; saywho takes {MIN_RATE}-{MAX_RATE} Hz")
        if width not in WIDTHS:
            raise AudioDecodeError(f"{what} declares sample width {width} bytes; saywho takes 1, 2, 3 or 4")
        if not 1 <= channels <= MAX_CHANNELS:
            raise AudioDecodeError(f"{what} declares {channels} channels; saywho takes 1-{MAX_CHANNELS}")
        return cls(rate, width, channels)

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels


def pcm_to_mono(payload: bytes, fmt: PcmFormat) -> np.ndarray:
    """(frames,) float32 in [-1, 1]: integer PCM decoded, channels averaged."""
    if len(payload) % fmt.frame_bytes:
        raise AudioDecodeError(
            f"an audio-chunk of {len(payload)} bytes is not whole frames of {fmt.frame_bytes} bytes "
            f"({fmt.width}-byte samples x {fmt.channels} channels)"
        )
    raw = np.frombuffer(payload, dtype=np.uint8)
    if fmt.width == 1:
        samples = (raw.astype(np.float32) - 128.0) / 128.0
    elif fmt.width == 3:
        triples = raw.reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        samples = values.astype(np.float32) / float(1 << 23)
    else:
        dtype = "<i2" if fmt.width == 2 else "<i4"
        samples = np.frombuffer(payload, dtype=dtype).astype(np.float32) / float(1 << (8 * fmt.width - 1))
    return samples.reshape(-1, fmt.channels).mean(axis=1, dtype=np.float32)  # (frames,)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """``samples`` at ``rate`` Hz -> ``target`` Hz (polyphase, anti-aliased)."""
    if rate == target or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(samples, target // g, rate // g).astype(np.float32)


def float_to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


@dataclass
class Utterance:
    """The audio of one voice command, bounded to ``max_s`` seconds (``AudioTooLongError`` beyond)."""

    max_s: float
    runs: list[tuple[int, list[np.ndarray]]] = field(default_factory=list)  # (rate, mono pieces)
    seconds: float = 0.0

    def add(self, payload: bytes, fmt: PcmFormat) -> None:
        mono = pcm_to_mono(payload, fmt)
        self.seconds += len(mono) / fmt.rate
        if self.seconds > self.max_s:
            raise AudioTooLongError(
                f"the utterance is longer than {self.max_s:g} s; voice commands are limited to {self.max_s:g} s"
            )
        if self.runs and self.runs[-1][0] == fmt.rate:
            self.runs[-1][1].append(mono)
        else:
            self.runs.append((fmt.rate, [mono]))

    def samples(self) -> np.ndarray:
        """(num_samples,) float32 at 16 kHz."""
        pieces = [resample(np.concatenate(chunks), rate) for rate, chunks in self.runs]
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
