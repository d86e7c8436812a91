"""The chunk plan of a long recording: cuts near a target length, each in a silence.

The plan is made while the file is decoded block by block (``audio.stream_audio``):
the planner holds at most one chunk being filled plus one finished chunk held back
(so that a short tail can join it), never the whole file. Each finished chunk is
handed to ``on_chunk`` (which writes it to the work directory) and then dropped.

A cut goes in the middle of a pause that Silero VAD finds within ``search_s`` of the
target; the pause closest to the target among those long enough to be a real pause
between words wins. Chunks do not overlap: a cut in a pause splits no word, and an
overlap would only make the stitcher guess which copy of a word to keep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from saywho.errors import InvalidOptionError
from saywho.types import SAMPLE_RATE

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_S = 300.0
# A pause at least this long is a pause between words (or turns), not a stop consonant.
MIN_PAUSE_S = 0.3
# A tail shorter than this fraction of the target joins the chunk before it: a speaker
# heard for a few seconds gives an unreliable fingerprint.
MIN_TAIL_FRACTION = 0.5

# (samples) -> list of (start, end) sample spans of speech
SpeechFinder = Callable[[np.ndarray], list[tuple[int, int]]]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of the recording: samples ``start`` (inclusive) to ``end`` (exclusive)."""

    index: int
    start: int
    end: int

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE

    def to_dict(self) -> dict[str, int]:
        return {"index": self.index, "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> Chunk:
        return cls(int(d["index"]), int(d["start"]), int(d["end"]))


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """All chunks of a recording, in order, and what decoding had to say."""

    chunks: tuple[Chunk, ...]
    duration: float
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"duration": self.duration, "warnings": list(self.warnings),
                "chunks": [c.to_dict() for c in self.chunks]}

    @classmethod
    def from_dict(cls, d: dict) -> ChunkPlan:
        return cls(tuple(Chunk.from_dict(c) for c in d["chunks"]), float(d["duration"]), tuple(d["warnings"]))


def silero_speech(samples: np.ndarray) -> list[tuple[int, int]]:
    """Speech spans (sample indices) by Silero VAD, tuned to see short pauses."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    spans = get_speech_timestamps(
        samples, VadOptions(threshold=0.5, min_silence_duration_ms=100, speech_pad_ms=30)
    )
    return [(int(s["start"]), int(s["end"])) for s in spans]


def find_cut(
    samples: np.ndarray, target: int, search: int, *, speech: SpeechFinder = silero_speech
) -> int:
    """The sample index in ``samples`` where a chunk ending near ``target`` should end.

    Looks at ``samples[target - search : target + search]`` and returns the middle of
    the pause nearest to the target among pauses of at least ``MIN_PAUSE_S``; else the
    longest pause; else (continuous sound) the whole window. Within the chosen stretch the
    cut goes to the quiet 10 ms nearest its middle.
    """
    lo = max(0, target - search)
    hi = min(len(samples), target + search)
    window = samples[lo:hi]  # (window_samples,)
    spans = speech(window)
    # Pauses: the gaps between speech spans, and before the first / after the last.
    edges = [0] + [x for span in spans for x in span] + [len(window)]
    pauses = [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if b > a]
    if pauses:
        long_enough = [p for p in pauses if p[1] - p[0] >= MIN_PAUSE_S * SAMPLE_RATE]
        if long_enough:
            a, b = min(long_enough, key=lambda p: abs((p[0] + p[1]) // 2 + lo - target))
        else:
            a, b = max(pauses, key=lambda p: p[1] - p[0])
        # A pause touching the window's edge may go on beyond it: aim at its inner end.
        aim = (a + b) // 2
        if a == 0 and lo > 0 and b < len(window):
            aim = max(0, b - int(MIN_PAUSE_S * SAMPLE_RATE) // 2)
        elif b == len(window) and a > 0 and hi < len(samples):
            aim = min(len(window), a + int(MIN_PAUSE_S * SAMPLE_RATE) // 2)
        return lo + _quietest(window, a, b, aim)
    return lo + _quietest(window, 0, len(window), target - lo)


def _quietest(window: np.ndarray, a: int, b: int, aim: int) -> int:
    """The quiet 10 ms frame in ``window[a:b]`` nearest to ``aim`` (its centre, in samples).

    "Quiet" is within 6 dB of the quietest frame there, so a pause the VAD saw in
    a sound it does not take for speech (music, a tone) still lands in silence.
    """
    frame = SAMPLE_RATE // 100
    n = (b - a) // frame
    if n == 0:
        return (a + b) // 2
    rms = np.sqrt((window[a: a + n * frame].reshape(n, frame).astype(np.float64) ** 2).mean(axis=1))  # (n,)
    quiet = np.flatnonzero(rms <= 2.0 * rms.min() + 1e-6)
    centres = a + quiet * frame + frame // 2
    return int(centres[np.argmin(np.abs(centres - aim))])


def plan_chunks(
    blocks: Iterable[np.ndarray],
    *,
    chunk_s: float = DEFAULT_CHUNK_S,
    search_s: float | None = None,
    on_chunk: Callable[[Chunk, np.ndarray], None] | None = None,
    on_progress: Callable[[float], None] | None = None,
    speech: SpeechFinder = silero_speech,
    warnings: Iterable[str] = (),
) -> ChunkPlan:
    """Cut a stream of 16 kHz mono blocks into chunks of about ``chunk_s`` seconds.

    ``on_chunk(chunk, samples)`` receives each chunk's samples once, in order.
    ``search_s`` (default: a tenth of the target, at most 30 s) is how far from the
    target a cut may move to find a pause. ``on_progress(seconds_decoded)`` is
    called after each block. ``warnings`` (usually the list that ``stream_audio``
    appends to) is read once the stream ends and copied into the plan.
    """
    if chunk_s <= 0:
        raise InvalidOptionError(f"the chunk length must be positive, got {chunk_s}", param="chunk_s")
    target = int(chunk_s * SAMPLE_RATE)
    search = int((search_s if search_s is not None else min(30.0, chunk_s / 10)) * SAMPLE_RATE)
    chunks: list[Chunk] = []
    held: np.ndarray | None = None  # the last finished chunk, held back for a short tail
    held_start = 0
    buffer = np.zeros(0, np.float32)  # samples after the last cut
    buffer_start = 0

    def finish(samples: np.ndarray, start: int) -> None:
        chunk = Chunk(len(chunks), start, start + len(samples))
        chunks.append(chunk)
        if on_chunk is not None:
            on_chunk(chunk, samples)

    for block in blocks:
        block = np.nan_to_num(np.asarray(block, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
        buffer = np.concatenate([buffer, block]) if len(buffer) else block
        while len(buffer) >= target + search:
            cut = max(1, find_cut(buffer, target, search, speech=speech))
            if held is not None:
                finish(held, held_start)
            held, held_start = buffer[:cut].copy(), buffer_start
            buffer, buffer_start = buffer[cut:].copy(), buffer_start + cut
        if on_progress is not None:
            on_progress((buffer_start + len(buffer)) / SAMPLE_RATE)

    if held is not None and len(buffer) < MIN_TAIL_FRACTION * target:
        held = np.concatenate([held, buffer])
        buffer = buffer[:0]
    if held is not None:
        finish(held, held_start)
    if len(buffer):
        finish(buffer, buffer_start)
    total = chunks[-1].end if chunks else 0
    return ChunkPlan(chunks=tuple(chunks), duration=total / SAMPLE_RATE, warnings=tuple(warnings))
