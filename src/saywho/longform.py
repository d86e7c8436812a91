"""Long recordings: chunk plan -> per-chunk worker -> global speakers -> one Transcript.

1. plan: the file is decoded block by block and cut into chunks of about
   ``chunk_s`` in pauses (``chunking``); each chunk's samples go to the work
   directory and are dropped, so the whole file is never in memory;
2. chunks: each chunk is transcribed and diarized on its own (``process_chunk``),
   with local labels and one fingerprint per local speaker, by an executor (in
   process, a local process pool, or Ray; ``executors``); each result is stored as
   it completes, so a rerun with ``resume`` redoes only unfinished chunks;
3. global speakers: all chunks' fingerprints are clustered together (``clustering``)
   and every chunk's labels are renamed to global ones;
4. stitching: words, ASR segments and turns are shifted by their chunk's start and
   assembled exactly like a short file's (``pipeline.assemble``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from . import clustering
from .asr import AsrResult
from .audio import AudioSource, probe_duration, stream_audio
from .chunking import DEFAULT_CHUNK_S, Chunk, ChunkPlan, plan_chunks
from .types import (
    SAMPLE_RATE,
    Diarization,
    Hook,
    Segment,
    SpeakerCount,
    SpeakerTurn,
    TranscribeOptions,
    Transcript,
    Word,
    no_progress,
)

if TYPE_CHECKING:
    from .pipeline import Identifier

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHUNK_S", "Chunk", "ChunkPlan", "ChunkResult", "ChunkStore", "DirectoryChunkStore",
    "global_speakers", "plan_chunks", "process_chunk", "stitch", "transcribe_long",
]

# Chunk-level fingerprints are means over a chunk's speech, cleaner than the
# per-window ones diarize clusters, so groups of them are cut higher than
# clustering.COSINE_THRESHOLD (0.4). Measured across chunks (bench/longform_memory.py
# prints it): 5-minute chunks of five synthesised voices, same voice 0.976-0.994,
# different voices 0.02-0.55; 20-second chunks, same voice 0.62-0.98. 0.4 merged two
# flite voices (0.44); 0.6 sits in the gap of both.
GLOBAL_COSINE_THRESHOLD = 0.6
# A global speaker needs this much speech over the whole recording to stand alone.
MIN_GLOBAL_SPEECH_S = 2.0


# ---------------------------------------------------------------------------
# One chunk
# ---------------------------------------------------------------------------


def _turn_dicts(turns: Iterable[SpeakerTurn]) -> list[dict[str, Any]]:
    return [{"start_s": t.start, "end_s": t.end, "speaker": t.speaker} for t in turns]


def _turns_from(items: Iterable[dict[str, Any]]) -> tuple[SpeakerTurn, ...]:
    return tuple(SpeakerTurn(float(x["start_s"]), float(x["end_s"]), str(x["speaker"])) for x in items)


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """What one chunk yields. Times are seconds from the chunk's start; labels are local.

    ``segments`` are overlap-aware speaker turns, ``exclusive`` one speaker at a time
    (for word assignment); ``fingerprints`` one unit-norm voice embedding per local
    speaker; ``words`` carry their local speaker.
    """

    duration: float
    segments: tuple[SpeakerTurn, ...]
    speakers_detected: tuple[str, ...]
    fingerprints: dict[str, tuple[float, ...]]
    words: tuple[Word, ...]
    models: dict[str, str] = field(default_factory=dict)
    language: str = ""
    language_probability: float = 0.0
    exclusive: tuple[SpeakerTurn, ...] = ()
    asr_segments: tuple[Segment, ...] = ()

    def speech_s(self) -> dict[str, float]:
        """Seconds of speech per local speaker."""
        totals = dict.fromkeys(self.speakers_detected, 0.0)
        for t in self.segments:
            totals[t.speaker] = totals.get(t.speaker, 0.0) + t.duration
        return totals

    def to_dict(self) -> dict[str, Any]:
        """The per-chunk JSON (``POST /v1/audio/diarize-chunk``).

        The keys ``duration, segments, speakers_detected, fingerprints, words, models``
        are the contract; ``language``, ``language_probability``,
        ``exclusive_segments`` and ``asr_segments`` are additions the stitcher needs
        to build a Transcript identical to a short file's.
        """
        return {
            "duration": round(self.duration, 3),
            "segments": _turn_dicts(self.segments),
            "speakers_detected": list(self.speakers_detected),
            "fingerprints": {k: [float(x) for x in v] for k, v in self.fingerprints.items()},
            "words": [
                {"word": w.text, "start": w.start, "end": w.end, "probability": w.probability, "speaker": w.speaker}
                for w in self.words
            ],
            "models": dict(self.models),
            "language": self.language,
            "language_probability": self.language_probability,
            "exclusive_segments": _turn_dicts(self.exclusive),
            "asr_segments": [
                {"id": s.id, "num_words": len(s.words), "seek": s.seek, "start": s.start, "end": s.end, "text": s.text,
                 "tokens": list(s.tokens), "temperature": s.temperature, "avg_logprob": s.avg_logprob,
                 "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}
                for s in self.asr_segments
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkResult:
        words = tuple(
            Word(float(w["start"]), float(w["end"]), str(w["word"]), float(w.get("probability", 1.0)),
                 w.get("speaker"))
            for w in d.get("words", ())
        )
        # The words of the ASR segments, in order, are ``words`` (without speakers).
        plain = [Word(w.start, w.end, w.text, w.probability) for w in words]
        asr_segments = []
        taken = 0
        for s in d.get("asr_segments", ()):
            n = int(s.get("num_words", 0))
            asr_segments.append(Segment(
                id=int(s["id"]), start=float(s["start"]), end=float(s["end"]), text=s["text"],
                words=tuple(plain[taken: taken + n]), seek=int(s.get("seek", 0)), tokens=tuple(s.get("tokens", ())),
                temperature=float(s.get("temperature", 0.0)), avg_logprob=float(s.get("avg_logprob", 0.0)),
                compression_ratio=float(s.get("compression_ratio", 0.0)),
                no_speech_prob=float(s.get("no_speech_prob", 0.0)),
            ))
            taken += n
        return cls(
            duration=float(d["duration"]),
            segments=_turns_from(d.get("segments", ())),
            speakers_detected=tuple(d.get("speakers_detected", ())),
            fingerprints={k: tuple(float(x) for x in v) for k, v in d.get("fingerprints", {}).items()},
            words=words,
            models=dict(d.get("models", {})),
            language=str(d.get("language", "")),
            language_probability=float(d.get("language_probability", 0.0)),
            exclusive=_turns_from(d.get("exclusive_segments", ())),
            asr_segments=tuple(asr_segments),
        )


def chunk_options(options: TranscribeOptions) -> TranscribeOptions:
    """Options for one chunk: a chunk may hold fewer speakers than the recording, so
    only an upper bound of the speaker-count hint applies to it."""
    upper = options.speakers.num or options.speakers.max
    return dataclasses.replace(options, speakers=SpeakerCount(max=upper))


def process_chunk(samples: np.ndarray, options: TranscribeOptions, *, hook: Hook = no_progress) -> ChunkResult:
    """Transcribe and diarize one chunk (16 kHz mono float32) with local labels.

    The speaker-count hint of ``options`` is taken as given: callers that cut a
    recording pass ``chunk_options(options)``.
    """
    from .assign import assign_speakers
    from .pipeline import model_names, run_asr, run_diarization

    samples = np.ascontiguousarray(samples, dtype=np.float32)
    asr = run_asr(samples, options, hook=hook)
    words = asr.words
    if options.diarize:
        diarization = run_diarization(samples, options.diarize_options, hook=hook)
        words = assign_speakers(words, diarization.exclusive)
    else:
        diarization = Diarization(duration=len(samples) / SAMPLE_RATE, turns=(), exclusive=(), speakers=())
    return ChunkResult(
        duration=len(samples) / SAMPLE_RATE,
        segments=diarization.turns,
        speakers_detected=diarization.speakers,
        fingerprints=dict(diarization.fingerprints),
        words=words,
        models=model_names(options),
        language=asr.language,
        language_probability=asr.language_probability,
        exclusive=diarization.exclusive,
        asr_segments=asr.segments,
    )


# ---------------------------------------------------------------------------
# Global speakers and stitching
# ---------------------------------------------------------------------------


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


def cluster_local_speakers(
    fingerprints: np.ndarray,
    speech_s: np.ndarray,
    chunk_of: np.ndarray,
    count: SpeakerCount | None = None,
    *,
    threshold: float = GLOBAL_COSINE_THRESHOLD,
    min_speech_s: float = MIN_GLOBAL_SPEECH_S,
) -> np.ndarray:
    """(N, D) local-speaker fingerprints -> (N,) global labels 0..K-1 (first occurrence order).

    Speech-weighted average linkage on cosine similarity with a cannot-link between
    local speakers of the same chunk: merging stops when the best allowed pair of
    groups is less similar than ``threshold``. ``count`` (num / min / max) moves the
    stop along the same merge order, allowing a cannot-link merge only when nothing
    else can reach ``count.num`` / ``count.max``. A group with less than
    ``min_speech_s`` of speech is then folded into the most similar allowed group.
    """
    count = count or SpeakerCount()
    clustering.validate_count(count)
    n = len(fingerprints)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    x = fingerprints / np.maximum(np.linalg.norm(fingerprints, axis=1, keepdims=True), 1e-12)  # (N, D)
    w = np.asarray(speech_s, dtype=np.float64)  # (N,)
    num_chunks = int(chunk_of.max()) + 1
    # Per group: weighted similarity sums to every other group, total weight, chunks held.
    sums = (x @ x.T) * w[:, None] * w[None, :]  # (N, N)
    weight = w.copy()  # (N,)
    holds = np.zeros((n, num_chunks), dtype=bool)  # (N, num_chunks)
    holds[np.arange(n), chunk_of] = True
    alive = np.ones(n, dtype=bool)
    members = [[i] for i in range(n)]
    upper = count.num if count.num is not None else count.max
    lower = count.num if count.num is not None else count.min
    while alive.sum() > 1:
        k = int(alive.sum())
        average = sums / np.outer(weight, weight)  # (N, N) mean similarity between groups
        conflict = (holds.astype(np.int64) @ holds.T.astype(np.int64)) > 0  # (N, N) share a chunk
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
        holds[a] |= holds[b]
        alive[b] = False
        members[a].extend(members[b])
        sums[b, :] = sums[:, b] = 0.0
        weight[b] = 1.0
    groups = [sorted(members[g]) for g in np.flatnonzero(alive)]
    labels = np.empty(n, dtype=np.int64)
    for k, group in enumerate(groups):
        labels[group] = k
    labels = _fold_quiet_groups(x, w, chunk_of, labels, min_speech_s, lower)
    order: dict[int, int] = {}
    return np.array([order.setdefault(int(k), len(order)) for k in labels], dtype=np.int64)


def _fold_quiet_groups(
    x: np.ndarray, w: np.ndarray, chunk_of: np.ndarray, labels: np.ndarray, min_speech_s: float,
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
        shares_chunk = np.array([np.isin(chunk_of[group], chunk_of[labels == g]).any() for g in large])
        if not shares_chunk.all():
            similarity = np.where(shares_chunk, -np.inf, similarity)
        out[group] = large[int(np.argmax(similarity))]
    return out


def _merged(turns: Iterable[SpeakerTurn], gap_s: float = 1e-3) -> tuple[SpeakerTurn, ...]:
    """Turns sorted by start, each speaker's touching or overlapping turns joined."""
    out: list[SpeakerTurn] = []
    last: dict[str, int] = {}
    for t in sorted(turns, key=lambda t: (t.start, t.end, t.speaker)):
        j = last.get(t.speaker)
        if j is not None and t.start <= out[j].end + gap_s:
            out[j] = SpeakerTurn(out[j].start, max(out[j].end, t.end), t.speaker)
            continue
        last[t.speaker] = len(out)
        out.append(t)
    return tuple(sorted(out, key=lambda t: (t.start, t.end, t.speaker)))


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
    from .pipeline import assemble, model_names

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
    if options.diarize:
        merged = _merged(turns)
        order = list(dict.fromkeys(t.speaker for t in merged))
        names = {g: f"Speaker_{i}" for i, g in enumerate(order)}
        diarization = Diarization(
            duration=plan.duration,
            turns=tuple(SpeakerTurn(t.start, t.end, names[t.speaker]) for t in merged),
            exclusive=tuple(SpeakerTurn(t.start, t.end, names[t.speaker]) for t in _merged(exclusive)
                            if t.speaker in names),
            speakers=tuple(names[g] for g in order),
            fingerprints={names[g]: tuple(float(v) for v in centroids[int(g)])
                          for g in order if int(g) in centroids},
        )
    models = next((r.models for r in results if r.models), None) or model_names(options)
    identities = identifier(diarization) if (identifier and diarization and options.identify) else {}
    return assemble(asr, diarization, options, identities=identities, warnings=tuple(warnings), models=models)


