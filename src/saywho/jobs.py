"""Background transcription jobs that survive restarts.

``JobStore`` keeps jobs, their per-chunk results and per-job speaker names in the
server's SQLite database (``db.py``); uploads live on disk under
``<data_dir>/uploads/<job id>/``. ``JobRunner`` runs queued jobs on a background
thread through an injectable ``Transcriber`` (by default ``longform.transcribe_long``
with a chunk store backed by the database), so a server killed mid-job resumes at
its next start from the last finished chunk. Progress is one monotonic 0-100 value
per job (``JobProgress``); cancellation is checked at every progress report.

Nothing here touches HTTP: ``server/routers/jobs.py`` is a thin layer on top.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import db
from .errors import InvalidOptionError, NotFoundError, SaywhoError
from .formats import transcript_from_dict, transcript_to_dict
from .progress import STEPS, ProgressScale
from .types import Hook, SpeakerCount, TranscribeOptions, Transcript

logger = logging.getLogger(__name__)

QUEUED, RUNNING, FINISHED, FAILED, CANCELLED = "queued", "running", "finished", "failed", "cancelled"
TERMINAL = (FINISHED, FAILED, CANCELLED)

# Schema migrations of the jobs tables: MIGRATIONS[i] brings the file from version i to i + 1.
MIGRATIONS: list[db.Migration] = [
    (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            filename TEXT NOT NULL,
            audio_path TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            duration_s REAL,
            options TEXT NOT NULL,
            progress REAL NOT NULL DEFAULT 0,
            step TEXT,
            chunks_done INTEGER NOT NULL DEFAULT 0,
            chunks_total INTEGER,
            error TEXT,
            result TEXT
        )""",
        """CREATE TABLE job_chunks (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            chunk INTEGER NOT NULL,
            data TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (job_id, chunk)
        )""",
        """CREATE TABLE job_speakers (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            label TEXT NOT NULL,
            name TEXT NOT NULL,
            PRIMARY KEY (job_id, label)
        )""",
    ),
    (
        # v2: list by recency; count restarts of a job (attempts > 1 means it was resumed).
        "CREATE INDEX jobs_created ON jobs(created_at DESC, id)",
        "ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        # the long-form chunk plan (what the stored chunk results belong to)
        "ALTER TABLE jobs ADD COLUMN plan_key TEXT",
        "ALTER TABLE jobs ADD COLUMN plan TEXT",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

MAX_NAME_LENGTH = 100


class JobCancelled(Exception):
    """Raised inside a running job (from its progress hook) when it was cancelled."""


@dataclass(frozen=True, slots=True)
class Job:
    """One job as stored. ``progress`` is 0-100 and never goes backwards."""

    id: str
    state: str
    created_at: float
    updated_at: float
    filename: str
    audio_path: str
    size_bytes: int
    options: dict[str, Any]
    duration_s: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    progress: float = 0.0
    step: str | None = None
    chunks_done: int = 0
    chunks_total: int | None = None
    error: dict[str, Any] | None = None
    attempts: int = 0

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """The API's job object."""
        return {
            "id": self.id,
            "object": "job",
            "status": self.state,
            "created_at": round(self.created_at, 3),
            "started_at": None if self.started_at is None else round(self.started_at, 3),
            "finished_at": None if self.finished_at is None else round(self.finished_at, 3),
            "filename": self.filename,
            "bytes": self.size_bytes,
            "duration": self.duration_s,
            "options": self.options,
            "progress": round(self.progress, 1),
            "step": self.step,
            "chunks": {"completed": self.chunks_done, "total": self.chunks_total},
            "attempts": self.attempts,
            "error": self.error,
        }


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"], state=row["state"], created_at=row["created_at"], updated_at=row["updated_at"],
        filename=row["filename"], audio_path=row["audio_path"], size_bytes=row["size_bytes"],
        options=json.loads(row["options"]), duration_s=row["duration_s"], started_at=row["started_at"],
        finished_at=row["finished_at"], progress=row["progress"], step=row["step"],
        chunks_done=row["chunks_done"], chunks_total=row["chunks_total"],
        error=json.loads(row["error"]) if row["error"] else None, attempts=row["attempts"],
    )


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex[:20]}"


# ---------------------------------------------------------------------------
# Options: the transcription options a job was submitted with, as plain JSON
# ---------------------------------------------------------------------------


