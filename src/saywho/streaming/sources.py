"""Live audio sources: raw PCM16 from a pipe, or anything ffmpeg reads, in small 16 kHz blocks,
optionally paced at real-time speed (a file played as if it were live)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, BinaryIO

from saywho.audio.decode import stream_audio
from saywho.streaming.resample import StreamResampler, pcm16_to_float
from saywho.types import SAMPLE_RATE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import numpy as np


def pcm_blocks(pipe: BinaryIO, *, rate: int = SAMPLE_RATE, block_s: float = 0.1) -> Iterator[np.ndarray]:
    """Signed 16-bit little-endian mono PCM at ``rate`` from ``pipe`` -> 16 kHz float32 blocks."""
    resample = StreamResampler(rate)
    size = max(2, int(rate * block_s) * 2)
    odd = b""
    while True:
        data = pipe.read(size)
        if not data:
            break
        data = odd + data
        odd = data[-1:] if len(data) % 2 else b""
        block = resample(pcm16_to_float(data[: len(data) - len(odd)]))
        if len(block):
            yield block
    tail = resample.flush()
    if len(tail):
        yield tail


def decoded_blocks(source: str, *, block_s: float = 0.1) -> Iterator[np.ndarray]:
    """Anything ffmpeg reads (a file, an http/rtsp URL) -> 16 kHz float32 blocks."""
    yield from stream_audio(source, block_s=block_s)


def paced(blocks: Iterator[np.ndarray], *, wait: bool = True, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> Iterator[tuple[np.ndarray, float]]:
    """Each block with the lag: how far the consumer is behind real time (wall time since
    the first block minus the audio handed out). ``wait``: hold each block back until its
    audio would have been heard live (a file played as a live source); without it, a
    live pipe sets the pace and the lag shows when the consumer falls behind it."""
    began = clock()
    heard = 0.0
    for block in blocks:
        heard += len(block) / SAMPLE_RATE
        ahead = began + heard - clock()
        if wait and ahead > 0:
            sleep(ahead)
        yield block, max(0.0, -ahead)
