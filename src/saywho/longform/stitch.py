"""Global speakers across chunks, and stitching chunk results into one Transcript."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from saywho.asr.whisper import AsrResult
from saywho.assemble import assemble, model_names
from saywho.diarization.assign import merge_turns
from saywho.diarization.chunk_clustering import GLOBAL_COSINE_THRESHOLD, cluster_local_speakers
from saywho.types import (
    Diarization,
    Identifier,
    Segment,
    SpeakerCount,
    SpeakerTurn,
    TranscribeOptions,
    Transcript,
    Word,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from saywho.longform.plan import ChunkPlan
    from saywho.longform.result import ChunkResult


def global_speakers(
    results: Sequence[ChunkResult],
    count: SpeakerCount | None = None,
    *,
    threshold: float = GLOBAL_COSINE_THRESHOLD,
) -> tuple[list[dict[str, str]], dict[int, np.ndarray]]:
    """Cluster every chunk's local speakers into global speakers.

    Returns, per chunk, ``{local label: global id}`` (ids as strings ``"0", "1"...``,
    not yet ordered by appearance) and each global id's fingerprint (unit norm).
    Two local speakers of one chunk stay different people (the chunk's own
    diarization, which sees every window, told them apart) unless the speaker count
    forces a merge. Local speakers without a fingerprint keep a speaker of their own.
    """
    keys: list[tuple[int, str]] = []
    vectors: list[tuple[float, ...]] = []
    weights: list[float] = []
    for i, r in enumerate(results):
        talk = r.speech_s()
        for label in r.speakers_detected:
            if label in r.fingerprints:
                keys.append((i, label))
                vectors.append(r.fingerprints[label])
                weights.append(talk.get(label, 0.0))
    mappings: list[dict[str, str]] = [{} for _ in results]
    centroids: dict[int, np.ndarray] = {}
    if keys:
        x = np.asarray(vectors, dtype=np.float64)  # (num_local_speakers, D)
        w = np.maximum(np.asarray(weights), 1e-3)  # (num_local_speakers,) seconds of speech
        chunk_of = np.array([i for i, _ in keys])
        labels = cluster_local_speakers(x, w, chunk_of, count or SpeakerCount(), threshold=threshold)
        for (i, label), k in zip(keys, labels, strict=True):
            mappings[i][label] = str(int(k))
        for k in range(int(labels.max()) + 1):
            members = labels == k
            mean = (x[members] / np.linalg.norm(x[members], axis=1, keepdims=True) * w[members, None]).sum(axis=0)
            centroids[k] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    next_id = len(centroids)
    for i, r in enumerate(results):
        for label in r.speakers_detected:
            if label not in mappings[i]:
                mappings[i][label] = str(next_id)
                next_id += 1
    return mappings, centroids


def stitch(
    plan: ChunkPlan,
    results: Sequence[ChunkResult],
    options: TranscribeOptions,
    *,
    warnings: Sequence[str] = (),
    identifier: Identifier | None = None,
) -> Transcript:
    """Global speakers + time offsets -> one Transcript, in the same form as a short file's.

    Speaker labels are ``Speaker_0, Speaker_1...`` in order of first appearance;
    ``identifier`` (the speaker library) may name them from their global fingerprints.
    """
    if len(results) != len(plan.chunks):
        raise ValueError(f"{len(results)} chunk results for a plan of {len(plan.chunks)} chunks")
    mappings, centroids = global_speakers(results, options.speakers) if options.diarize else ([{}] * len(results), {})

    def r3(x: float) -> float:
        return round(x, 3)

    words: list[Word] = []
    asr_segments: list[Segment] = []
    turns: list[SpeakerTurn] = []
    exclusive: list[SpeakerTurn] = []
    for chunk, r, mapping in zip(plan.chunks, results, mappings, strict=True):
        t0 = chunk.start_s
        shifted = {id(w): Word(r3(w.start + t0), r3(w.end + t0), w.text, w.probability,
                               mapping.get(w.speaker, w.speaker) if w.speaker else None) for w in r.words}
        words.extend(shifted[id(w)] for w in r.words)
        for s in r.asr_segments:
            asr_segments.append(dataclasses.replace(
                s, id=len(asr_segments), start=r3(s.start + t0), end=r3(s.end + t0),
                seek=s.seek + round(t0 * 100),
                words=tuple(Word(r3(w.start + t0), r3(w.end + t0), w.text, w.probability) for w in s.words),
            ))
        turns.extend(SpeakerTurn(r3(t.start + t0), r3(t.end + t0), mapping[t.speaker]) for t in r.segments)
        exclusive.extend(SpeakerTurn(r3(t.start + t0), r3(t.end + t0), mapping[t.speaker]) for t in r.exclusive)

    language = next((r.language for r in results if r.words and r.language), None) or next(
        (r.language for r in results if r.language), options.language or "en")
    probability = next((r.language_probability for r in results if r.language == language), 0.0)
    asr = AsrResult(language=language, language_probability=probability, segments=tuple(asr_segments),
                    words=tuple(words), duration=plan.duration)
    diarization = None
    named = None  # the words with global names, when every chunk gave each word a speaker
    if options.diarize:
        merged = merge_turns(turns)
        order = list(dict.fromkeys(t.speaker for t in merged))
        names = {g: f"Speaker_{i}" for i, g in enumerate(order)}
        diarization = Diarization(
            duration=plan.duration,
            turns=tuple(SpeakerTurn(t.start, t.end, names[t.speaker]) for t in merged),
            exclusive=tuple(SpeakerTurn(t.start, t.end, names[t.speaker]) for t in merge_turns(exclusive)
                            if t.speaker in names),
            speakers=tuple(names[g] for g in order),
            fingerprints={names[g]: tuple(float(v) for v in centroids[int(g)])
                          for g in order if int(g) in centroids},
        )
        # Words keep the speaker their chunk gave them (checked against the voices there).
        if all(w.speaker in names for w in words):
            named = tuple(dataclasses.replace(w, speaker=names[w.speaker]) for w in words)
    models = next((r.models for r in results if r.models), None) or model_names(options)
    identities = identifier(diarization) if (identifier and diarization and options.identify) else {}
    return assemble(asr, diarization, options, identities=identities, warnings=tuple(warnings), models=models,
                    words=named)