def options_to_dict(options: TranscribeOptions) -> dict[str, Any]:
    """The fields a job keeps (enough to run it again after a restart)."""
    temperature = options.temperature
    return {
        "model": options.model,
        "language": options.language,
        "task": options.task,
        "diarize": options.diarize,
        "num_speakers": options.speakers.num,
        "min_speakers": options.speakers.min,
        "max_speakers": options.speakers.max,
        "prompt": options.initial_prompt,
        "temperature": list(temperature) if isinstance(temperature, tuple) else temperature,
        "identify": options.identify,
    }


def options_from_dict(data: Mapping[str, Any], *, cpu_threads: int = 0) -> TranscribeOptions:
    temperature = data.get("temperature", TranscribeOptions.temperature)
    return TranscribeOptions(
        model=data.get("model") or TranscribeOptions.model,
        language=data.get("language"),
        task=data.get("task", "transcribe"),
        diarize=bool(data.get("diarize", True)),
        speakers=SpeakerCount(num=data.get("num_speakers"), min=data.get("min_speakers"),
                              max=data.get("max_speakers")),
        initial_prompt=data.get("prompt"),
        temperature=tuple(temperature) if isinstance(temperature, list) else temperature,
        identify=bool(data.get("identify", True)),
        cpu_threads=cpu_threads,
    )


# ---------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------


