"""Online speaker assignment: each new piece of speech joins the closest running speaker,
or starts a new one when none is close enough; names come from the speaker library.

The engine diarizes each committed utterance with the offline pipeline (its speakers,
turns and one fingerprint per speaker); ``OnlineSpeakers.assign`` maps each of the
utterance's speakers onto the session's running ones, and ``live_turns`` turns the
mapped turns and the utterance's words into the segments a client sees.

Memory is bounded: one running centroid per speaker (at most ``max_speakers``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from saywho.diarization import embedding
from saywho.diarization.assign import assign_speakers, merge_turns, speech_time
from saywho.diarization.pipeline import diarize
from saywho.speakers.identify import IDENTIFY_THRESHOLD, similarity_matrix
from saywho.streaming.events import SpeakerSegment
from saywho.types import SAMPLE_RATE

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

    from saywho.types import SpeakerTurn, Word

logger = logging.getLogger(__name__)

# Cosine similarity to a running speaker's centroid from which a piece of speech joins
# it. CAM++ same-voice scores of 1-3 s pieces mostly lie above 0.45, different voices
# below 0.35 (speakers/identify.py's calibration notes: same voice 0.50 for 3 s snippets).
JOIN_THRESHOLD = 0.45
# Two speakers of one utterance (the offline diarization told them apart) whose
# fingerprints are less alike than this are two voices: they never join the same running
# speaker. More alike, they may be one voice the diarization split (same-voice utterance
# fingerprints of the dev call score 0.74-0.88 against each other, its two voices
# 0.42-0.47).
SAME_VOICE = 0.6
# Pieces with less speech than this never start a new speaker (too noisy to trust).
MIN_NEW_SPEAKER_S = 1.5
# Pieces with less speech than this do not move a speaker's centroid.
MIN_UPDATE_S = 0.8


@dataclass(slots=True)
class _Running:
    label: str
    centroid: np.ndarray  # (192,) sum of unit fingerprints weighted by speech seconds
    speech_s: float
    name: str | None = None
    score: float | None = None
    pinned: bool = False  # named by the user: the library no longer renames it


@dataclass(slots=True)
class OnlineSpeakers:
    """The running speakers of one live session (not thread-safe: one session, one caller)."""

    known: Callable[[], Mapping[str, np.ndarray]] | None = None
    join_threshold: float = JOIN_THRESHOLD
    name_threshold: float = IDENTIFY_THRESHOLD
    max_speakers: int = 32
    _speakers: list[_Running] = field(default_factory=list)

    def assign(self, fingerprint: np.ndarray, speech_s: float, *, apart: Collection[str] = ()) -> str:
        """The label for a piece of speech with this unit fingerprint (192,).

        ``apart``: labels this speech is known not to be (another voice of the same
        utterance took them). When the closest speaker is one of them, the speech joins
        the closest other speaker at ``join_threshold`` or starts a new one, however short."""
        if not self._speakers:
            return self._new(fingerprint * max(speech_s, 1e-3), speech_s).label
        centroids = np.stack([s.centroid for s in self._speakers])  # (S, 192)
        norms = np.maximum(np.linalg.norm(centroids, axis=1), 1e-12)
        scores = centroids @ fingerprint / norms  # (S,)
        # A speaker started from a piece too short to trust takes the next piece it is closest to.
        weak = np.array([s.speech_s < MIN_UPDATE_S for s in self._speakers])
        scores = np.where(weak, np.maximum(scores, self.join_threshold), scores)
        best = int(np.argmax(scores))
        if self._speakers[best].label in apart:
            scores = np.where([s.label in apart for s in self._speakers], -np.inf, scores)
            best = int(np.argmax(scores))
            if scores[best] < self.join_threshold and len(self._speakers) < self.max_speakers:
                return self._new(fingerprint * max(speech_s, 1e-3), speech_s).label
        if scores[best] >= self.join_threshold or speech_s < MIN_NEW_SPEAKER_S or \
                len(self._speakers) >= self.max_speakers:
            target = self._speakers[best]
            if target.speech_s < MIN_UPDATE_S <= speech_s:
                target.centroid, target.speech_s = fingerprint * speech_s, speech_s
                self._name(target)
            elif speech_s >= MIN_UPDATE_S:
                target.centroid = target.centroid + fingerprint * speech_s
                target.speech_s += speech_s
                self._name(target)
            return target.label
        return self._new(fingerprint * speech_s, speech_s).label

    def _new(self, centroid: np.ndarray, speech_s: float) -> _Running:
        speaker = _Running(label=f"Speaker_{len(self._speakers)}", centroid=centroid, speech_s=speech_s)
        self._speakers.append(speaker)
        self._name(speaker)
        return speaker

    def _name(self, speaker: _Running) -> None:
        if self.known is None or speaker.speech_s <= 0 or speaker.pinned:
            return
        try:
            known = self.known()
        except Exception as exc:  # a damaged library leaves speakers anonymous
            logger.warning("speakers stay anonymous: %s", exc)
            return
        if not known:
            return
        centroid = speaker.centroid / max(float(np.linalg.norm(speaker.centroid)), 1e-12)
        _, names, scores = similarity_matrix({speaker.label: list(centroid)}, known)  # (1, N)
        if scores.size == 0:
            return
        best = int(np.argmax(scores[0]))
        taken = {s.name for s in self._speakers if s is not speaker}
        if scores[0, best] >= self.name_threshold and names[best] not in taken:
            speaker.name, speaker.score = names[best], float(scores[0, best])

    def last_label(self) -> str | None:
        return self._speakers[-1].label if self._speakers else None

    def name_of(self, label: str) -> str | None:
        return next((s.name for s in self._speakers if s.label == label), None)

    def rename(self, label: str, name: str | None) -> None:
        for s in self._speakers:
            if s.label == label:
                s.name, s.score, s.pinned = name, None, name is not None

    def summary(self) -> list[dict[str, object]]:
        return [{"label": s.label, "name": s.name, "speech_s": round(s.speech_s, 2)} for s in self._speakers]


def live_turns(
    turns: Sequence[SpeakerTurn], exclusive: Sequence[SpeakerTurn], words: Sequence[Word]
) -> list[tuple[SpeakerTurn, list[Word]]]:
    """One utterance's mapped turns with the words each holds, in time order.

    ``turns`` (overlap-aware) and ``exclusive`` carry the session's labels already; turns
    of one label that touch are one. Each word gets its speaker from the exclusive turns
    (sentences kept together, as offline) and goes to the turn of that speaker holding its
    midpoint, else to the nearest one. A turn may hold no words (speech the ASR did not
    transcribe, a backchannel under another voice): it is kept, with no words."""
    merged = merge_turns(turns)
    held: list[list[Word]] = [[] for _ in merged]
    for word in assign_speakers(words, exclusive):
        own = [i for i, t in enumerate(merged) if t.speaker == word.speaker]
        if not own:
            continue
        mid = (word.start + word.end) / 2
        best = min(own, key=lambda i: max(merged[i].start - mid, mid - merged[i].end, 0.0))
        held[best].append(word)
    return list(zip(merged, held, strict=True))


def join_words(words: Sequence[Word]) -> str:
    return "".join(w.text for w in words)


def utterance_segments(speakers: OnlineSpeakers, item: str, audio: np.ndarray, words: Sequence[Word], t0: float,
                   *, piece_s: float = 2.0) -> list[SpeakerSegment]:
    """The utterance diarized offline (its speakers, turns, fingerprints), its speakers
    mapped onto the session's running ones, one segment per mapped turn."""
    if not words:
        return []
    found = diarize(audio)
    talk = speech_time(found.exclusive)
    mapping: dict[str, str] = {}
    vectors: dict[str, np.ndarray] = {}
    for local in sorted(found.speakers, key=lambda s: -talk.get(s, 0.0)):  # the most speech first
        vector = np.asarray(found.fingerprints.get(local, ()), dtype=np.float32)  # unit norm
        if not vector.any():
            continue
        vectors[local] = vector
        apart = {mapping[o] for o in mapping if float(vectors[o] @ vector) < SAME_VOICE}
        mapping[local] = speakers.assign(vector, talk.get(local, 0.0), apart=apart)
    logger.debug("utterance %.2f-%.2f s: speech %s -> %s", t0, t0 + len(audio) / SAMPLE_RATE,
                 {k: round(v, 2) for k, v in talk.items()}, mapping)
    if not mapping:  # no speech the segmentation model trusts: the words' own fingerprints
        return piece_segments(speakers, item, audio, words, t0, piece_s=piece_s)
    fallback = next(iter(mapping.values()))
    found = found.relabel({local: mapping.get(local, fallback) for local in found.speakers})
    events: list[SpeakerSegment] = []
    for turn, held in live_turns(found.turns, found.exclusive, words):
        events.append(SpeakerSegment(
            item, f"seg_{len(events)}", join_words(held).strip(), turn.speaker, speakers.name_of(turn.speaker),
            round(t0 + turn.start, 3), round(t0 + turn.end, 3)))
    return events

