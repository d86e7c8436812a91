"""Who spoke when: the diarization pipeline, step by step (pyannote 3.x style).

1. segmentation: local speaker activity in sliding 10 s windows (at most 3 local
   speakers per window, 2 at once);
2. embeddings: one fingerprint per *piece* (a local speaker within one 1.25 s block
   of a window, central blocks only, so each instant is embedded twice), from the
   frames where that speaker talks alone (all of its frames when it never does);
3. clustering: fingerprints -> global speakers, the local speakers of one (window,
   block) going to different speakers; blocks without a piece take the label of the
   nearest piece of the same local speaker;
4. reconstruction: each window's activity, relabelled with global speakers, summed
   over overlapping windows; at every frame the estimated number of speakers
   (the rounded mean of the windows' local counts) keeps the most active ones;
5. turns (overlap-aware), exclusive turns (one speaker at a time), and one
   fingerprint per speaker (the mean fingerprint of its speech).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from saywho.diarization import clustering, embedding, segmentation
from saywho.diarization.chunk_clustering import cluster_with_cannot_links
from saywho.diarization.frames import force_speech as _force_speech
from saywho.diarization.frames import frame_counts as _frame_counts
from saywho.diarization.frames import frame_labels as _frame_labels
from saywho.diarization.frames import heard_when_raised as _heard_when_raised
from saywho.diarization.frames import spread_labels as _spread_labels
from saywho.diarization.frames import top_speakers as _top_speakers
from saywho.diarization.frames import turns as _turns
from saywho.diarization.frames import window_mean as _window_mean
from saywho.diarization.voices import merge_strays, seeded_centroids, speaker_voices
from saywho.errors import InvalidOptionError
from saywho.types import (
    SAMPLE_RATE,
    Diarization,
    DiarizeOptions,
    Hook,
    SpeakerCount,
    SpeakerTurn,
    no_progress,
)

logger = logging.getLogger(__name__)

# Windows start every STEP_S (pyannote uses 1 s): every instant is seen by 8 windows,
# whose local speaker counts are averaged. 2.5 s halves the segmentation cost but
# doubles the count errors at speech edges on the dev set (DER +1 to +5 points).
STEP_S = 1.25
# Windows are cut into blocks of BLOCK_S on one global grid (a divisor of STEP_S); a
# local speaker is labelled block by block, since the segmentation model sometimes
# keeps two far-field voices as one local speaker for a whole window. 3D-Speaker
# embeds 1.5 s sub-segments; CAM++ is still reliable at this length.
BLOCK_S = 1.25
SEGMENTATION_BATCH = 16
# A piece (one local speaker in one STEP_S block of a window) is embedded when it
# holds this much speech; its own (non-overlapped) speech when it has that much.
MIN_PIECE_SPEECH_S = 0.25
# A local speaker with this much speech in a window but no piece there gets one
# fingerprint from the whole window (see _pieces).
MIN_WINDOW_SPEECH_S = 0.1
# The weight of a window piece's activity in reconstruction: it fills frames where no
# block piece found the speakers the frame needs, and never outranks one that did.
WINDOW_PIECE_WEIGHT = 0.01
# A window raised by at least this gain (segmentation.MAX_WINDOW_GAIN) held no loud
# voice: where such windows hear speech, a frame is speech (see _reconstruct).
RAISED_WINDOW_GAIN = 4.0
# Pieces take part in clustering only with this much speech of their own (pyannote:
# 20 % of a window); shorter ones are assigned to the nearest speaker afterwards.
MIN_CLUSTERING_SPEECH_S = 1.0
# Each instant is embedded in about this many windows (see _embedded_blocks).
EMBEDDINGS_PER_INSTANT = 2
# A speaker must hold about this much speech to stand on its own (else it is folded
# into the closest speaker). 2 s folds every speaker with under 2 s of clean speech
# -- most speakers of a real 3-4 person clip -- into a big one; every leave-one-file-out
# fold of bench/diarization_loo.py picked 0.25 s with COSINE_THRESHOLD 0.3 (dev DER 29.4
# -> 26.5 %), which cost dev00 a third speaker (over test_diarization_count's 20 % check).
MIN_SPEAKER_SPEECH_S = 0.5
# A local speaker is active where its probability exceeds this (None: the most likely
# powerset class, as pyannote does). 0.4 finds more quiet/short speech (7-file dev DER
# 25.7 % vs 26.5 %) but adds false alarms on dev00/dev01 (3-file DER 22.1 % vs 20.0 %).
SEGMENTATION_ONSET: float | None = None
# "ahc" (average-linkage, cut at clustering.COSINE_THRESHOLD) or "nmesc" (spectral
# clustering, count from the normalised maximum eigengap).
CLUSTERING_METHOD = "ahc"
# A speaker left with under STRAY_SPEECH_S of speech whose voice is at least
# STRAY_SIMILARITY like another speaker's is a stray of that speaker (the short, noisy
# fingerprints of one voice split off), and is merged into it. On simulated meetings not
# used for tuning (3-10 speakers, new seeds) most extra speakers were such strays
# (0.7-2.3 s, cosine 0.42-0.51 to their own voice); the dev set's genuine speakers with
# under 2 s of speech sit at cosine 0.29 or below to every other speaker.
STRAY_SPEECH_S = 2.0
STRAY_SIMILARITY = 0.4
# With num_speakers / min_speakers, every hinted speaker gets at least this much
# exclusive speech (the frames where its own activity is strongest).
MIN_HINTED_SPEECH_S = 0.5
# A hinted speaker that clustering did not find is seeded from the fingerprint least
# like every speaker found, with the pieces at least this similar to it (and closer to it
# than to any found speaker). 0.3-0.7 give the same dev and simulated-meeting DER.
HINT_SEED_SIMILARITY = 0.5
# A frame is speech where the windows' mean local count exceeds SPEECH_COUNT_AT, with k
# speakers where it reaches k - 1 + OVERLAP_COUNT_AT (0.5: rounding, which scored most
# dev overlap as one speaker). 0.3: dev DER 24.0 -> 23.3 %, simulated meetings 23.1 ->
# 23.2 %; 0.1 gains more on AMI but adds false alarms in turn-taking (docs/BENCHMARKS.md).
SPEECH_COUNT_AT = 0.5
OVERLAP_COUNT_AT = 0.3
# Audio whose peak stays below this (-80 dBFS) is digital silence.
SILENCE_PEAK = 1e-4


@dataclass
class _Pieces:
    """What segmentation and embedding found: the input of clustering and reconstruction."""

    duration: float
    starts: np.ndarray  # (num_windows,) window starts, seconds
    activity: np.ndarray  # (num_windows, num_frames, local_speakers) 0/1
    timing: segmentation.FrameTiming
    frame_block: np.ndarray  # (num_frames,) block of each frame within a window
    blocks_per_window: int
    pieces: np.ndarray  # (num_pieces, 3): window, block, local speaker
    speech_s: np.ndarray  # (num_pieces,) clean (single-speaker) speech of each piece
    fingerprints: np.ndarray  # (num_pieces, 192)
    gains: np.ndarray  # (num_windows,) gain segmentation gave each window (1: not raised)

    @property
    def alone(self) -> np.ndarray:
        return self.activity * (self.activity.sum(axis=2, keepdims=True) == 1)


def diarize(audio: np.ndarray, options: DiarizeOptions = DiarizeOptions(), *, hook: Hook = no_progress) -> Diarization:  # noqa: B008 (frozen, immutable)
    """Diarize 16 kHz mono float32 ``audio``.

    Labels are ``Speaker_0, Speaker_1, ...`` in order of first appearance. Silence gives
    an empty Diarization. Progress goes to ``hook("segmentation" | "embeddings" |
    "clustering", completed=..., total=...)``.
    """
    clustering.validate_count(options.speakers)
    audio = _normalized(audio)
    duration = len(audio) / SAMPLE_RATE
    found = _pieces(audio, hook, device=options.device)
    if found is None:
        return _empty(duration)
    hook("clustering", completed=0, total=1)
    piece_labels, num_speakers = _label_pieces(found, options.speakers)
    hook("clustering", completed=1, total=1)
    return _reconstruct(found, piece_labels, num_speakers, options.speakers)


def diarize_counts(
    audio: np.ndarray, counts: tuple[SpeakerCount, ...], *, device: str = "cpu"
) -> tuple[Diarization, ...]:
    """``diarize`` once per speaker-count hint in ``counts``, sharing the segmentation and
    the fingerprints (the costly steps): what comparing hints on one recording needs."""
    for count in counts:
        clustering.validate_count(count)
    audio = _normalized(audio)
    found = _pieces(audio, device=device)
    if found is None:
        return tuple(_empty(len(audio) / SAMPLE_RATE) for _ in counts)
    return tuple(_reconstruct(found, *_label_pieces(found, count), count) for count in counts)


def _pieces(audio: np.ndarray, hook: Hook = no_progress, *, device: str = "cpu") -> _Pieces | None:
    """Steps 1 and 2: segmentation, then one fingerprint per piece (None: no speech).

    Both models run on ONNX Runtime on a CPU, on torch otherwise (``onnx_runtime``)."""
    duration = len(audio) / SAMPLE_RATE
    if len(audio) == 0 or float(np.max(np.abs(audio))) == 0.0:
        return None

    # 1. Segmentation
    starts, activity = segmentation.segment(
        audio,
        step_s=STEP_S,
        batch_size=SEGMENTATION_BATCH,
        model=segmentation.get_model(device),
        on_batch=lambda done, total: hook("segmentation", completed=done, total=total),
        onset=SEGMENTATION_ONSET,
    )  # (num_windows,), (num_windows, num_frames, local_speakers)
    timing = segmentation.frame_timing()
    if not activity.any():
        return None

    # 2. Embeddings: each window is cut into blocks of STEP_S (the same global grid for
    #    every window); a *piece* is one local speaker in one block. Pieces are embedded
    #    in the central blocks of each window only, so every instant is embedded about
    #    twice (not once per window), and a local speaker that the segmentation model
    #    failed to split (far-field audio) is still labelled block by block.
    num_windows, num_frames, num_local = activity.shape
    blocks_per_window = round(segmentation.WINDOW_S / BLOCK_S)
    frame_times = float(timing.center(0)) + np.arange(num_frames) * timing.step  # (num_frames,) within a window
    frame_block = np.minimum((frame_times // BLOCK_S).astype(np.int64), blocks_per_window - 1)  # (num_frames,)
    alone = activity * (activity.sum(axis=2, keepdims=True) == 1)  # (num_windows, num_frames, local_speakers)
    embedded_blocks = _embedded_blocks(
        num_windows, blocks_per_window, round(EMBEDDINGS_PER_INSTANT * STEP_S / BLOCK_S)
    )  # (num_windows, blocks_per_window) bool
    features = embedding.fbank(audio)  # (feature_frames, 80)
    pieces, frame_sets, piece_speech_s = [], [], []
    for c, b in np.argwhere(embedded_blocks):
        in_block = frame_block == b
        for s in range(num_local):
            clean = alone[c, :, s] * in_block
            clean_s = clean.sum() * timing.step
            mask = clean if clean_s >= MIN_PIECE_SPEECH_S else activity[c, :, s] * in_block
            if mask.sum() * timing.step < MIN_PIECE_SPEECH_S:
                continue
            pieces.append((c, b, s))
            piece_speech_s.append(clean_s)
            frame_sets.append(embedding.masked_frames(mask, starts[c] + frame_times[0], timing.step, len(features)))
    # Local speakers with speech in a window but no piece in its embedded blocks (a short
    # utterance split by a block edge, speech away from the window's centre) would lose
    # that window's evidence: one fingerprint from all their frames in the window, labelled
    # after clustering (block -1 marks such a window piece).
    has_piece = np.zeros((num_windows, num_local), dtype=bool)
    for c, _, s in pieces:
        has_piece[c, s] = True
    talk_s = activity.sum(axis=1) * timing.step  # (num_windows, local_speakers)
    for c, s in np.argwhere(~has_piece & (talk_s >= MIN_WINDOW_SPEECH_S)):
        clean = alone[c, :, s]
        mask = clean if clean.sum() * timing.step >= MIN_PIECE_SPEECH_S else activity[c, :, s]
        pieces.append((c, -1, s))
        piece_speech_s.append(0.0)
        frame_sets.append(embedding.masked_frames(mask, starts[c] + frame_times[0], timing.step, len(features)))
    if not pieces:
        return None
    hook("embeddings", completed=0, total=len(pieces))
    fingerprints = embedding.embed_frame_sets(
        features,
        frame_sets,
        model=embedding.get_model(device),
        on_batch=lambda done, total: hook("embeddings", completed=done, total=total),
    )  # (num_pieces, 192)
    return _Pieces(
        duration=duration,
        starts=starts,
        activity=activity,
        timing=timing,
        frame_block=frame_block,
        blocks_per_window=blocks_per_window,
        pieces=np.array(pieces, dtype=np.int64),
        speech_s=np.array(piece_speech_s),
        fingerprints=fingerprints,
        gains=segmentation.window_gains(audio, starts),
    )


def _label_pieces(p: _Pieces, count: SpeakerCount) -> tuple[np.ndarray, int]:
    """Step 3: a global speaker for every piece -> ((num_pieces,) labels, num_speakers).

    Clustering of the reliable pieces, then a cannot-link assignment of all pieces: the
    local speakers of one (window, block) go to different speakers.
    """
    speech_s, fingerprints, pieces_arr = p.speech_s, p.fingerprints, p.pieces
    num_windows, _, num_local = p.activity.shape
    reliable = speech_s >= MIN_CLUSTERING_SPEECH_S
    if not reliable.any():
        reliable = speech_s >= speech_s.max()
    if _wanted(count) is not None and reliable.sum() < _wanted(count):
        reliable = np.ones(len(speech_s), dtype=bool)  # too few clean pieces for the hint
    if _wanted(count) is not None:
        centroids = _hinted_centroids(p, count, reliable)  # (num_speakers, 192)
    elif CLUSTERING_METHOD == "cahc":
        # Two local speakers of one window are two people (the segmentation model told
        # them apart): a cannot-link between their pieces.
        idx = np.flatnonzero(reliable)
        same_window = pieces_arr[idx, 0][:, None] == pieces_arr[idx, 0][None, :]
        other_local = pieces_arr[idx, 2][:, None] != pieces_arr[idx, 2][None, :]
        labels = cluster_with_cannot_links(
            fingerprints[reliable], speech_s[reliable] / EMBEDDINGS_PER_INSTANT, same_window & other_local, count,
            threshold=clustering.COSINE_THRESHOLD, min_speech_s=MIN_SPEAKER_SPEECH_S,
        )
    elif CLUSTERING_METHOD == "nmesc":
        labels = clustering.spectral(fingerprints[reliable], count)
        labels = clustering.fold_small(
            fingerprints[reliable], labels, speech_s[reliable] / EMBEDDINGS_PER_INSTANT, MIN_SPEAKER_SPEECH_S, count
        )
    else:
        labels = clustering.cluster(
            fingerprints[reliable],
            count,
            weights=speech_s[reliable] / EMBEDDINGS_PER_INSTANT,
            min_cluster_weight=MIN_SPEAKER_SPEECH_S,
        )  # (num_reliable,)
    if _wanted(count) is None:
        centroids = clustering.centroids(fingerprints[reliable], labels)  # (num_speakers, 192)
    centroids = seeded_centroids(centroids, count, p.alone, p.timing.step, pieces_arr, fingerprints,
                                 min_speech_s=MIN_SPEAKER_SPEECH_S)
    num_speakers = len(centroids)
    block = pieces_arr[:, 1] >= 0  # (num_pieces,) block pieces; the others are window pieces
    group = pieces_arr[block, 0] * p.blocks_per_window + pieces_arr[block, 1]  # flat (window, block)
    similarity = np.full((num_windows * p.blocks_per_window, num_local, num_speakers), -2.0)
    similarity[group, pieces_arr[block, 2]] = fingerprints[block] @ centroids.T
    has_piece = np.zeros((num_windows * p.blocks_per_window, num_local), dtype=bool)
    has_piece[group, pieces_arr[block, 2]] = True
    piece_labels = np.full(len(pieces_arr), -1, dtype=np.int64)
    piece_labels[block] = clustering.assign_distinct(similarity, has_piece)[group, pieces_arr[block, 2]]
    # Window pieces: the most similar speaker not already held by another local speaker
    # of the same window.
    for i in np.flatnonzero(~block):
        c, _, s = pieces_arr[i]
        taken = piece_labels[block & (pieces_arr[:, 0] == c) & (pieces_arr[:, 2] != s)]
        scores = fingerprints[i] @ centroids.T
        if len(taken) and len(set(taken.tolist())) < num_speakers:
            scores[np.unique(taken)] = -np.inf
        piece_labels[i] = int(np.argmax(scores))
    if _wanted(count) is not None:
        piece_labels = _fill_empty_speakers(piece_labels, fingerprints @ centroids.T, speech_s)
    return piece_labels, num_speakers


def _hinted_centroids(p: _Pieces, count: SpeakerCount, reliable: np.ndarray) -> np.ndarray:
    """Centroids for a hinted count (``num``, or ``min``): the clustering's own answer
    (bounded by the hint from above), plus one new speaker per missing one, seeded where
    the fingerprints are least like any speaker found.

    Cutting the clustering tree deeper until it holds enough speakers (the obvious way)
    splits the talkative speaker: in a real meeting the speakers the threshold missed
    are those with little clean speech, whose pieces are too short to be clustered at
    all (dev set with true counts: DER 27.2 % that way, worse than no hint, 26.3 %;
    25.1 % this way; simulated meetings of 2-8 speakers: 23.3 %, no hint 23.7 %).
    """
    wanted = _wanted(count)
    assert wanted is not None
    speech = p.speech_s[reliable] / EMBEDDINGS_PER_INSTANT
    natural = clustering.cluster(
        p.fingerprints[reliable], SpeakerCount(max=count.num if count.num is not None else count.max),
        weights=speech, min_cluster_weight=MIN_SPEAKER_SPEECH_S,
    )
    centroids = clustering.centroids(p.fingerprints[reliable], natural)  # (k, 192)
    norms = np.linalg.norm(p.fingerprints, axis=1, keepdims=True)
    unit = p.fingerprints / np.maximum(norms, 1e-12)  # (num_pieces, 192)
    usable = norms[:, 0] > 1e-6
    while len(centroids) < wanted and usable.any():
        nearest = np.where(usable, (unit @ centroids.T).max(axis=1), np.inf)  # (num_pieces,)
        seed = int(np.argmin(nearest))
        like_seed = unit @ unit[seed]
        group = usable & (like_seed >= HINT_SEED_SIMILARITY) & (like_seed > nearest)  # closer to it than to any speaker
        group[seed] = True
        mean = unit[group].mean(axis=0)
        centroids = np.vstack([centroids, mean / max(float(np.linalg.norm(mean)), 1e-12)])
        usable &= ~group
    return centroids


def _wanted(count: SpeakerCount) -> int | None:
    """How many speakers a hint demands (num, else min), None without such a hint."""
    return count.num if count.num is not None else count.min


def _fill_empty_speakers(labels: np.ndarray, similarity: np.ndarray, speech_s: np.ndarray) -> np.ndarray:
    """Give every speaker without a piece the piece most similar to it among those
    of speakers holding more than one (a hinted count must be honoured)."""
    labels = labels.copy()
    for k in range(similarity.shape[1]):
        if np.any(labels == k):
            continue
        sizes = np.bincount(labels[labels >= 0], minlength=similarity.shape[1])
        movable = (labels < 0) | (sizes[np.maximum(labels, 0)] > 1)
        if not movable.any():
            break
        # Prefer clean pieces: rank by similarity, ties broken by speech.
        candidate = np.where(movable, similarity[:, k] + 1e-3 * speech_s, -np.inf)
        labels[int(np.argmax(candidate))] = k
    return labels


def _reconstruct(p: _Pieces, piece_labels: np.ndarray, num_speakers: int, count: SpeakerCount) -> Diarization:
    """Steps 4 and 5: global activity from the labelled pieces, then turns."""
    duration, timing, activity, starts = p.duration, p.timing, p.activity, p.starts
    num_windows, num_frames, num_local = activity.shape
    frame_block = p.frame_block
    # Every block of a local speaker takes the label of its nearest embedded piece.
    block_labels = _spread_labels(p.pieces, piece_labels, num_windows, p.blocks_per_window, num_local)

    window_only = np.zeros((num_windows, num_local), dtype=bool)  # labelled by a window piece
    window_only[p.pieces[p.pieces[:, 1] < 0, 0], p.pieces[p.pieces[:, 1] < 0, 2]] = True

    # 4. Reconstruction: global activity per frame, and how many speakers talk at once
    offsets = np.rint(starts / timing.step).astype(np.int64)  # first global frame of each window
    total_frames = max(1, int(np.ceil((duration - timing.start - timing.duration / 2) / timing.step)) + 1)
    span = int(offsets[-1]) + num_frames
    scores = np.zeros((span, num_speakers))  # summed global activity
    for c in range(num_windows):
        window = slice(offsets[c], offsets[c] + num_frames)
        for s in range(num_local):
            frame_labels = _frame_labels(block_labels[c, s], activity[c, :, s], frame_block)  # (num_frames,)
            # A window piece's label fills gaps only: its weight is too small to outrank
            # speech that a block piece labelled (see WINDOW_PIECE_WEIGHT).
            weight = WINDOW_PIECE_WEIGHT if window_only[c, s] else 1.0
            for k in np.unique(frame_labels[frame_labels >= 0]):
                scores[window, k] += weight * activity[c, :, s] * (frame_labels == k)
    scores = scores[:total_frames]
    mean_count = _window_mean(activity.sum(axis=2), offsets, total_frames)  # active local speakers
    count_per_frame = _frame_counts(mean_count, SPEECH_COUNT_AT, OVERLAP_COUNT_AT)  # (total_frames,)
    # A quiet voice is heard by the windows raised to hear it: see frames.heard_when_raised.
    count_per_frame = _heard_when_raised(count_per_frame, activity, offsets, p.gains >= RAISED_WINDOW_GAIN)
    speaking = _top_speakers(scores, np.minimum(count_per_frame, num_speakers))  # (total_frames, num_speakers)
    voices = speaker_voices(p.fingerprints, p.speech_s, piece_labels, num_speakers)  # (num_speakers, 192)
    if _wanted(count) is None:
        # A speaker left with less speech than a speaker needs (a cluster that won few
        # frames) is no speaker: its frames go to the next most active ones.
        faint = speaking.sum(axis=0) * timing.step < MIN_SPEAKER_SPEECH_S
        if faint.any() and not faint.all():
            scores = np.where(faint[None, :], 0.0, scores)
            speaking = _top_speakers(scores, np.minimum(count_per_frame, num_speakers))
        merged = merge_strays(speaking.sum(axis=0) * timing.step, voices,
                              max_speech_s=STRAY_SPEECH_S, min_similarity=STRAY_SIMILARITY)
        if merged is not None:
            piece_labels = merged[piece_labels]
            voices = speaker_voices(p.fingerprints, p.speech_s, piece_labels, num_speakers)
            scores = np.stack([scores[:, merged == k].sum(axis=1) for k in range(num_speakers)], axis=1)
            speaking = _top_speakers(scores, np.minimum(count_per_frame, num_speakers))
    exclusive = _top_speakers(scores, np.minimum(count_per_frame, 1))  # (total_frames, num_speakers)
    if _wanted(count) is not None:
        speaking, exclusive = _force_speech(
            scores, speaking, exclusive, np.maximum(count_per_frame, 1), timing.step, MIN_HINTED_SPEECH_S
        )

    # 5. Turns, labels in order of appearance, one fingerprint per speaker
    turns = _turns(speaking, timing, duration)
    if not turns:
        return _empty(duration)
    order = list(dict.fromkeys(k for _, _, k in sorted(turns)))
    names = {k: f"Speaker_{i}" for i, k in enumerate(order)}
    fingerprint_of = {names[k]: tuple(float(v) for v in voices[k]) for k in order}
    return Diarization(
        duration=duration,
        turns=tuple(SpeakerTurn(a, b, names[k]) for a, b, k in sorted(turns)),
        exclusive=tuple(
            SpeakerTurn(a, b, names[k]) for a, b, k in sorted(_turns(exclusive, timing, duration)) if k in names
        ),
        speakers=tuple(names[k] for k in order),
        fingerprints=fingerprint_of,
    )


def _embedded_blocks(num_windows: int, blocks_per_window: int, central: int) -> np.ndarray:
    """(num_windows, blocks_per_window) bool: which blocks of each window get embedded.

    The ``central`` middle blocks of every window (``central`` = embeddings per instant
    x blocks per step, so that each block of the recording is embedded that many
    times, far from window edges); the first window also its leading blocks and the
    last window its trailing ones.
    """
    chosen = np.zeros((num_windows, blocks_per_window), dtype=bool)
    lo = max(0, (blocks_per_window - central) // 2)
    hi = min(blocks_per_window, lo + central)  # central: [lo, hi)
    chosen[:, lo:hi] = True
    chosen[0, :hi] = True
    chosen[-1, lo:] = True
    return chosen


def _normalized(audio: np.ndarray) -> np.ndarray:
    """Float32 mono at peak 0.5, so quiet far-field audio is processed like loud audio;
    digital silence (peak under -80 dBFS) becomes zeros."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise InvalidOptionError(f"diarize expects mono audio (1-D), got shape {audio.shape}")
    audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak < SILENCE_PEAK:
        return np.zeros_like(audio)
    return audio * np.float32(0.5 / peak)


def _empty(duration: float) -> Diarization:
    return Diarization(duration=duration, turns=(), exclusive=(), speakers=(), fingerprints={})