class JobStore:
    """Jobs, chunk results and speaker names in SQLite; uploads under ``uploads_dir``.

    Every call opens its own connection, so one store is shared by the event loop's
    threads, the runner and other processes on the same file.
    """

    def __init__(self, db_path: str | Path, uploads_dir: str | Path) -> None:
        self.db_path = Path(db_path)
        self.uploads_dir = Path(uploads_dir)
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        with db.opened(self.db_path) as conn:
            db.migrate(conn, MIGRATIONS)

    def _conn(self) -> Any:
        return db.opened(self.db_path)

    # -- jobs --------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        return self.uploads_dir / job_id

    def create(
        self, job_id: str, *, filename: str, audio_path: Path, size_bytes: int, options: Mapping[str, Any],
        duration_s: float | None,
    ) -> Job:
        now = time.time()
        with self._conn() as conn, db.transaction(conn):
            conn.execute(
                "INSERT INTO jobs (id, state, created_at, updated_at, filename, audio_path, size_bytes, "
                "duration_s, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, QUEUED, now, now, filename, str(audio_path), size_bytes, duration_s,
                 json.dumps(dict(options))),
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self._conn() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no job '{job_id}'", param="job_id")
        return _job(row)

    def exists(self, job_id: str) -> bool:
        with self._conn() as conn:
            return conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is not None

    def list(self, *, limit: int = 20, after: str | None = None) -> tuple[list[Job], bool]:
        """Newest first; ``after`` is the last id of the previous page. Returns (jobs, has_more)."""
        if not 1 <= limit <= 100:
            raise InvalidOptionError("limit must be between 1 and 100", param="limit")
        with self._conn() as conn:
            if after is None:
                rows = conn.execute("SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?",
                                    (limit + 1,)).fetchall()
            else:
                anchor = conn.execute("SELECT created_at, id FROM jobs WHERE id = ?", (after,)).fetchone()
                if anchor is None:
                    raise InvalidOptionError(f"no job '{after}' to page after", param="after")
                rows = conn.execute(
                    "SELECT * FROM jobs WHERE (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?",
                    (anchor["created_at"], anchor["id"], limit + 1),
                ).fetchall()
        return [_job(r) for r in rows[:limit]], len(rows) > limit

    def unfinished(self) -> list[Job]:
        """Queued and running jobs, oldest first (what a starting server must resume)."""
        with self._conn() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE state IN (?, ?) ORDER BY created_at, id",
                                (QUEUED, RUNNING)).fetchall()
        return [_job(r) for r in rows]

    def _update(self, job_id: str, sql: str, params: tuple[Any, ...]) -> None:
        with self._conn() as conn, db.transaction(conn):
            conn.execute(f"UPDATE jobs SET {sql}, updated_at = ? WHERE id = ?", (*params, time.time(), job_id))

    def mark_running(self, job_id: str) -> None:
        self._update(job_id, "state = ?, started_at = COALESCE(started_at, ?), attempts = attempts + 1, error = NULL",
                     (RUNNING, time.time()))

    def set_progress(self, job_id: str, percent: float, step: str | None) -> None:
        """Record progress; a smaller value than the stored one is ignored (monotonic)."""
        self._update(job_id, "progress = MAX(progress, ?), step = ?", (min(100.0, max(0.0, percent)), step))

    def set_chunks(self, job_id: str, completed: int, total: int | None) -> None:
        self._update(job_id, "chunks_done = MAX(chunks_done, ?), chunks_total = ?", (int(completed), total))

    def finish(self, job_id: str, transcript: Transcript) -> None:
        data = json.dumps(transcript_to_dict(transcript), ensure_ascii=False)
        self._update(job_id, "state = ?, result = ?, progress = 100, step = 'done', finished_at = ?, "
                     "chunks_done = COALESCE(chunks_total, chunks_done)", (FINISHED, data, time.time()))

    def fail(self, job_id: str, error: Mapping[str, Any]) -> None:
        self._update(job_id, "state = ?, error = ?, finished_at = ?", (FAILED, json.dumps(dict(error)), time.time()))

    def mark_cancelled(self, job_id: str) -> None:
        self._update(job_id, "state = ?, finished_at = ?", (CANCELLED, time.time()))

    def delete(self, job_id: str) -> None:
        """Remove the job, its chunks and names, and its uploaded audio."""
        with self._conn() as conn, db.transaction(conn):
            deleted = conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        if not deleted:
            raise NotFoundError(f"no job '{job_id}'", param="job_id")

    def sweep_orphans(self) -> list[Path]:
        """Remove upload folders with no job (left by a crash between saving and recording)."""
        with self._conn() as conn:
            known = {r[0] for r in conn.execute("SELECT id FROM jobs")}
        removed = []
        for path in self.uploads_dir.iterdir():
            if path.name not in known:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    # -- chunks ------------------------------------------------------------------

    def put_chunk(self, job_id: str, index: int, data: Mapping[str, Any]) -> None:
        with self._conn() as conn, db.transaction(conn):
            conn.execute("INSERT OR REPLACE INTO job_chunks (job_id, chunk, data, created_at) VALUES (?, ?, ?, ?)",
                         (job_id, int(index), json.dumps(dict(data)), time.time()))

    def get_chunk(self, job_id: str, index: int) -> dict[str, Any] | None:
        with self._conn() as conn:
            row = conn.execute("SELECT data FROM job_chunks WHERE job_id = ? AND chunk = ?",
                               (job_id, int(index))).fetchone()
        return None if row is None else json.loads(row[0])

    def chunk_indices(self, job_id: str) -> list[int]:
        with self._conn() as conn:
            return [r[0] for r in conn.execute("SELECT chunk FROM job_chunks WHERE job_id = ? ORDER BY chunk",
                                               (job_id,))]

    def drop_chunks(self, job_id: str) -> None:
        """Forget the plan and every chunk result (a fresh start)."""
        with self._conn() as conn, db.transaction(conn):
            conn.execute("DELETE FROM job_chunks WHERE job_id = ?", (job_id,))
            conn.execute("UPDATE jobs SET plan_key = NULL, plan = NULL WHERE id = ?", (job_id,))

    def get_plan(self, job_id: str) -> tuple[str, dict[str, Any]] | None:
        with self._conn() as conn:
            row = conn.execute("SELECT plan_key, plan FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or row["plan"] is None:
            return None
        return row["plan_key"], json.loads(row["plan"])

    def set_plan(self, job_id: str, key: str, plan: Mapping[str, Any]) -> None:
        self._update(job_id, "plan_key = ?, plan = ?", (key, json.dumps(dict(plan))))

    # -- results and speaker names -----------------------------------------------

    def names(self, job_id: str) -> dict[str, str]:
        with self._conn() as conn:
            return {r[0]: r[1] for r in conn.execute("SELECT label, name FROM job_speakers WHERE job_id = ?",
                                                     (job_id,))}

    def rename(self, job_id: str, label: str, name: str | None) -> None:
        """Name a speaker of a finished job (``None`` or blank: forget the name)."""
        transcript = self.raw_result(job_id)
        if label not in {s.label for s in transcript.speakers}:
            raise NotFoundError(f"job '{job_id}' has no speaker '{label}'", param="label")
        name = (name or "").strip()
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidOptionError(f"a speaker name has at most {MAX_NAME_LENGTH} characters", param="name")
        with self._conn() as conn, db.transaction(conn):
            if name:
                conn.execute("INSERT OR REPLACE INTO job_speakers (job_id, label, name) VALUES (?, ?, ?)",
                             (job_id, label, name))
            else:
                conn.execute("DELETE FROM job_speakers WHERE job_id = ? AND label = ?", (job_id, label))

    def raw_result(self, job_id: str) -> Transcript:
        """The transcript as the pipeline produced it (no renames)."""
        with self._conn() as conn:
            row = conn.execute("SELECT state, result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no job '{job_id}'", param="job_id")
        if row["state"] != FINISHED or row["result"] is None:
            raise JobNotFinishedError(f"job '{job_id}' is {row['state']}; its result is not ready",
                                      param="job_id")
        return transcript_from_dict(json.loads(row["result"]))

    def result(self, job_id: str) -> Transcript:
        """The transcript with this job's speaker names applied (what every export shows)."""
        return apply_names(self.raw_result(job_id), self.names(job_id))


class JobNotFinishedError(SaywhoError):
    status_code = 409
    code = "job_not_finished"


def apply_names(transcript: Transcript, names: Mapping[str, str]) -> Transcript:
    """A copy whose speakers carry the given display names (label -> name)."""
    if not names:
        return transcript
    speakers = tuple(
        dataclasses.replace(s, name=names[s.label], score=None) if s.label in names else s
        for s in transcript.speakers
    )
    return dataclasses.replace(transcript, speakers=speakers)


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
        from .chunking import ChunkPlan

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
        import numpy as np

        self.audio_dir.mkdir(parents=True, exist_ok=True)
        path = Path(self.audio_path(chunk))
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(samples, dtype=np.float32))
        tmp.replace(path)

    def drop_audio(self, chunk: Any) -> None:
        Path(self.audio_path(chunk)).unlink(missing_ok=True)

    def load_result(self, index: int) -> Any:
        from .longform import ChunkResult

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
        elif step == "clustering" and self._chunked:
            self._scale("stitch", completed=completed, total=total)
        else:
            self._inner(step, completed=completed, total=total)

    def finish(self) -> None:
        self._scale.finish()


