"""PCM16 bytes -> float32, and a resampler that gives the same samples however the input is cut."""

from __future__ import annotations

from math import gcd

import numpy as np

from saywho.errors import InvalidOptionError
from saywho.types import SAMPLE_RATE


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit mono PCM -> float32 in [-1, 1)."""
    if len(data) % 2:
        raise InvalidOptionError(f"PCM16 audio must have an even number of bytes (got {len(data)})",
                                 param="audio")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


class StreamResampler:
    """``rate`` Hz -> 16 kHz, chunk by chunk, equal to resampling the whole stream at once
    (polyphase, scipy's ``resample_poly``) except at the very start and end.

    Output for input up to ``CONTEXT`` samples before the end is held back until more
    input (or ``flush``) arrives, so chunk edges never see zero padding.
    """

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise InvalidOptionError(f"sample rate must be positive (got {rate})", param="rate")
        g = gcd(rate, SAMPLE_RATE)
        self.up, self.down = SAMPLE_RATE // g, rate // g
        self.context = 64 * self.down  # input samples of filter context on each side
        self._buf = np.zeros(0, dtype=np.float32)
        self._base = 0  # absolute input index of _buf[0]
        self._next = 0  # absolute input index (a multiple of down) where output continues

    def __call__(self, samples: np.ndarray, *, final: bool = False) -> np.ndarray:
        if self.up == self.down:
            return np.asarray(samples, dtype=np.float32)
        from scipy.signal import resample_poly

        self._buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float32)])
        end = self._base + len(self._buf)
        stop = end if final else (end - self.context) // self.down * self.down
        if stop <= self._next:
            return np.zeros(0, dtype=np.float32)
        seg_start = max(self._base, self._next - self.context)
        seg_end = end if final else min(end, stop + self.context)
        out = resample_poly(self._buf[seg_start - self._base: seg_end - self._base], self.up, self.down)
        first = (self._next - seg_start) * self.up // self.down
        count = -(-(stop - self._next) * self.up // self.down)  # ceil
        result = out[first: first + count].astype(np.float32)
        keep_from = max(self._base, stop - self.context)
        self._buf = self._buf[keep_from - self._base:]
        self._base = keep_from
        self._next = stop
        return result

    def flush(self) -> np.ndarray:
        return self(np.zeros(0, dtype=np.float32), final=True)