# ---------------------------------------------------------------------------
# Where chunk audio and results live
# ---------------------------------------------------------------------------


class ChunkStore(Protocol):
    """Persistence of one long job: its plan, chunk audio until processed, results.

    ``DirectoryChunkStore`` keeps them in a directory; the jobs API may keep results
    elsewhere (a database) as long as these methods hold.
    """

    def load_plan(self, key: str) -> ChunkPlan | None:
        """The stored plan if it was made for ``key`` (source + settings) and finished."""

    def save_plan(self, key: str, plan: ChunkPlan) -> None: ...

    def save_audio(self, chunk: Chunk, samples: np.ndarray) -> None: ...

    def audio_path(self, chunk: Chunk) -> str:
        """A local file holding the chunk's samples (``numpy.load`` reads it)."""

    def drop_audio(self, chunk: Chunk) -> None: ...

    def load_result(self, index: int) -> ChunkResult | None: ...

    def save_result(self, index: int, result: ChunkResult) -> None: ...

    def finished(self) -> set[int]: ...

    def clear(self) -> None: ...


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


class DirectoryChunkStore:
    """``plan.json``, ``audio/NNNNN.npy`` (deleted once processed), ``results/NNNNN.json``.

    Every file is written to a temporary name and renamed, so a crash leaves either
    the whole file or none.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        (self.root / "audio").mkdir(parents=True, exist_ok=True)
        (self.root / "results").mkdir(parents=True, exist_ok=True)

    def load_plan(self, key: str) -> ChunkPlan | None:
        try:
            data = json.loads((self.root / "plan.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("key") != key:
            return None
        plan = ChunkPlan.from_dict(data["plan"])
        finished = self.finished()
        if any(c.index not in finished and not Path(self.audio_path(c)).exists() for c in plan.chunks):
            return None
        return plan

    def save_plan(self, key: str, plan: ChunkPlan) -> None:
        body = json.dumps({"key": key, "plan": plan.to_dict()})
        _atomic_write(self.root / "plan.json", lambda p: p.write_text(body, encoding="utf-8"))

    def audio_path(self, chunk: Chunk) -> str:
        return str(self.root / "audio" / f"{chunk.index:05d}.npy")

    def save_audio(self, chunk: Chunk, samples: np.ndarray) -> None:
        def write(p: Path) -> None:
            with open(p, "wb") as f:
                np.save(f, np.asarray(samples, dtype=np.float32))

        _atomic_write(Path(self.audio_path(chunk)), write)

    def drop_audio(self, chunk: Chunk) -> None:
        Path(self.audio_path(chunk)).unlink(missing_ok=True)

    def _result_path(self, index: int) -> Path:
        return self.root / "results" / f"{index:05d}.json"

    def load_result(self, index: int) -> ChunkResult | None:
        try:
            return ChunkResult.from_dict(json.loads(self._result_path(index).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError):
            return None

    def save_result(self, index: int, result: ChunkResult) -> None:
        body = json.dumps(result.to_dict())
        _atomic_write(self._result_path(index), lambda p: p.write_text(body, encoding="utf-8"))

    def finished(self) -> set[int]:
        return {int(p.stem) for p in (self.root / "results").glob("*.json") if p.stem.isdigit()}

    def clear(self) -> None:
        for sub in ("audio", "results"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "plan.json").unlink(missing_ok=True)


def job_key(source: AudioSource, options: TranscribeOptions, chunk_s: float) -> str:
    """What a stored plan and its results depend on: the file and the settings."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).resolve()
        st = path.stat()
        ident = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    else:
        ident = "stream"
    settings = dataclasses.asdict(chunk_options(options))
    settings.pop("cpu_threads", None)
    return hashlib.sha256(f"{ident}|{chunk_s}|{json.dumps(settings, sort_keys=True, default=str)}".encode()).hexdigest()


