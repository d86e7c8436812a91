"""Fingerprints -> global speakers. The speaker count (num / min / max) is decided here.

Agglomerative clustering with average linkage on cosine similarity, cut where the
average similarity between two groups drops below ``COSINE_THRESHOLD`` (3D-Speaker's
AHC recipe for CAM++, whose published stopping threshold is 0.4). Clusters carrying
too little speech are folded into the most similar real cluster, so a stray noisy
fingerprint cannot become a speaker of its own. A speaker-count hint overrides the
threshold by cutting the same tree at another height. There is no cap on the number
of speakers.

``cluster`` is meant for any set of fingerprints: the (window, local speaker)
fingerprints of one recording (``diarize``) or the per-chunk speakers of a long one.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import squareform

from saywho.types import SpeakerCount

# Two groups of CAM++ fingerprints whose average pairwise cosine similarity is below
# this are different voices. 3D-Speaker's AHC default (fix_cos_thr=0.4); checked on the
# dev set (AMI far-field, pyannote sample) and on synthesised 4-voice conversations,
# where same-voice groups average > 0.55 and different voices < 0.3. Far-field AMI
# pieces of one voice average 0.36-0.56: see diarization.MIN_SPEAKER_SPEECH_S for the
# 0.3 alternative bench/diarization_loo.py prefers.
COSINE_THRESHOLD = 0.4
# After the cut, two speakers whose mean fingerprints (centroids) are more similar than
# this are one voice split in two (3D-Speaker's "mer_cos" step). Centroids average out
# the noise of short fingerprints, so this sits above COSINE_THRESHOLD.
MERGE_THRESHOLD = 0.55


def validate_count(count: SpeakerCount) -> None:
    """Raise InvalidOptionError for an impossible speaker-count hint.

    The rules live in ``SpeakerCount`` itself (checked when it is built); this checks
    again a value that may have been built around them (``object.__setattr__``)."""
    dataclasses.replace(count)


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def cluster(
    embeddings: np.ndarray,
    count: SpeakerCount = SpeakerCount(),  # noqa: B008 (frozen, immutable)
    *,
    weights: np.ndarray | None = None,
    threshold: float | None = None,
    min_cluster_weight: float = 0.0,
    merge_threshold: float | None = None,
) -> np.ndarray:
    """Group fingerprints into speakers: (N, D) -> (N,) labels 0..K-1.

    ``weights`` (N,) says how much speech each fingerprint stands for (seconds, say;
    default 1 each). A cluster whose total weight is below ``min_cluster_weight`` is a
    *small* cluster: it is merged into the most similar large one and does not count
    as a speaker (unless no cluster is large). ``count.num`` fixes K, ``count.min`` /
    ``count.max`` bound it; otherwise the threshold decides. K never exceeds N. Labels
    are numbered by first occurrence in ``embeddings``. ``threshold`` defaults to
    ``COSINE_THRESHOLD``.
    """
    validate_count(count)
    threshold = COSINE_THRESHOLD if threshold is None else threshold
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    x = _normalize(np.asarray(embeddings, dtype=np.float64))  # (N, D)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)

    # Average linkage on cosine distance: merge height = 1 - mean pairwise similarity.
    distance = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")

    def cut(k: int) -> np.ndarray:
        return fcluster(tree, t=k, criterion="maxclust") - 1

    def num_large(labels: np.ndarray) -> int:
        totals = np.bincount(labels, weights=w)
        return int(np.sum(totals >= min_cluster_weight))

    # The threshold's answer, then the hint's bounds on it.
    by_threshold = fcluster(tree, t=1.0 - threshold, criterion="distance") - 1
    wanted = max(num_large(by_threshold), 1)
    if count.num is not None:
        wanted = count.num
    else:
        if count.min is not None:
            wanted = max(wanted, count.min)
        if count.max is not None:
            wanted = min(wanted, count.max)
    wanted = min(wanted, n)

    if count.num is None and wanted == max(num_large(by_threshold), 1):
        labels = by_threshold
    else:
        # The coarsest cut of the same tree that holds `wanted` large clusters.
        labels = cut(n)
        for k in range(1, n + 1):
            candidate = cut(k)
            if num_large(candidate) >= wanted:
                labels = candidate
                break
    labels = _fold_small_clusters(x, labels, w, min_cluster_weight, wanted)
    if count.num is None:
        floor = count.min if count.min is not None else 1
        labels = _merge_close_clusters(x, _renumber(labels), MERGE_THRESHOLD if merge_threshold is None else merge_threshold, floor)
    return _renumber(labels)


def _merge_close_clusters(x: np.ndarray, labels: np.ndarray, threshold: float, floor: int) -> np.ndarray:
    """Merge the two clusters with the most similar centroids while above ``threshold``
    (never below ``floor`` clusters)."""
    labels = labels.copy()
    while labels.max() + 1 > floor:
        c = centroids(x, labels)
        similarity = c @ c.T
        np.fill_diagonal(similarity, -np.inf)
        i, j = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
        if similarity[i, j] <= threshold:
            break
        labels[labels == max(i, j)] = min(i, j)
        labels = _renumber(labels)
    return labels


def _fold_small_clusters(
    x: np.ndarray, labels: np.ndarray, w: np.ndarray, min_weight: float, wanted: int
) -> np.ndarray:
    """Merge each small cluster into the large cluster with the most similar centroid."""
    totals = np.bincount(labels, weights=w)
    ids = np.arange(len(totals))
    large = ids[totals >= min_weight]
    if len(large) == 0:
        # Nothing is large: keep the `wanted` heaviest clusters.
        large = ids[np.argsort(-totals, kind="stable")[:wanted]]
    small = np.setdiff1d(ids[totals > 0], large)
    if len(small) == 0:
        return labels
    centroids = _normalize(np.stack([x[labels == k].mean(axis=0) for k in large]))  # (L, D)
    out = labels.copy()
    for k in small:
        members = labels == k
        similarity = _normalize(x[members].mean(axis=0, keepdims=True)) @ centroids.T
        out[members] = large[int(np.argmax(similarity))]
    return out


def _renumber(labels: np.ndarray) -> np.ndarray:
    order: dict[int, int] = {}
    for label in labels:
        order.setdefault(int(label), len(order))
    return np.array([order[int(label)] for label in labels], dtype=np.int64)


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit-norm mean fingerprint of each label 0..K-1: (K, D)."""
    k = int(labels.max()) + 1 if len(labels) else 0
    x = _normalize(np.asarray(embeddings, dtype=np.float64))
    return _normalize(np.stack([x[labels == i].mean(axis=0) for i in range(k)])) if k else np.zeros((0, x.shape[1]))