def piece_segments(speakers: OnlineSpeakers, item: str, audio: np.ndarray, words: Sequence[Word], t0: float,
               *, piece_s: float = 2.0) -> list[SpeakerSegment]:
    """Words grouped into pieces of about ``piece_s``, each piece's fingerprint assigned."""
    if not words:
        return []
    pieces = word_pieces(words, piece_s)
    features = embedding.fbank(audio)  # (T, 80)
    centers = embedding.feature_frame_centers(len(features))  # (T,)
    frame_sets = [np.flatnonzero((centers >= p[0].start) & (centers < p[-1].end)) for p in pieces]
    vectors = embedding.embed_frame_sets(features, frame_sets)  # (pieces, 192); too short: zeros
    found: list[str | None] = []
    for piece, vector in zip(pieces, vectors, strict=True):
        if np.linalg.norm(vector) > 0:
            found.append(speakers.assign(vector, piece[-1].end - piece[0].start))
        else:  # too short to fingerprint: the speaker before it (or after it)
            found.append(found[-1] if found else None)
    fallback = next((x for x in found if x is not None), None) or speakers.last_label() or "Speaker_0"
    labels = [x or fallback for x in found]
    events: list[SpeakerSegment] = []
    run: list[Word] = []
    for i, piece in enumerate(pieces):
        run += piece
        if i + 1 == len(pieces) or labels[i + 1] != labels[i]:
            events.append(SpeakerSegment(
                item, f"seg_{len(events)}", join_words(run).strip(), labels[i], speakers.name_of(labels[i]),
                round(t0 + run[0].start, 3), round(t0 + run[-1].end, 3)))
            run = []
    return events


def word_pieces(words: list[Word], piece_s: float) -> list[list[Word]]:
    """Words grouped into pieces of about ``piece_s`` seconds, cut at the longest pause near that length."""
    pieces: list[list[Word]] = [[words[0]]]
    for prev, word in pairwise(words):
        current = pieces[-1]
        length = word.start - current[0].start
        gap = word.start - prev.end
        if length >= piece_s or (gap >= 0.3 and length >= piece_s / 2):
            pieces.append([word])
        else:
            current.append(word)
    return pieces
