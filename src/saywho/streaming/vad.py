"""Speech in a growing live buffer: Silero VAD (the model bundled with faster-whisper), each
32 ms window scored once.

``faster_whisper.vad.get_speech_timestamps`` scores the whole array it is given; the live
engine asks every 0.2 s about a buffer of up to 15 s, so most of that work was repeated.
Silero reads the windows in order, carrying its state from one to the next, so scoring
only the new windows, with the state the last one left, gives the same probabilities as
scoring the buffer again from its start. Speech spans are then found from the
probabilities with the same rules (threshold, a lower threshold to end speech, minimum
silence and speech lengths, padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saywho.types import SAMPLE_RATE

WINDOW = 512  # samples per Silero window (32 ms)
CONTEXT = 64  # samples of the previous window Silero also reads


@dataclass(frozen=True, slots=True)
class SpanRules:
    threshold: float = 0.5  # speech starts at this probability
    min_silence_ms: int = 500  # silence (below threshold - 0.15) that ends speech
    pad_ms: int = 100  # added on each side of a span
    min_speech_ms: int = 250  # shorter spans are dropped


class StreamingVad:
    """Speech probabilities of a buffer that grows at its end; ``reset`` when its start moves."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.probabilities = np.zeros(0, dtype=np.float32)
        self._state = (np.zeros((1, 1, 128), dtype=np.float32), np.zeros((1, 1, 128), dtype=np.float32))
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def update(self, audio: np.ndarray) -> np.ndarray:
        """The probabilities of every whole window of ``audio`` (the buffer since the last
        ``reset``; only windows not scored before are run through the model)."""
        from faster_whisper.vad import get_vad_model

        done, whole = len(self.probabilities), len(audio) // WINDOW
        if whole > done:
            new = np.asarray(audio[done * WINDOW: whole * WINDOW], dtype=np.float32).reshape(-1, WINDOW)
            context = np.concatenate([self._context[None], new[:-1, -CONTEXT:]])
            h, c = self._state
            out, h, c = get_vad_model().session.run(
                None, {"input": np.concatenate([context, new], axis=1), "h": h, "c": c})
            self._state, self._context = (h, c), new[-1, -CONTEXT:].copy()
            self.probabilities = np.concatenate([self.probabilities, np.asarray(out, dtype=np.float32).reshape(-1)])
        return self.probabilities


def speech_spans(probabilities: np.ndarray, length: int, rules: SpanRules) -> list[tuple[int, int]]:
    """Speech spans ``[(start, end)]`` in samples of a buffer of ``length`` samples whose
    windows scored ``probabilities``. Speech runs from a window at ``threshold`` or above
    until ``min_silence_ms`` of windows below ``threshold - 0.15``. Speech still going on
    at the end of the buffer ends there; speech followed by a shorter silence at the end of
    the buffer ends where that silence began (plus the padding), so that a caller sees the
    pause grow from its first window, not only once it is ``min_silence_ms`` long."""
    low = max(rules.threshold - 0.15, 0.01)
    min_silence = rules.min_silence_ms * SAMPLE_RATE / 1000
    raw: list[tuple[int, int]] = []
    start: int | None = None
    quiet: int | None = None  # where the current silence began
    for i, p in enumerate(probabilities):
        if p >= rules.threshold:
            if start is None:
                start = i * WINDOW
            quiet = None
        elif start is not None and p < low:
            if quiet is None:
                quiet = i * WINDOW
            if i * WINDOW - quiet >= min_silence:
                raw.append((start, quiet))
                start, quiet = None, None
    if start is not None:
        raw.append((start, length))
    min_speech = rules.min_speech_ms * SAMPLE_RATE / 1000
    raw = [(a, b) for a, b in raw if b - a > min_speech]  # speech going on is measured to the end
    if quiet is not None and raw and raw[-1][1] == length:
        raw[-1] = (raw[-1][0], quiet)
    pad = rules.pad_ms * SAMPLE_RATE // 1000
    spans: list[tuple[int, int]] = []
    for i, (a, b) in enumerate(raw):
        start_at = max(0, a - pad)
        end_at = min(length, b + pad)
        if spans and start_at < spans[-1][1]:  # pads that would overlap meet halfway
            middle = (spans[-1][1] - pad + a) // 2
            spans[-1] = (spans[-1][0], middle)
            start_at = middle
        spans.append((start_at, end_at if i + 1 < len(raw) or b < length else length))
    return spans
