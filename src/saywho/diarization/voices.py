"""Speakers as voices: one fingerprint per speaker, speakers the segmentation told apart
that clustering merged, and speakers that are only a stray piece of another one's voice.

Pure numpy over the pipeline's pieces (``pipeline._Pieces``): fingerprints (num_pieces,
192), the clean speech of each piece in seconds, and each piece's speaker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from saywho.types import SpeakerCount


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def speaker_voices(fingerprints: np.ndarray, speech_s: np.ndarray, labels: np.ndarray, num_speakers: int) -> np.ndarray:
    """(num_speakers, D) unit fingerprint of each speaker: the mean of its pieces',
    weighted by their clean speech (zeros for a speaker without pieces)."""
    voices = np.zeros((num_speakers, fingerprints.shape[1]))
    for k in range(num_speakers):
        members = labels == k
        if members.any():
            weights = np.maximum(speech_s[members], 1e-3)
            voices[k] = _unit((fingerprints[members] * weights[:, None]).sum(axis=0))
    return voices


def merge_strays(
    speech_s: np.ndarray, voices: np.ndarray, *, max_speech_s: float, min_similarity: float
) -> np.ndarray | None:
    """(num_speakers,) the speaker each one is merged into (itself when kept), or None
    when nothing is merged.

    A speaker with some but under ``max_speech_s`` of speech (``speech_s``, seconds)
    whose voice is at least ``min_similarity`` like another speaker's still standing is
    a stray of that speaker (short, noisy fingerprints of one voice split off), and
    joins the most similar one. The least talkative are judged first.
    """
    into = np.arange(len(speech_s))
    standing = speech_s > 0
    for k in np.argsort(speech_s, kind="stable"):
        if not 0 < speech_s[k] < max_speech_s:
            continue
        others = standing.copy()
        others[k] = False
        if not others.any():
            break
        similarity = np.where(others, voices @ voices[k], -np.inf)
        target = int(np.argmax(similarity))
        if similarity[target] >= min_similarity:
            into[into == k] = target
            standing[k] = False
    return into if (into != np.arange(len(speech_s))).any() else None


def seeded_centroids(
    centroids: np.ndarray,
    count: SpeakerCount,
    alone: np.ndarray,
    frame_step: float,
    pieces: np.ndarray,
    fingerprints: np.ndarray,
    *,
    min_speech_s: float,
) -> np.ndarray:
    """More centroids when the segmentation has told apart more people than clustering found.

    ``alone`` (num_windows, frames, local_speakers) marks where each local speaker talks
    alone; ``pieces`` (num_pieces, 3) is (window, block, local speaker) per fingerprint.
    A window whose local speakers each speak alone for at least ``min_speech_s`` holds
    that many different people (the segmentation model is trained to tell speakers
    apart within a window), even when their fingerprints look alike (two similar voices
    in a short recording). Their mean fingerprints in that window then seed the
    centroids. A given ``num`` or ``max`` still wins.
    """
    if count.num is not None:
        return centroids
    clean_s = alone.sum(axis=1) * frame_step  # (num_windows, local_speakers)
    distinct = (clean_s >= min_speech_s).sum(axis=1)  # (num_windows,)
    wanted = int(distinct.max(initial=0))
    if count.max is not None:
        wanted = min(wanted, count.max)
    if wanted <= len(centroids):
        return centroids
    richest = int(np.argmax(np.where(distinct == distinct.max(), clean_s.sum(axis=1), -1.0)))
    seeds = []
    for s in np.flatnonzero(clean_s[richest] >= min_speech_s):
        members = (pieces[:, 0] == richest) & (pieces[:, 2] == s)
        if members.any():
            seeds.append(_unit(fingerprints[members].mean(axis=0)))
    return np.stack(seeds) if len(seeds) > len(centroids) else centroids
