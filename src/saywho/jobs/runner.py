"""Running jobs: a background thread takes queued jobs and runs them through an
injectable ``Transcriber`` (by default ``longform.transcribe_long`` with a chunk store
backed by the database), so a server killed mid-job resumes at its next start from
the last finished chunk. Progress is one monotonic 0-100 value per job
(``JobProgress``); cancellation is checked at every progress report. Every write of a
job's row is also published to the job's followers (``LiveJob`` -> ``events``), so
nobody polls the database for progress.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import queue
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from saywho.errors import BackendUnavailable, NotFoundError, SaywhoError
from saywho.jobs.events import JobBroadcaster
from saywho.jobs.store import (
    FAILED,
    FINISHED,
    Job,
    JobCancelled,
    JobStore,
    options_from_dict,
)
from saywho.longform.plan import ChunkPlan
from saywho.longform.result import ChunkResult
from saywho.longform.run import transcribe_long
from saywho.progress import STEPS, ProgressScale
from saywho.speakers.service import library_identifier, name_speakers

if TYPE_CHECKING:
    from collections.abc import Callable

    from saywho.types import Hook, Transcript

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# One job's chunk plan and results, in the database (longform.ChunkStore)
# ---------------------------------------------------------------------------


class JobChunkStore:
    """``longform.ChunkStore`` for one job: plan and per-chunk results in the database,
    chunk audio (until processed) under the job's upload folder."""

    def __init__(self, store: JobStore, job_id: str, *, cancelled: threading.Event | None = None) -> None:
        self.store = store
        self.job_id = job_id
        self.audio_dir = store.job_dir(job_id) / "chunks"
        self._cancelled = cancelled

    def load_plan(self, key: str) -> Any:
        stored = self.store.get_plan(self.job_id)
        if stored is None or stored[0] != key:
            return None
        plan = ChunkPlan.from_dict(stored[1])
        finished = self.finished()
        if any(c.index not in finished and not Path(self.audio_path(c)).exists() for c in plan.chunks):
            return None
        return plan

    def save_plan(self, key: str, plan: Any) -> None:
        self.store.set_plan(self.job_id, key, plan.to_dict())

    def audio_path(self, chunk: Any) -> str:
        return str(self.audio_dir / f"{chunk.index:05d}.npy")

    def save_audio(self, chunk: Any, samples: Any) -> None:

        self.audio_dir.mkdir(parents=True, exist_ok=True)
        path = Path(self.audio_path(chunk))
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(samples, dtype=np.float32))
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk leaves no partial chunk behind
            raise

    def drop_audio(self, chunk: Any) -> None:
        Path(self.audio_path(chunk)).unlink(missing_ok=True)

    def load_result(self, index: int) -> Any:
        data = self.store.get_chunk(self.job_id, index)
        return None if data is None else ChunkResult.from_dict(data)

    def save_result(self, index: int, result: Any) -> None:
        if self._cancelled is not None and self._cancelled.is_set():
            raise JobCancelled(self.job_id)
        self.store.put_chunk(self.job_id, index, result.to_dict())

    def finished(self) -> set[int]:
        return set(self.store.chunk_indices(self.job_id))

    def clear(self) -> None:
        self.store.drop_chunks(self.job_id)
        shutil.rmtree(self.audio_dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# Progress: planning, chunks and the steps within a chunk onto one 0-100 scale
# ---------------------------------------------------------------------------


class JobProgress:
    """A progress hook for one job -> one monotonic percentage (``ProgressScale``).

    Long-form runs report ``decode`` while planning, ``chunks`` (done / total) and
    ``clustering`` for the global speakers; each chunk's own steps (``asr``,
    ``segmentation``...) move within that chunk's share. A run that never reports
    ``chunks`` (the short-file pipeline) counts as one chunk.
    """

    SHARES = (("plan", 5.0), ("chunks", 92.0), ("stitch", 3.0))

    def __init__(self, on_percent: Callable[[float, str], None],
                 on_chunks: Callable[[int, int], None] | None = None) -> None:
        self._scale = ProgressScale(on_percent, steps=self.SHARES)
        self._on_chunks = on_chunks
        self._chunked = False
        self._done = 0
        self._total = 1
        self._lock = threading.Lock()
        self._inner = self._new_inner()

    def _new_inner(self) -> ProgressScale:
        # Within a chunk: its own steps, without decoding (planning did that).
        return ProgressScale(self._inner_update, steps=tuple(s for s in STEPS if s[0] != "decode"))

    def _inner_update(self, percent: float, step: str) -> None:
        self._scale("chunks", completed=self._done + min(percent, 99.0) / 100.0, total=self._total)

    def __call__(self, step: str, *, completed: float | None = None, total: float | None = None) -> None:
        if step == "chunks":
            with self._lock:
                self._chunked = True
                self._done = int(completed or 0)
                self._total = max(1, int(total or 1))
                self._inner = self._new_inner()
            if self._on_chunks is not None:
                self._on_chunks(self._done, self._total)
            self._scale("chunks", completed=self._done, total=self._total)
        elif step == "decode":
            self._scale("plan", completed=completed, total=total)
        elif step == "clustering" and self._chunked and self._done >= self._total:
            # the global speakers after the last chunk (a chunk's own clustering is one of its steps)
            self._scale("stitch", completed=completed, total=total)
        else:
            self._inner(step, completed=completed, total=total)

    def finish(self) -> None:
        self._scale.finish()


class LiveJob:
    """The running job as this process last wrote it to the store, published to the
    job's followers after each write. It applies the store's rules (progress only goes
    up; a finished job counts all its chunks) instead of reading the row back."""

    def __init__(self, job: Job, events: JobBroadcaster) -> None:
        self._job = job
        self._events = events
        self._lock = threading.Lock()
        events.publish(job)

    @property
    def job(self) -> Job:
        with self._lock:
            return self._job

    def _publish(self, **changes: Any) -> None:
        with self._lock:  # publish inside: followers see the writes in order
            self._job = dataclasses.replace(self._job, updated_at=time.time(), **changes)
            self._events.publish(self._job)

    def progress(self, percent: float, step: str | None) -> None:
        with self._lock:
            progress = max(self._job.progress, min(100.0, max(0.0, percent)))
        self._publish(progress=progress, step=step)

    def chunks(self, completed: int, total: int | None) -> None:
        with self._lock:
            done = max(self._job.chunks_done, int(completed))
        self._publish(chunks_done=done, chunks_total=total)

    def finished(self) -> None:
        with self._lock:
            done = self._job.chunks_total if self._job.chunks_total is not None else self._job.chunks_done
        self._publish(state=FINISHED, progress=100.0, step="done", chunks_done=done, finished_at=time.time())

    def failed(self, error: dict[str, Any]) -> None:
        self._publish(state=FAILED, error=error, finished_at=time.time())


# ---------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------


class Transcriber(Protocol):
    """Runs one job: audio path + options -> Transcript, resuming from ``chunks``."""

    def __call__(self, job: Job, chunks: JobChunkStore, hook: Hook) -> Transcript: ...


class JobRunner:
    """Runs queued jobs one at a time (or ``workers`` at a time) on background threads.

    ``start`` first re-queues what a previous process left unfinished; their chunk
    results are still in the store, so the transcriber skips those chunks. Each state,
    progress and chunk change goes to the store and to ``events``.
    """

    def __init__(self, store: JobStore, transcriber: Transcriber, *, workers: int = 1,
                 progress_interval_s: float = 0.25, events: JobBroadcaster | None = None,
                 max_attempts: int = 3, retry_delay_s: float = 2.0) -> None:
        self.store = store
        self.events = events if events is not None else JobBroadcaster()
        self.transcriber = transcriber
        self.workers = max(1, workers)
        self.progress_interval_s = progress_interval_s
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._running: set[str] = set()
        self.max_attempts = max(1, max_attempts)
        self.retry_delay_s = retry_delay_s
        self._stopping = threading.Event()
        self._unrecorded: dict[str, dict[str, Any]] = {}  # failures the store could not take yet

    def start(self) -> list[str]:
        """Start the worker threads; returns the ids of jobs resumed from a previous run."""
        self.store.sweep_orphans()
        resumed = [job.id for job in self.store.unfinished()]
        for job_id in resumed:
            self._enqueue(job_id)
        if resumed:
            logger.info("resuming %d unfinished job(s): %s", len(resumed), ", ".join(resumed))
        for i in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"job-runner-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return resumed

    def stop(self, timeout: float = 5.0) -> None:
        """Ask running jobs to stop (they stay ``running`` in the store and resume next start)."""
        self._stopping.set()
        with self._lock:
            for event in self._cancel.values():
                event.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def submit(self, job_id: str) -> None:
        self._enqueue(job_id)

    def _enqueue(self, job_id: str) -> None:
        with self._lock:
            self._cancel.setdefault(job_id, threading.Event())
        self._queue.put(job_id)

    def cancel(self, job_id: str) -> bool:
        """Stop a queued or running job at its next progress report. Returns whether it was known."""
        with self._lock:
            event = self._cancel.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    def wait_idle(self, job_id: str, timeout: float = 10.0) -> bool:
        """Wait until ``job_id`` is not running on any thread (after a cancel)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if job_id not in self._running:
                    return True
            time.sleep(0.02)
        return False

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                cancelled = self._cancel.setdefault(job_id, threading.Event())
                if cancelled.is_set():
                    self._cancel.pop(job_id, None)
                    continue
                self._running.add(job_id)
            try:
                self._run(job_id, cancelled)
            except Exception:  # never let one job take the runner down
                logger.exception("job %s: unexpected runner error", job_id)
            finally:
                with self._lock:
                    self._running.discard(job_id)
                    self._cancel.pop(job_id, None)

    def _run(self, job_id: str, cancelled: threading.Event) -> None:
        try:
            job = self.store.get(job_id)
        except NotFoundError:
            return  # deleted while queued
        if job.done:
            return
        if job.attempts >= self.max_attempts:  # it stopped the server or its worker every time
            self._fail(LiveJob(job, self.events), {
                "message": f"the job was interrupted {job.attempts} times (its worker or the server stopped "
                           "while it ran); it is not retried again", "code": "too_many_attempts",
                "type": "JobAttemptsExhausted"})
            return
        self.store.mark_running(job_id)
        live = LiveJob(self.store.get(job_id), self.events)
        job = live.job
        logger.info("job %s: running (attempt %d, %d chunk(s) already done)", job_id, job.attempts,
                    len(self.store.chunk_indices(job_id)))
        last = [0.0]

        def on_percent(percent: float, step: str) -> None:
            if cancelled.is_set():
                raise JobCancelled(job_id)
            now = time.monotonic()
            if now - last[0] >= self.progress_interval_s:
                last[0] = now
                self.store.set_progress(job_id, percent, step)
                live.progress(percent, step)

        def on_chunks(done: int, total: int) -> None:
            self.store.set_chunks(job_id, done, total)
            live.chunks(done, total)

        progress = JobProgress(on_percent, on_chunks)

        def hook(step: str, *, completed: float | None = None, total: float | None = None) -> None:
            if cancelled.is_set():
                raise JobCancelled(job_id)
            progress(step, completed=completed, total=total)

        try:
            transcript = self.transcriber(job, JobChunkStore(self.store, job_id, cancelled=cancelled), hook)
            if cancelled.is_set():
                raise JobCancelled(job_id)
        except JobCancelled:
            logger.info("job %s: stopped", job_id)
            return  # deleted (rows gone) or the server is stopping (resumes next start)
        except BackendUnavailable as exc:  # the worker died under it (or hung): retry, a few times
            if cancelled.is_set():  # deleted, or the server is stopping (its worker with it): not a crash
                logger.info("job %s: stopped", job_id)
                return
            attempts = self.store.get(job_id).attempts if self.store.exists(job_id) else self.max_attempts
            if attempts < self.max_attempts and not cancelled.wait(self.retry_delay_s):
                logger.warning("job %s: attempt %d failed (%s); retrying", job_id, attempts, exc.message)
                self._queue.put(job_id)
                return
            logger.error("job %s failed after %d attempts: %s", job_id, attempts, exc.message)
            self._fail(live, {"message": f"the inference worker failed {attempts} times on this job; "
                                         f"last: {exc.message}", "code": "worker_crashed",
                              "type": type(exc).__name__})
            return
        except SaywhoError as exc:
            logger.warning("job %s failed: %s", job_id, exc.message)
            self._fail(live, {"message": exc.message, "code": exc.code, "type": type(exc).__name__})
            return
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                logger.error("job %s failed: the disk is full", job_id)
                self._fail(live, {"message": f"the disk is full: {exc.strerror or exc}; free some space and "
                                             "submit the job again", "code": "insufficient_storage",
                                  "type": "InsufficientStorageError"})
                return
            logger.exception("job %s failed", job_id)
            self._fail(live, {"message": f"{type(exc).__name__}: {exc}", "code": "internal_error",
                                "type": type(exc).__name__})
            return
        if self.store.exists(job_id):
            self.store.finish(job_id, transcript)
            live.finished()
            logger.info("job %s: finished", job_id)

    def _fail(self, live: LiveJob, error: dict[str, Any]) -> None:
        job_id = live.job.id
        try:  # the store first, so a follower who hears "failed" and asks finds it failed
            if self.store.exists(job_id):
                self.store.fail(job_id, error)
            live.failed(error)
            return
        except Exception as exc:  # e.g. the disk is full: record it once there is space again
            logger.error("job %s: cannot record its failure yet (%s); retrying in the background", job_id, exc)
        live.failed(error)  # followers hear it even when the store cannot take it yet
        with self._lock:
            first = not self._unrecorded
            self._unrecorded[job_id] = error
        if first:
            threading.Thread(target=self._record_failures, daemon=True, name="job-fail-recorder").start()

    def _record_failures(self) -> None:
        while not self._stopping.wait(self.retry_delay_s):
            with self._lock:
                pending = dict(self._unrecorded)
            for job_id, error in pending.items():
                try:
                    if self.store.exists(job_id):
                        self.store.fail(job_id, error)
                except Exception:
                    continue
                logger.info("job %s: its failure is recorded now", job_id)
                with self._lock:
                    self._unrecorded.pop(job_id, None)
            with self._lock:
                if not self._unrecorded:
                    return


# ---------------------------------------------------------------------------
# The default transcriber: long-form with per-chunk results in the store
# ---------------------------------------------------------------------------


def default_transcriber(*, chunk_s: float = 300.0, cpu_threads: int = 0,
                        library_path: str | Path | None = None) -> Transcriber:
    """``longform.transcribe_long`` in this process, resuming from the job's chunk store.

    Chunks run inline (one at a time) with the job's hook inside each chunk, so
    progress moves within a chunk and a cancel takes effect within seconds.
    """

    def transcribe(job: Job, chunks: JobChunkStore, hook: Hook) -> Transcript:
        from saywho.longform.chunk import process_chunk  # lazy: the HTTP process runs no model

        options = options_from_dict(job.options, cpu_threads=cpu_threads)
        transcript = transcribe_long(job.audio_path, options, chunk_s=chunk_s, store=chunks, resume=True,
                                     hook=hook, processor=functools.partial(process_chunk, hook=hook))
        if not options.identify or library_path is None or not Path(library_path).exists():
            return transcript
        return name_speakers(transcript, library_identifier(library_path))

    return transcribe