def default_work_dir(source: str | os.PathLike[str], options: TranscribeOptions, chunk_s: float) -> Path:
    """Where the CLI keeps a long job's chunks, so that ``--resume`` finds them."""
    from .models import cache_dir

    return cache_dir() / "longform" / job_key(source, options, chunk_s)[:16]


# ---------------------------------------------------------------------------
# The long-file pipeline
# ---------------------------------------------------------------------------

ChunkProcessor = Callable[[np.ndarray, TranscribeOptions], ChunkResult]
OnChunk = Callable[[Chunk, ChunkResult], None]


def _plan(source: AudioSource, chunk_s: float, store: ChunkStore, hook: Hook) -> ChunkPlan:
    warnings: list[str] = []
    declared = probe_duration(source) if isinstance(source, (str, os.PathLike)) else None
    hook("decode", completed=0, total=declared or 1)
    plan = plan_chunks(
        stream_audio(source, block_s=30.0, warnings=warnings),
        chunk_s=chunk_s,
        on_chunk=store.save_audio,
        on_progress=lambda s: hook("decode", completed=min(s, declared), total=declared) if declared else None,
        warnings=warnings,
    )
    if not plan.chunks:
        from .errors import AudioDecodeError

        raise AudioDecodeError(warnings[0] if warnings else "the file holds no audio samples")
    hook("decode", completed=1, total=1)
    return plan


