"""Jobs in the server's SQLite database: the job rows, per-chunk results, per-job speaker names.

Uploads live on disk under ``<data_dir>/uploads/<job id>/``. The options a job was
submitted with and its result are stored through ``saywho.serialize`` (generated from
the dataclasses, with a schema version), so no field is lost across a restart.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saywho import db, serialize
from saywho.errors import InvalidOptionError, NotFoundError, SaywhoError
from saywho.formats import transcript_from_dict
from saywho.jobs import corrections
from saywho.types import SpeakerCount, TranscribeOptions, Transcript

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Mapping

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
    (
        # v3: corrections to a finished job's speakers, replayed in order (jobs/corrections.py)
        """CREATE TABLE job_corrections (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            edit TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (job_id, seq)
        )""",
    ),
    (
        # v4: the API key that created a job (a hash of it; NULL: no keys were in use).
        "ALTER TABLE jobs ADD COLUMN owner TEXT",
        "CREATE INDEX jobs_owner ON jobs(owner, created_at DESC, id)",
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
    owner: str | None = None  # a hash of the API key that created it

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
            "options": public_options(self.options),
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
        owner=row["owner"],
    )


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex[:20]}"


# ---------------------------------------------------------------------------
# Options: the transcription options a job was submitted with
# ---------------------------------------------------------------------------


def options_to_dict(options: TranscribeOptions) -> dict[str, Any]:
    """Every field of ``options`` as JSON data (``serialize.dump``); ``cpu_threads`` is
    the running server's business and is not kept."""
    return serialize.dump(dataclasses.replace(options, cpu_threads=0))


def options_from_dict(data: Mapping[str, Any], *, cpu_threads: int = 0) -> TranscribeOptions:
    """The options ``options_to_dict`` stored (or the flat form of jobs stored before
    schema 1), with this server's thread count."""
    if "schema" not in data:
        data = _legacy_options(data)
    return dataclasses.replace(serialize.load(TranscribeOptions, data), cpu_threads=cpu_threads)


def public_options(data: Mapping[str, Any]) -> dict[str, Any]:
    """The API's view of stored options: OpenAI's form-field names, the count hint flat."""
    options = options_from_dict(data)
    view = {k: v for k, v in serialize.to_data(options).items() if k not in ("speakers", "cpu_threads",
                                                                             "initial_prompt")}
    view["prompt"] = options.initial_prompt
    view.update(num_speakers=options.speakers.num, min_speakers=options.speakers.min,
                max_speakers=options.speakers.max)
    return view


