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
import logging
import os
import tempfile
from collections.abc import Callable, Iterable

import numpy as np

from saywho.audio.decode import AudioSource, probe_duration, stream_audio
from saywho.errors import AudioDecodeError
from saywho.longform.executors import ChunkTask, make_executor
from saywho.longform.plan import DEFAULT_CHUNK_S, Chunk, ChunkPlan, plan_chunks
from saywho.longform.result import ChunkResult, chunk_options
from saywho.longform.stitch import stitch
from saywho.longform.store import ChunkStore, DirectoryChunkStore, job_key
from saywho.runtime import LONG_FILE_MMAP_THRESHOLD, tune_malloc
from saywho.types import Hook, Identifier, TranscribeOptions, Transcript, no_progress

logger = logging.getLogger(__name__)


ChunkProcessor = Callable[[np.ndarray, TranscribeOptions], ChunkResult]
OnChunk = Callable[[Chunk, ChunkResult], None]
# Decodes a recording into a chunk plan, saving each chunk's audio in the store.
Planner = Callable[[AudioSource, float, ChunkStore, Hook], ChunkPlan]


def process_chunk(samples: np.ndarray, options: TranscribeOptions) -> ChunkResult:
    """``chunk.process_chunk``, imported where it runs: the process that plans and
    stitches then never loads torch or the models (about 360 MiB), only its workers do."""
    from saywho.longform.chunk import process_chunk as process  # lazy: keeps torch out of the parent process

    return process(samples, options)


def plan_recording(source: AudioSource, chunk_s: float, store: ChunkStore, hook: Hook) -> ChunkPlan:
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
        raise AudioDecodeError(warnings[0] if warnings else "the file holds no audio samples")
    hook("decode", completed=1, total=1)
    return plan


# With one worker, the CLI runs chunks in a spawned process replaced after this many
# chunks (``transcribe_long``'s ``chunks_per_worker``): see docs/longform.md, "Memory".
CHUNKS_PER_WORKER = 1


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
    planner: Planner | None = None,
    chunks_per_worker: int | None = None,
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
    ``planner`` replaces ``plan_recording`` (the server decodes in its worker process).
    ``chunks_per_worker`` runs the chunks in worker processes replaced after that many
    chunks (the CLI's default, ``CHUNKS_PER_WORKER``): flat memory at glibc's speed;
    None runs them in this process (with ``workers`` = 1), where the heap is kept flat
    by a low mmap threshold instead, at some cost in speed (``runtime.tune_malloc``).
    """
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
            plan = (planner or plan_recording)(source, chunk_s, store, hook)
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

        with make_executor(workers=workers, ray_address=ray_address, chunks_per_worker=chunks_per_worker) as executor:
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