def transcribe_long(
    source: AudioSource,
    options: TranscribeOptions | None = None,
    *,
    chunk_s: float = DEFAULT_CHUNK_S,
    workers: int = 1,
    ray_address: str | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    hook: Hook | None = None,
    store: ChunkStore | None = None,
    on_chunk: OnChunk | None = None,
    processor: ChunkProcessor | None = None,
    identifier: Identifier | None = None,
) -> Transcript:
    """Transcribe a long recording chunk by chunk, with speakers kept across chunks.

    ``workers`` > 1 runs chunks on a local process pool; ``ray_address`` (or
    ``$SAYWHO_RAY_ADDRESS``; ``"local"`` starts a local Ray) runs them on Ray. Each
    finished chunk's result is stored (in ``store``, else a ``DirectoryChunkStore`` in
    ``work_dir``, else a temporary directory) and reported to ``on_chunk(chunk,
    result)``; with ``resume`` a stored plan and results for the same file and
    settings are reused and only unfinished chunks run. Progress:
    ``hook("decode", ...)`` while planning, then ``hook("chunks", completed=done,
    total=n)``. ``processor`` replaces ``process_chunk`` (tests; must be picklable
    for a pool or Ray). ``identifier`` names speakers as in ``pipeline.transcribe``.
    """
    from .executors import ChunkTask, make_executor
    from .memory import LONG_FILE_MMAP_THRESHOLD, tune_malloc

    tune_malloc(mmap_threshold=LONG_FILE_MMAP_THRESHOLD)  # before decoding threads and models
    options = options or TranscribeOptions()
    hook = hook or no_progress
    processor = processor or process_chunk
    ray_address = ray_address or os.environ.get("SAYWHO_RAY_ADDRESS") or None
    temporary = None
    if store is None:
        if work_dir is None:
            temporary = tempfile.TemporaryDirectory(prefix="saywho-long-")
            work_dir = temporary.name
        store = DirectoryChunkStore(work_dir)
    try:
        key = job_key(source, options, chunk_s)
        plan = store.load_plan(key) if resume else None
        if plan is None:
            if resume:
                logger.info("no resumable plan for this file and settings; starting over")
            store.clear()
            plan = _plan(source, chunk_s, store, hook)
            store.save_plan(key, plan)
        results: dict[int, ChunkResult] = {}
        for i in sorted(store.finished()):
            r = store.load_result(i)
            if r is not None and i < len(plan.chunks):
                results[i] = r
        total = len(plan.chunks)
        hook("chunks", completed=len(results), total=total)

        per_chunk = chunk_options(options)

        def record(index: int, result: ChunkResult) -> None:
            store.save_result(index, result)
            store.drop_audio(plan.chunks[index])
            results[index] = result
            if on_chunk is not None:
                on_chunk(plan.chunks[index], result)
            hook("chunks", completed=len(results), total=total)

        def tasks(indices: Iterable[int], opts: TranscribeOptions) -> Iterable[ChunkTask]:
            for i in indices:
                yield ChunkTask(index=i, audio_path=store.audio_path(plan.chunks[i]), options=opts,
                                processor=processor)

        with make_executor(workers=workers, ray_address=ray_address) as executor:
            todo = [c.index for c in plan.chunks if c.index not in results]
            if todo and per_chunk.language is None and not per_chunk.model.endswith(".en"):
                # One language for the whole recording: the first chunk decides it.
                first = min(results) if results else todo[0]
                if first not in results:
                    for index, result in executor.run(tasks([first], per_chunk)):
                        record(index, result)
                    todo.remove(first)
                per_chunk = dataclasses.replace(per_chunk, language=results[first].language or None)
            for index, result in executor.run(tasks(todo, per_chunk)):
                record(index, result)
        hook("clustering", completed=0, total=1)
        transcript = stitch(plan, [results[c.index] for c in plan.chunks], options, warnings=plan.warnings,
                            identifier=identifier)
        hook("clustering", completed=1, total=1)
        return transcript
    finally:
        if temporary is not None:
            temporary.cleanup()