def _legacy_options(data: Mapping[str, Any]) -> dict[str, Any]:
    """Jobs stored before schema 1 kept a flat subset of the options."""
    temperature = data.get("temperature", TranscribeOptions.temperature)
    options = TranscribeOptions(
        model=data.get("model") or TranscribeOptions.model,
        language=data.get("language"),
        task=data.get("task", "transcribe"),
        diarize=bool(data.get("diarize", True)),
        speakers=SpeakerCount(num=data.get("num_speakers"), min=data.get("min_speakers"),
                              max=data.get("max_speakers")),
        initial_prompt=data.get("prompt"),
        temperature=tuple(temperature) if isinstance(temperature, list) else temperature,
        identify=bool(data.get("identify", True)),
    )
    return serialize.dump(options)


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
        duration_s: float | None, owner: str | None = None,
    ) -> Job:
        now = time.time()
        with self._conn() as conn, db.transaction(conn):
            conn.execute(
                "INSERT INTO jobs (id, state, created_at, updated_at, filename, audio_path, size_bytes, "
                "duration_s, options, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, QUEUED, now, now, filename, str(audio_path), size_bytes, duration_s,
                 json.dumps(dict(options)), owner),
            )
        return self.get(job_id)

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        """The job; with ``owner``, only if that key created it (else 404, as if it did not exist)."""
        with self._conn() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            raise NotFoundError(f"no job '{job_id}'", param="job_id")
        return _job(row)

    def count_unfinished(self) -> int:
        """Queued and running jobs (the admission queue of ``POST /v1/jobs``)."""
        with self._conn() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)",
                                    (QUEUED, RUNNING)).fetchone()[0])

    def set_duration(self, job_id: str, duration_s: float) -> None:
        """The duration actually decoded (a truncated file declares more than it holds)."""
        self._update(job_id, "duration_s = ?", (round(duration_s, 3),))

    def exists(self, job_id: str) -> bool:
        with self._conn() as conn:
            return conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is not None

    def list(self, *, limit: int = 20, after: str | None = None,
             owner: str | None = None) -> tuple[list[Job], bool]:
        """Newest first; ``after`` is the last id of the previous page; with ``owner``, that
        key's jobs only. Returns (jobs, has_more)."""
        if not 1 <= limit <= 100:
            raise InvalidOptionError("limit must be between 1 and 100", param="limit")
        mine, mine_args = ("owner = ?", (owner,)) if owner is not None else ("1", ())
        with self._conn() as conn:
            if after is None:
                rows = conn.execute(f"SELECT * FROM jobs WHERE {mine} ORDER BY created_at DESC, id DESC LIMIT ?",
                                    (*mine_args, limit + 1)).fetchall()
            else:
                anchor = conn.execute(f"SELECT created_at, id FROM jobs WHERE id = ? AND {mine}",
                                      (after, *mine_args)).fetchone()
                if anchor is None:
                    raise NotFoundError(f"no job '{after}' to page after", param="after")
                rows = conn.execute(
                    f"SELECT * FROM jobs WHERE (created_at, id) < (?, ?) AND {mine} "
                    "ORDER BY created_at DESC, id DESC LIMIT ?",
                    (anchor["created_at"], anchor["id"], *mine_args, limit + 1),
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
        data = json.dumps(serialize.dump(transcript), ensure_ascii=False)
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
        """Name a speaker of a finished job (``None`` or blank: forget the name); kept in
        the corrections' history, so undo takes it back."""
        transcript = self.corrected_result(job_id)
        if label not in {s.label for s in transcript.speakers}:
            raise NotFoundError(f"job '{job_id}' has no speaker '{label}'", param="label")
        name = (name or "").strip()
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidOptionError(f"a speaker name has at most {MAX_NAME_LENGTH} characters", param="name")
        before = self.names(job_id).get(label)
        if (before or "") != name:
            with self._conn() as conn, db.transaction(conn):
                self._name(conn, job_id, label, name)
                self._push(conn, job_id, {"op": corrections.RENAME, "label": label, "name": name or None,
                                          "before": before})

    @staticmethod
    def _name(conn: Any, job_id: str, label: str, name: str | None) -> None:
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
        return _load_transcript(json.loads(row["result"]))

    def corrected_result(self, job_id: str) -> Transcript:
        """The pipeline's transcript with this job's corrections replayed (no names)."""
        return corrections.apply_corrections(self.raw_result(job_id), self.corrections(job_id))

    def result(self, job_id: str) -> Transcript:
        """The corrected transcript with this job's speaker names (what every export shows)."""
        return apply_names(self.corrected_result(job_id), self.names(job_id))

    # -- corrections ---------------------------------------------------------------

    def corrections(self, job_id: str) -> list[dict[str, Any]]:
        """The job's corrections, oldest first (each as ``corrections.validate`` made it)."""
        with self._conn() as conn:
            return [json.loads(r[0]) for r in conn.execute(
                "SELECT edit FROM job_corrections WHERE job_id = ? ORDER BY seq", (job_id,))]

    def check_correction(self, job_id: str, edit: Mapping[str, Any]) -> tuple[dict[str, Any], Transcript]:
        """``edit`` checked against the corrected transcript: (it canonical, that transcript)."""
        raw, done = self.raw_result(job_id), self.corrections(job_id)
        taken = [s.label for s in raw.speakers] + [str(e["target"]) for e in done if e.get("target")]
        current = corrections.apply_corrections(raw, done)
        return corrections.validate(current, edit, taken=taken), current

    def add_correction(self, job_id: str, canonical: Mapping[str, Any]) -> dict[str, Any]:
        """Keep a correction ``check_correction`` made canonical at the end of the job's history."""
        with self._conn() as conn, db.transaction(conn):
            self._push(conn, job_id, canonical)
        return dict(canonical)

    @staticmethod
    def _push(conn: Any, job_id: str, edit: Mapping[str, Any]) -> None:
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM job_corrections WHERE job_id = ?",
                           (job_id,)).fetchone()[0]
        conn.execute("INSERT INTO job_corrections (job_id, seq, edit, created_at) VALUES (?, ?, ?, ?)",
                     (job_id, seq, json.dumps(dict(edit)), time.time()))

    def undo_correction(self, job_id: str) -> dict[str, Any] | None:
        """Forget the last correction or rename; returns it (None when there was none)."""
        self.get(job_id)
        with self._conn() as conn, db.transaction(conn):
            row = conn.execute("SELECT seq, edit FROM job_corrections WHERE job_id = ? ORDER BY seq DESC LIMIT 1",
                               (job_id,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM job_corrections WHERE job_id = ? AND seq = ?", (job_id, row[0]))
            edit = json.loads(row[1])
            if edit["op"] == corrections.RENAME:
                self._name(conn, job_id, edit["label"], edit.get("before"))
        return edit


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


def _load_transcript(data: Mapping[str, Any]) -> Transcript:
    """A stored result: ``serialize.dump`` form, or the JSON format of jobs stored before schema 1."""
    return serialize.load(Transcript, data) if "schema" in data else transcript_from_dict(dict(data))