def assign_distinct(similarity: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Cannot-link assignment: local speakers of one window go to different clusters.

    ``similarity`` (num_windows, local_speakers, K) between each local speaker and each
    cluster centroid; ``active`` (num_windows, local_speakers) bool. Returns
    (num_windows, local_speakers) cluster ids, -1 for inactive speakers (and for the
    extra speakers of a window holding more active speakers than there are clusters).
    Each window is solved with the Hungarian algorithm (maximum total similarity).
    """
    num_windows, num_local, _ = similarity.shape
    out = np.full((num_windows, num_local), -1, dtype=np.int64)
    for c in range(num_windows):
        speakers = np.flatnonzero(active[c])
        if len(speakers) == 0:
            continue
        rows, cols = linear_sum_assignment(-similarity[c, speakers])
        out[c, speakers[rows]] = cols
    return out


# --- spectral clustering with a normalised maximum eigengap (NME-SC) ----------------


def _kmeans(x: np.ndarray, k: int, *, seed: int = 0, restarts: int = 8, iterations: int = 50) -> np.ndarray:
    """Plain k-means (k-means++ seeding, best of ``restarts``): (N, D) -> (N,) labels."""
    rng = np.random.default_rng(seed)
    n = len(x)
    best, best_cost = np.zeros(n, dtype=np.int64), np.inf
    for _ in range(restarts):
        centers = [x[rng.integers(n)]]
        for _ in range(1, k):
            d = np.min(((x[:, None, :] - np.array(centers)[None]) ** 2).sum(-1), axis=1)
            total = d.sum()
            centers.append(x[rng.choice(n, p=d / total)] if total > 0 else x[rng.integers(n)])
        c = np.array(centers)
        labels = np.zeros(n, dtype=np.int64)
        for _ in range(iterations):
            d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
            new = np.argmin(d, axis=1)
            if _ and np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                if np.any(labels == j):
                    c[j] = x[labels == j].mean(axis=0)
        cost = float(((x - c[labels]) ** 2).sum())
        if cost < best_cost:
            best, best_cost = labels, cost
    return best


def spectral_count(
    embeddings: np.ndarray, *, max_speakers: int = 10, max_p_ratio: float = 0.5
) -> tuple[int, np.ndarray]:
    """NME-SC (Park et al. 2019): (estimated count, spectral embedding (N, max_speakers)).

    The cosine affinity is binarised to each row's ``p`` nearest neighbours and
    symmetrised; for each ``p`` the Laplacian's largest eigengap (among the first
    ``max_speakers``) is normalised by the largest eigenvalue, and the ``p`` with the
    smallest ``p / N / gap`` is kept. The count is the position of that gap.
    """
    x = _normalize(np.asarray(embeddings, dtype=np.float64))
    n = len(x)
    if n < 3:
        return 1, np.zeros((n, 1))
    affinity = x @ x.T
    np.fill_diagonal(affinity, 1.0)
    order = np.argsort(-affinity, axis=1)
    max_k = max(1, min(max_speakers, n - 1))
    best: tuple[float, int, np.ndarray | None] = (np.inf, 1, None)
    for p in range(2, max(3, int(max_p_ratio * n) + 1)):
        binary = np.zeros_like(affinity)
        np.put_along_axis(binary, order[:, :p], 1.0, axis=1)
        a = (binary + binary.T) / 2
        laplacian = np.diag(a.sum(axis=1)) - a
        values, vectors = np.linalg.eigh(laplacian)
        gaps = np.diff(values[: max_k + 1])
        k = int(np.argmax(gaps)) + 1
        ratio = p / n / (gaps[k - 1] / max(values[-1], 1e-10) + 1e-10)
        if ratio < best[0]:
            best = (ratio, k, vectors)
    _, k, found = best
    assert found is not None  # the loop runs at least once
    return k, found


def spectral(embeddings: np.ndarray, count: SpeakerCount = SpeakerCount(), *, max_speakers: int = 10) -> np.ndarray:  # noqa: B008
    """NME-SC labels (N,) 0..K-1; a count hint replaces (num) or bounds (min/max) the
    estimated count."""
    validate_count(count)
    n = len(embeddings)
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    limit = max(max_speakers, count.num or 0, count.min or 0)
    k, vectors = spectral_count(embeddings, max_speakers=limit)
    if count.num is not None:
        k = count.num
    if count.min is not None:
        k = max(k, count.min)
    if count.max is not None:
        k = min(k, count.max)
    k = max(1, min(k, n))
    if k == 1 or vectors is None or vectors.shape[1] < k:
        return np.zeros(n, dtype=np.int64) if k == 1 else cluster(embeddings, SpeakerCount(num=k))
    return _renumber(_kmeans(vectors[:, :k], k))


def fold_small(
    embeddings: np.ndarray, labels: np.ndarray, weights: np.ndarray, min_weight: float, count: SpeakerCount
) -> np.ndarray:
    """Fold clusters under ``min_weight`` into the closest large one, as ``cluster`` does,
    keeping at least ``count.num`` / ``count.min`` clusters."""
    if len(labels) == 0:
        return labels
    x = _normalize(np.asarray(embeddings, dtype=np.float64))
    keep = count.num or count.min or 1
    totals = np.bincount(labels, weights=weights)
    if np.sum(totals >= min_weight) < keep:
        min_weight = float(np.sort(totals)[::-1][min(keep, len(totals)) - 1])
    return _renumber(_fold_small_clusters(x, labels, np.asarray(weights, dtype=np.float64), min_weight, keep))