# ---------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------


class Transcriber(Protocol):
    """Runs one job: audio path + options -> Transcript, resuming from ``chunks``."""

    def __call__(self, job: Job, chunks: JobChunkStore, hook: Hook) -> Transcript: ...


class JobRunner:
    """Runs queued jobs one at a time (or ``workers`` at a time) on background threads.

    ``start`` first re-queues what a previous process left unfinished; their chunk
    results are still in the store, so the transcriber skips those chunks.
    """

    def __init__(self, store: JobStore, transcriber: Transcriber, *, workers: int = 1,
                 progress_interval_s: float = 0.25) -> None:
        self.store = store
        self.transcriber = transcriber
        self.workers = max(1, workers)
        self.progress_interval_s = progress_interval_s
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._running: set[str] = set()

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
        self.store.mark_running(job_id)
        job = self.store.get(job_id)
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

        def on_chunks(done: int, total: int) -> None:
            self.store.set_chunks(job_id, done, total)

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
        except SaywhoError as exc:
            logger.warning("job %s failed: %s", job_id, exc.message)
            self._fail(job_id, {"message": exc.message, "code": exc.code, "type": type(exc).__name__})
            return
        except Exception as exc:
            logger.exception("job %s failed", job_id)
            self._fail(job_id, {"message": f"{type(exc).__name__}: {exc}", "code": "internal_error",
                                "type": type(exc).__name__})
            return
        if self.store.exists(job_id):
            self.store.finish(job_id, transcript)
            logger.info("job %s: finished", job_id)

    def _fail(self, job_id: str, error: dict[str, Any]) -> None:
        if self.store.exists(job_id):
            self.store.fail(job_id, error)


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
        import functools

        from .longform import process_chunk, transcribe_long

        options = options_from_dict(job.options, cpu_threads=cpu_threads)
        transcript = transcribe_long(job.audio_path, options, chunk_s=chunk_s, store=chunks, resume=True,
                                     hook=hook, processor=functools.partial(process_chunk, hook=hook))
        return identify(transcript, library_path) if options.identify else transcript

    return transcribe


