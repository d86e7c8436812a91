"""Speakers across chunks: the local speakers of every chunk of a long recording -> global speakers.

Speech-weighted average linkage with a cannot-link between local speakers of one chunk
(the chunk's own diarization, which saw every window, told them apart).
"""

from __future__ import annotations

import numpy as np

from saywho.diarization.clustering import validate_count
from saywho.types import SpeakerCount

# Chunk-level fingerprints are means over a chunk's speech, cleaner than the
# per-window ones diarize clusters, so groups of them are cut higher than
# clustering.COSINE_THRESHOLD (0.4). Measured across chunks (bench/longform_memory.py
# prints it): 5-minute chunks of five synthesised voices, same voice 0.976-0.994,
# different voices 0.02-0.55; 20-second chunks, same voice 0.62-0.98. 0.4 merged two
# flite voices (0.44); 0.6 sits in the gap of both.
GLOBAL_COSINE_THRESHOLD = 0.6
# A global speaker needs this much speech over the whole recording to stand alone.
MIN_GLOBAL_SPEECH_S = 2.0


def cluster_local_speakers(
    fingerprints: np.ndarray,
    speech_s: np.ndarray,
    chunk_of: np.ndarray,
    count: SpeakerCount | None = None,
    *,
    threshold: float = GLOBAL_COSINE_THRESHOLD,
    min_speech_s: float = MIN_GLOBAL_SPEECH_S,
) -> np.ndarray:
    """Local speakers of chunks -> global speakers (see ``cluster_with_cannot_links``):
    two local speakers of one chunk may not merge."""
    chunk_of = np.asarray(chunk_of)
    conflicts = (chunk_of[:, None] == chunk_of[None, :]) & ~np.eye(len(chunk_of), dtype=bool)
    return cluster_with_cannot_links(fingerprints, speech_s, conflicts, count, threshold=threshold,
                                     min_speech_s=min_speech_s)


def cluster_with_cannot_links(
    fingerprints: np.ndarray,
    speech_s: np.ndarray,
    conflicts: np.ndarray,
    count: SpeakerCount | None = None,
    *,
    threshold: float = GLOBAL_COSINE_THRESHOLD,
    min_speech_s: float = MIN_GLOBAL_SPEECH_S,
) -> np.ndarray:
    """(N, D) local-speaker fingerprints -> (N,) global labels 0..K-1 (first occurrence order).

    Speech-weighted average linkage on cosine similarity with cannot-links
    (``conflicts`` (N, N) bool: these two are different people): merging stops when the best allowed pair of
    groups is less similar than ``threshold``. ``count`` (num / min / max) moves the
    stop along the same merge order, allowing a cannot-link merge only when nothing
    else can reach ``count.num`` / ``count.max``. A group with less than
    ``min_speech_s`` of speech is then folded into the most similar allowed group.
    """
    count = count or SpeakerCount()
    validate_count(count)
    n = len(fingerprints)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    x = fingerprints / np.maximum(np.linalg.norm(fingerprints, axis=1, keepdims=True), 1e-12)  # (N, D)
    w = np.asarray(speech_s, dtype=np.float64)  # (N,)
    # Per group: weighted similarity sums to every other group, total weight, conflicts.
    sums = (x @ x.T) * w[:, None] * w[None, :]  # (N, N)
    weight = w.copy()  # (N,)
    conflict = np.asarray(conflicts, dtype=bool).copy()  # (N, N) groups that may not merge
    alive = np.ones(n, dtype=bool)
    members = [[i] for i in range(n)]
    upper = count.num if count.num is not None else count.max
    lower = count.num if count.num is not None else count.min
    while alive.sum() > 1:
        k = int(alive.sum())
        average = sums / np.outer(weight, weight)  # (N, N) mean similarity between groups
        blocked = ~np.outer(alive, alive) | np.eye(n, dtype=bool)
        allowed = np.where(blocked | conflict, -np.inf, average)
        a, b = np.unravel_index(int(np.argmax(allowed)), allowed.shape)
        best = allowed[a, b]
        if lower is not None and k <= lower:
            break
        if not (best >= threshold or (upper is not None and k > upper)):
            break
        if best == -np.inf:  # only cannot-link merges remain: the count hint demands one
            forced = np.where(blocked, -np.inf, average)
            a, b = np.unravel_index(int(np.argmax(forced)), forced.shape)
        a, b = min(a, b), max(a, b)
        sums[a, :] += sums[b, :]
        sums[:, a] += sums[:, b]
        weight[a] += weight[b]
        conflict[a, :] |= conflict[b, :]
        conflict[:, a] |= conflict[:, b]
        alive[b] = False
        members[a].extend(members[b])
        sums[b, :] = sums[:, b] = 0.0
        weight[b] = 1.0
    groups = [sorted(members[g]) for g in np.flatnonzero(alive)]
    labels = np.empty(n, dtype=np.int64)
    for k, group in enumerate(groups):
        labels[group] = k
    labels = _fold_quiet_groups(x, w, np.asarray(conflicts, dtype=bool), labels, min_speech_s, lower)
    order: dict[int, int] = {}
    return np.array([order.setdefault(int(k), len(order)) for k in labels], dtype=np.int64)


def _fold_quiet_groups(
    x: np.ndarray, w: np.ndarray, conflicts: np.ndarray, labels: np.ndarray, min_speech_s: float,
    lower: int | None,
) -> np.ndarray:
    """Merge each group with too little speech into the most similar large group it may join."""
    totals = np.bincount(labels, weights=w)  # (K,)
    large = np.flatnonzero(totals >= min_speech_s)
    if len(large) == 0 or len(large) == len(totals):
        return labels
    if lower is not None and len(large) < lower:
        return labels  # the hint asks for these speakers: keep them
    out = labels.copy()
    centroids = np.stack([(x[labels == k] * w[labels == k, None]).sum(axis=0) for k in large])  # (L, D)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    for k in np.flatnonzero(totals < min_speech_s):
        group = labels == k
        similarity = centroids @ (x[group] * w[group, None]).sum(axis=0)  # (L,)
        shares_chunk = np.array([conflicts[np.ix_(group, labels == g)].any() for g in large])
        if not shares_chunk.all():
            similarity = np.where(shares_chunk, -np.inf, similarity)
        out[group] = large[int(np.argmax(similarity))]
    return out


