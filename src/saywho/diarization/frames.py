"""Frame-level helpers of the diarization pipeline: labels from blocks to frames, the
most active speakers per frame, runs of frames to turns."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from saywho.diarization.segmentation import FrameTiming


def frame_labels(block_labels: np.ndarray, active: np.ndarray, frame_block: np.ndarray) -> np.ndarray:
    """(num_frames,) labels of one local speaker in one window, from its block labels.

    Where the label changes from one block to the next, the voice changed somewhere in
    those two blocks (a block's fingerprint takes the voice that fills most of it): the
    change is put in the longest pause of this local speaker there, when it has one,
    instead of at the block edge.
    """
    labels = block_labels[frame_block].copy()
    for b in range(len(block_labels) - 1):
        left, right = block_labels[b], block_labels[b + 1]
        if left < 0 or right < 0 or left == right:
            continue
        span = np.flatnonzero((frame_block == b) | (frame_block == b + 1))  # frames of the two blocks
        silent = active[span] <= 0
        if not silent.any() or silent.all():
            continue
        # The longest run of silent frames inside the span (not touching its ends).
        padded = np.concatenate([[0], silent.astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(padded))
        runs = [(e - a, a, e) for a, e in zip(edges[::2], edges[1::2], strict=True) if a > 0 and e < len(span)]
        if not runs:
            continue
        _, first, after = max(runs)
        labels[span[:first]] = left
        labels[span[after:]] = right
    return labels


def spread_labels(
    pieces: np.ndarray, piece_labels: np.ndarray, num_windows: int, blocks_per_window: int, num_local: int
) -> np.ndarray:
    """(num_windows, local_speakers, blocks_per_window) global label of every block of
    every local speaker: its own piece's, else the nearest piece's of the same local
    speaker in the same window (ties to the earlier block); -1 without any piece."""
    out = np.full((num_windows, num_local, blocks_per_window), -1, dtype=np.int64)
    window = pieces[:, 1] < 0  # a window piece labels all the blocks of its local speaker
    out[pieces[window, 0], pieces[window, 2], :] = piece_labels[window, None]
    out[pieces[~window, 0], pieces[~window, 2], pieces[~window, 1]] = piece_labels[~window]
    blocks = np.arange(blocks_per_window)
    for c in range(num_windows):
        for s in range(num_local):
            known = np.flatnonzero(out[c, s] >= 0)
            if 0 < len(known) < blocks_per_window:
                nearest = known[np.argmin(np.abs(blocks[:, None] - known[None, :]), axis=1)]
                out[c, s] = out[c, s][nearest]
    return out


def top_speakers(scores: np.ndarray, count: np.ndarray) -> np.ndarray:
    """(frames, K) 0/1: at each frame the ``count`` highest-scoring speakers with score > 0."""
    ranked = np.argsort(-scores, axis=1, kind="stable")  # (frames, K)
    rank_of = np.empty_like(ranked)
    np.put_along_axis(rank_of, ranked, np.arange(scores.shape[1])[None, :].repeat(len(scores), 0), axis=1)
    return ((rank_of < count[:, None]) & (scores > 0)).astype(np.int8)


def turns(binary: np.ndarray, timing: FrameTiming, duration: float) -> list[tuple[float, float, int]]:
    """(frames, K) 0/1 -> (start, end, speaker) for every run of active frames."""
    turns = []
    half = timing.step / 2
    for k in range(binary.shape[1]):
        padded = np.concatenate([[0], binary[:, k], [0]])
        changes = np.flatnonzero(np.diff(padded))
        for first, after in zip(changes[::2], changes[1::2], strict=True):
            start = max(0.0, float(timing.center(first)) - half)
            end = min(duration, float(timing.center(after - 1)) + half)
            if end > start:
                turns.append((round(start, 3), round(end, 3), k))
    return turns


def force_speech(
    scores: np.ndarray, speaking: np.ndarray, exclusive: np.ndarray, count: np.ndarray, step: float,
    min_speech_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """With a hinted count: a speaker left with under min_speech_s of exclusive
    speech takes the frames where its own activity is strongest (its score at least
    half its maximum), in place of the weakest speaker there."""
    speaking, exclusive = speaking.copy(), exclusive.copy()
    for k in np.argsort(scores.sum(axis=0)):
        if exclusive[:, k].sum() * step >= min_speech_s or scores[:, k].max(initial=0) <= 0:
            continue
        frames = scores[:, k] >= 0.5 * scores[:, k].max()
        need = int(np.ceil(min_speech_s / step)) + 1  # a frame more: turn edges round
        if frames.sum() < need:  # its strongest frames are too few: its best ones, then their neighbours
            ranked = np.argsort(-scores[:, k], kind="stable")[:need]
            frames[ranked[scores[ranked, k] > 0]] = True
            while 0 < frames.sum() < min(need, len(frames)):
                frames[1:] |= frames[:-1].copy()
                frames[:-1] |= frames[1:].copy()
        exclusive[frames] = 0
        exclusive[frames, k] = 1
        full = frames & (speaking.sum(axis=1) >= count) & (speaking[:, k] == 0)
        for t in np.flatnonzero(full):
            others = np.flatnonzero(speaking[t])
            speaking[t, others[np.argmin(scores[t, others])]] = 0
        speaking[frames, k] = 1
    return speaking, exclusive


def heard_when_raised(count: np.ndarray, activity: np.ndarray, offsets: np.ndarray, raised: np.ndarray) -> np.ndarray:
    """(total_frames,) speakers per frame, at least 1 where the raised windows hear speech.

    A quiet voice is heard by the windows that segmentation raised to hear it
    (``segmentation.MAX_WINDOW_GAIN``), not by those that hold a louder voice elsewhere:
    where at least half the raised windows over a frame hear speech that the average
    over all windows calls silence, it is speech. ``activity`` is (num_windows,
    num_frames, local_speakers), ``offsets`` each window's first frame, ``raised``
    (num_windows,) bool.
    """
    if not raised.any():
        return count
    num_frames = activity.shape[1]
    span = max(len(count), int(offsets[-1]) + num_frames)
    heard, seen = np.zeros(span), np.zeros(span)
    for w in np.flatnonzero(raised).tolist():
        heard[offsets[w] : offsets[w] + num_frames] += activity[w].sum(axis=1)
        seen[offsets[w] : offsets[w] + num_frames] += 1
    heard, seen = heard[: len(count)], seen[: len(count)]
    quiet = (count == 0) & (heard > 0) & (heard >= 0.5 * seen)
    return np.where(quiet, 1, count)


def window_mean(values: np.ndarray, offsets: np.ndarray, total_frames: int) -> np.ndarray:
    """At every frame of the recording, the mean of ``values`` ((num_windows, num_frames):
    one value per frame of each window, e.g. its number of active local speakers) over the
    windows that cover it; ``offsets`` is each window's first frame. At most
    ``total_frames`` long."""
    num_windows, num_frames = values.shape
    span = int(offsets[-1]) + num_frames
    sums, coverage = np.zeros(span), np.zeros(span)
    for c in range(num_windows):
        sums[offsets[c] : offsets[c] + num_frames] += values[c]
        coverage[offsets[c] : offsets[c] + num_frames] += 1
    return sums[:total_frames] / np.maximum(coverage[:total_frames], 1)


def frame_counts(mean_count: np.ndarray, speech_at: float, overlap_at: float) -> np.ndarray:
    """Speakers at each frame from the mean of the windows' local counts: speech where the
    mean exceeds ``speech_at``, a k-th speaker where it reaches ``k - 1 + overlap_at``."""
    count = (mean_count > speech_at).astype(np.int64)
    for k in range(2, int(np.ceil(mean_count.max(initial=0))) + 2):
        count += mean_count >= k - 1 + overlap_at
    return count