def identify(transcript: Transcript, library_path: str | Path | None) -> Transcript:
    """Names from the speaker library for the voices it knows (unchanged when it knows none)."""
    if library_path is None or transcript.diarization is None or not Path(library_path).exists():
        return transcript
    try:
        from .speakers import SpeakerLibrary

        names = SpeakerLibrary(library_path).identifier()(transcript.diarization)
    except Exception as exc:  # noqa: BLE001 - a damaged library must not fail the transcript
        logger.warning("speaker identification skipped: %s", exc)
        return transcript
    if not names:
        return transcript
    speakers = tuple(
        dataclasses.replace(s, name=names[s.label][0], score=round(names[s.label][1], 4)) if s.label in names else s
        for s in transcript.speakers
    )
    return dataclasses.replace(transcript, speakers=speakers)


# ---------------------------------------------------------------------------
# Accepting an upload: validate first, so bad input leaves no job and no file
# ---------------------------------------------------------------------------


def probe_upload(path: Path, *, max_duration_s: float) -> float:
    """The audio's duration in seconds; raises ``AudioDecodeError`` / ``AudioTooLongError``.

    The container's duration when it declares one (and its first block decodes), else
    the file is decoded as a stream (MediaRecorder's WebM declares none).
    """
    from .audio import probe_duration, stream_audio
    from .errors import AudioDecodeError, AudioTooLongError
    from .types import SAMPLE_RATE

    declared = probe_duration(path)
    blocks = stream_audio(path, block_s=30.0)
    try:
        first = next(blocks, None)
        if first is None or not len(first):
            raise AudioDecodeError("the upload holds no audio samples", param="file")
        if declared is None:
            declared = (len(first) + sum(len(b) for b in blocks)) / SAMPLE_RATE
    finally:
        blocks.close()
    if declared > max_duration_s:
        raise AudioTooLongError(f"the audio lasts {declared:.0f} s; the limit is {max_duration_s:.0f} s",
                                param="file")
    return round(declared, 3)


class JobService:
    """The store and the runner together: what the HTTP layer talks to."""

    def __init__(self, store: JobStore, runner: JobRunner, *, max_duration_s: float = 3 * 3600.0) -> None:
        self.store = store
        self.runner = runner
        self.max_duration_s = max_duration_s

    @classmethod
    def from_settings(cls, settings: Any, transcriber: Transcriber | None = None) -> JobService:
        store = JobStore(settings.db_path, Path(settings.data_dir) / "uploads")
        transcriber = transcriber or default_transcriber(
            chunk_s=settings.job_chunk_s, cpu_threads=settings.cpu_threads, library_path=settings.db_path)
        return cls(store, JobRunner(store, transcriber), max_duration_s=settings.max_duration_s)

    def start(self) -> list[str]:
        return self.runner.start()

    def stop(self) -> None:
        self.runner.stop()

    def incoming_path(self, filename: str) -> Path:
        """Where an upload is written while it is checked (not yet a job)."""
        incoming = self.store.uploads_dir / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        return incoming / f"{uuid.uuid4().hex}{safe_suffix(filename)}"

    def submit(self, upload: Path, *, filename: str, options: TranscribeOptions) -> Job:
        """Check ``upload`` is audio, then move it under a new job and queue the job.

        On any error the upload is deleted and no job exists.
        """
        from .errors import AudioDecodeError

        try:
            try:
                duration = probe_upload(upload, max_duration_s=self.max_duration_s)
            except AudioDecodeError as exc:  # name the user's file, not our temporary path
                raise AudioDecodeError(exc.message.replace(str(upload), clean_filename(filename)),
                                       param="file") from None
            job_id = new_job_id()
            folder = self.store.job_dir(job_id)
            folder.mkdir(parents=True)
            audio_path = folder / f"audio{safe_suffix(filename)}"
            size = upload.stat().st_size
            upload.replace(audio_path)
        except BaseException:
            upload.unlink(missing_ok=True)
            raise
        try:
            job = self.store.create(job_id, filename=clean_filename(filename), audio_path=audio_path,
                                    size_bytes=size, options=options_to_dict(options), duration_s=duration)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.runner.submit(job_id)
        return job

    def delete(self, job_id: str) -> None:
        """Cancel the job if it runs, then remove it and its files."""
        self.store.get(job_id)  # 404 first
        self.runner.cancel(job_id)
        self.runner.wait_idle(job_id, timeout=30.0)
        self.store.delete(job_id)


def safe_suffix(filename: str) -> str:
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 8 else ""


def clean_filename(filename: str) -> str:
    name = Path((filename or "").replace("\\", "/")).name.strip()
    return "".join(c for c in name if c.isprintable())[:200] or "audio"
