"""Model-free stand-ins for the long-recording tests.

A "voice" is a sine tone of its own pitch; the fake chunk worker finds voiced
stretches by energy, names each pitch a local speaker in order of appearance, gives
it a fingerprint that depends only on its pitch (plus a little content-derived
jitter), and one word per stretch. Everything is a deterministic function of the
chunk's samples, so any executor must produce the same results.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from saywho.longform.chunk import ChunkResult
from saywho.types import SAMPLE_RATE, SpeakerTurn, TranscribeOptions, Word

PITCHES = {"alice": 220.0, "bob": 470.0, "carol": 810.0, "dave": 1330.0}
DIM = 16


def voice_fingerprint(pitch: float, jitter: float = 0.0) -> tuple[float, ...]:
    """A unit vector per pitch band; different pitches are nearly orthogonal."""
    v = np.full(DIM, 0.05)
    v[int(pitch // 100) % DIM] = 1.0
    v[(int(pitch // 100) + 5) % DIM] = 0.3 + jitter
    return tuple(float(x) for x in v / np.linalg.norm(v))


def tone_recording(
    lines: list[tuple[str, float]], *, gap_s: float = 0.6, lead_s: float = 0.5
) -> tuple[np.ndarray, list[SpeakerTurn]]:
    """(speaker, seconds) lines -> samples and exact reference turns."""
    pieces = [np.zeros(int(lead_s * SAMPLE_RATE), np.float32)]
    turns = []
    t = lead_s
    for speaker, seconds in lines:
        n = int(seconds * SAMPLE_RATE)
        x = 0.3 * np.sin(2 * np.pi * PITCHES[speaker] * np.arange(n) / SAMPLE_RATE)
        pieces.append(x.astype(np.float32))
        turns.append(SpeakerTurn(round(t, 3), round(t + n / SAMPLE_RATE, 3), speaker))
        t += n / SAMPLE_RATE
        pieces.append(np.zeros(int(gap_s * SAMPLE_RATE), np.float32))
        t += int(gap_s * SAMPLE_RATE) / SAMPLE_RATE
    return np.concatenate(pieces), turns


def energy_speech(samples: np.ndarray) -> list[tuple[int, int]]:
    """Speech spans by 10 ms frame energy (the fake VAD)."""
    frame = SAMPLE_RATE // 100
    n = len(samples) // frame
    if n == 0:
        return []
    voiced = np.sqrt((samples[: n * frame].reshape(n, frame) ** 2).mean(axis=1)) > 0.01
    padded = np.concatenate([[False], voiced, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a) * frame, int(b) * frame) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _pitch(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    freq = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    found = float(freq[int(np.argmax(spectrum))])
    return min(PITCHES.values(), key=lambda p: abs(p - found))


def fake_process_chunk(samples: np.ndarray, options: TranscribeOptions) -> ChunkResult:
    """The chunk worker's contract, without models."""
    local: dict[float, str] = {}
    turns, words = [], []
    for a, b in energy_speech(samples):
        pitch = _pitch(samples[a:b])
        label = local.setdefault(pitch, f"Speaker_{len(local)}")
        start, end = round(a / SAMPLE_RATE, 3), round(b / SAMPLE_RATE, 3)
        turns.append(SpeakerTurn(start, end, label))
        words.append(Word(start, end, f" p{int(pitch)}", 0.9, label))
    jitter = float(np.abs(samples).sum() % 1.0) * 0.05
    return ChunkResult(
        duration=len(samples) / SAMPLE_RATE,
        segments=tuple(turns),
        speakers_detected=tuple(local.values()),
        fingerprints={label: voice_fingerprint(p, jitter) for p, label in local.items()},
        words=tuple(words),
        models={"asr": "fake"},
        language="en",
        language_probability=1.0,
        exclusive=tuple(turns),
    )


def digest(samples: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()[:16]


def slow_logging_process_chunk(samples: np.ndarray, options: TranscribeOptions) -> ChunkResult:
    """``fake_process_chunk`` that appends its chunk's digest to $FAKE_LOG and takes a while."""
    log = os.environ.get("FAKE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(digest(samples) + "\n")
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    return fake_process_chunk(samples, options)


def pid_process_chunk(samples: np.ndarray, options: TranscribeOptions) -> ChunkResult:
    """``fake_process_chunk``, with the id of the process that ran it as its model name."""
    import dataclasses
    import os

    return dataclasses.replace(fake_process_chunk(samples, options), models={"asr": f"pid{os.getpid()}"})
