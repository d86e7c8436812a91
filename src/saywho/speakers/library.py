"""The library of named voices, in SQLite.

Each speaker has a name (unique, case-insensitive), one or more enrolment
fingerprints (CAM++, 192 float32 values, with where each came from) and timestamps.
The library lives in its own file, the same for the CLI and the server by default
(``$SAYWHO_SPEAKERS_DB``, else ``<data dir>/speakers.db`` with the data dir
``$SAYWHO_DATA_DIR`` or ``~/.local/share/saywho``). It may share a file with other
tables: every table it owns starts with ``speaker``, and its schema version is kept in
its own ``speaker_schema`` table (not ``PRAGMA user_version``, which belongs to whoever
owns the file).

Every call opens its own short-lived connection (WAL, busy timeout, writes in
``BEGIN IMMEDIATE``), so one ``SpeakerLibrary`` may be shared across threads, and
several processes may use one file. A file that is not a readable library is
reported with ``SpeakerLibraryError``; it is never replaced or repaired silently.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from saywho.db import use_wal
from saywho.errors import SpeakerLibraryError, SpeakerNotFoundError
from saywho.settings import default_speakers_db
from saywho.speakers.export import EXPORT_FORMAT, EXPORT_VERSION, check_name, parse_export, unit_vectors
from saywho.speakers.identify import EMBEDDING_DIM, EMBEDDING_MODEL, assign_names

if TYPE_CHECKING:
    import builtins
    import os
    from collections.abc import Iterator, Mapping, Sequence

    from saywho.types import Diarization

logger = logging.getLogger(__name__)


# Schema migrations, in order: MIGRATIONS[i] brings a library from version i to i + 1.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE IF NOT EXISTS speakers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS speaker_fingerprints (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            speaker_id TEXT NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            vector BLOB NOT NULL,
            source TEXT NOT NULL,
            speech_s REAL,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS speaker_fingerprints_speaker ON speaker_fingerprints(speaker_id)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


def default_path() -> Path:
    """``$SAYWHO_SPEAKERS_DB``, else ``<data dir>/speakers.db``: the file the server uses
    too (``settings.default_speakers_db``), so a voice enrolled by either is known to both."""
    return default_speakers_db()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class SpeakerExistsError(SpeakerLibraryError):
    """A speaker name is already taken."""

    status_code = 409
    code = "speaker_exists"


@dataclass(frozen=True, slots=True)
class Enrolment:
    """One enrolment fingerprint of a speaker (the vector itself stays in the library)."""

    id: int
    source: str
    model: str
    speech_s: float | None
    created_at: str


@dataclass(frozen=True, slots=True)
class Speaker:
    id: str
    name: str
    created_at: str
    updated_at: str
    enrolments: tuple[Enrolment, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "speaker",
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "enrolments": [
                {"id": e.id, "source": e.source, "model": e.model, "speech_s": e.speech_s, "created_at": e.created_at}
                for e in self.enrolments
            ],
        }


class SpeakerLibrary:
    """Named voices in the SQLite file at ``path`` (created on the first write)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, model: str = EMBEDDING_MODEL) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.model = model

    def __repr__(self) -> str:
        return f"SpeakerLibrary({str(self.path)!r})"

    # -- connections -------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.is_file()

    def _error(self, exc: sqlite3.Error) -> SpeakerLibraryError:
        return SpeakerLibraryError(
            f"the speaker library {self.path} cannot be read ({exc}); it was left as it is — "
            "move it away or point --speakers-db / SAYWHO_SPEAKERS_DB at another file"
        )

    @contextlib.contextmanager
    def _connect(self, *, write: bool) -> Iterator[sqlite3.Connection | None]:
        """A connection in a transaction; None for reads of a library not created yet."""
        if not write and not self.exists():
            yield None
            return
        if self.path.is_dir():
            raise SpeakerLibraryError(f"the speaker library {self.path} is a directory")
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            if write:
                use_wal(conn)
                conn.execute("BEGIN IMMEDIATE")
            else:
                conn.execute("BEGIN")
            version = self._migrate(conn, write=write)
            if version is None:  # a read of a file holding no library yet
                conn.execute("ROLLBACK")
                yield None
                return
            yield conn
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            raise SpeakerExistsError(f"the speaker library refused the change ({exc})") from None
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise self._error(exc) from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def _migrate(self, conn: sqlite3.Connection, *, write: bool) -> int | None:
        """Bring the schema to SCHEMA_VERSION (writes only); the version, None if none yet."""
        has_table = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'speaker_schema'"
        ).fetchone()
        version = 0
        if has_table:
            row = conn.execute("SELECT version FROM speaker_schema").fetchone()
            if row is None or not isinstance(row[0], int):
                raise SpeakerLibraryError(f"the speaker library {self.path} has a damaged schema table")
            version = row[0]
        if version > SCHEMA_VERSION:
            raise SpeakerLibraryError(
                f"the speaker library {self.path} has schema version {version}, newer than this saywho "
                f"understands ({SCHEMA_VERSION}); upgrade saywho"
            )
        if version == SCHEMA_VERSION:
            return version
        if not write:
            return version or None  # older schema: read as is until the next write migrates it
        if not has_table:
            conn.execute("CREATE TABLE speaker_schema (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO speaker_schema (version) VALUES (0)")
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute("UPDATE speaker_schema SET version = ?", (step + 1,))
            logger.info("speaker library %s migrated to schema %d", self.path, step + 1)
        return SCHEMA_VERSION

    def schema_version(self) -> int:
        """The schema version of the file (0 when it holds no library yet)."""
        with self._connect(write=False) as conn:
            if conn is None:
                return 0
            return int(conn.execute("SELECT version FROM speaker_schema").fetchone()[0])

    # -- reading -----------------------------------------------------------------

    def _speaker(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> Speaker:
        enrolments = tuple(
            Enrolment(id=e[0], source=e[1], model=e[2], speech_s=e[3], created_at=e[4])
            for e in conn.execute(
                "SELECT id, source, model, speech_s, created_at FROM speaker_fingerprints "
                "WHERE speaker_id = ? ORDER BY id",
                (row[0],),
            )
        )
        return Speaker(id=row[0], name=row[1], created_at=row[2], updated_at=row[3], enrolments=enrolments)

    def _find(self, conn: sqlite3.Connection, ref: str) -> tuple[Any, ...]:
        row = conn.execute(
            "SELECT id, name, created_at, updated_at FROM speakers WHERE id = ? OR name = ? COLLATE NOCASE "
            "ORDER BY id = ? DESC LIMIT 1",
            (ref, " ".join(str(ref).split()), ref),
        ).fetchone()
        if row is None:
            raise SpeakerNotFoundError(f"no speaker '{ref}' in the library {self.path}", param="speaker")
        return row

    def list(self) -> list[Speaker]:
        """All speakers, by name."""
        with self._connect(write=False) as conn:
            if conn is None:
                return []
            rows = conn.execute(
                "SELECT id, name, created_at, updated_at FROM speakers ORDER BY name COLLATE NOCASE"
            ).fetchall()
            return [self._speaker(conn, r) for r in rows]

    def __len__(self) -> int:
        with self._connect(write=False) as conn:
            return 0 if conn is None else int(conn.execute("SELECT COUNT(*) FROM speakers").fetchone()[0])

    def get(self, ref: str) -> Speaker:
        """A speaker by id or (case-insensitive) name; SpeakerNotFoundError if absent."""
        with self._connect(write=False) as conn:
            if conn is None:
                raise SpeakerNotFoundError(f"no speaker '{ref}': the library {self.path} is empty", param="speaker")
            return self._speaker(conn, self._find(conn, ref))

    def known(self) -> dict[str, np.ndarray]:
        """name -> (k, 192) enrolment fingerprints of this library's embedding model."""
        with self._connect(write=False) as conn:
            if conn is None:
                return {}
            out: dict[str, list[np.ndarray]] = {}
            for name, blob in conn.execute(
                "SELECT s.name, f.vector FROM speakers s JOIN speaker_fingerprints f ON f.speaker_id = s.id "
                "WHERE f.model = ? ORDER BY s.name, f.id",
                (self.model,),
            ):
                out.setdefault(name, []).append(self._decode(blob))
            return {name: np.stack(vs) for name, vs in out.items()}

    def _decode(self, blob: bytes) -> np.ndarray:
        if not isinstance(blob, bytes) or len(blob) != 4 * EMBEDDING_DIM:
            raise SpeakerLibraryError(f"the speaker library {self.path} holds a damaged fingerprint")
        return np.frombuffer(blob, dtype="<f4").copy()

    # -- writing -----------------------------------------------------------------

    def add(
        self,
        name: str,
        fingerprints: Sequence[float] | np.ndarray,
        *,
        source: str,
        speech_s: float | None = None,
        merge: bool = False,
    ) -> Speaker:
        """A new speaker with one or more enrolment fingerprints ((192,) or (k, 192)).

        A name already in the library is refused (``SpeakerLibraryError``, code
        ``speaker_exists``) unless ``merge``: then the fingerprints are added to it.
        """
        name = check_name(name)
        vectors = unit_vectors(fingerprints)
        with self._connect(write=True) as conn:
            assert conn is not None
            row = conn.execute("SELECT id FROM speakers WHERE name = ? COLLATE NOCASE", (name,)).fetchone()
            if row is not None and not merge:
                raise SpeakerExistsError(
                    f"a speaker named '{name}' is already in the library; add the voice to it with --merge "
                    "(merge=true), or choose another name",
                    param="name",
                )
            now = _now()
            if row is None:
                speaker_id = f"spk_{uuid.uuid4().hex[:16]}"
                conn.execute(
                    "INSERT INTO speakers (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                    (speaker_id, name, now, now),
                )
            else:
                speaker_id = row[0]
                conn.execute("UPDATE speakers SET updated_at = ? WHERE id = ?", (now, speaker_id))
            self._insert(conn, speaker_id, vectors, source=source, speech_s=speech_s, created_at=now)
            return self._speaker(conn, self._find(conn, speaker_id))

    def enrol(
        self, ref: str, fingerprints: Sequence[float] | np.ndarray, *, source: str, speech_s: float | None = None
    ) -> Speaker:
        """Add enrolment fingerprints to an existing speaker (by id or name)."""
        vectors = unit_vectors(fingerprints)
        with self._connect(write=True) as conn:
            assert conn is not None
            row = self._find(conn, ref)
            now = _now()
            conn.execute("UPDATE speakers SET updated_at = ? WHERE id = ?", (now, row[0]))
            self._insert(conn, row[0], vectors, source=source, speech_s=speech_s, created_at=now)
            return self._speaker(conn, self._find(conn, row[0]))

    def _insert(
        self, conn: sqlite3.Connection, speaker_id: str, vectors: np.ndarray, *, source: str,
        speech_s: float | None, created_at: str, model: str | None = None,
    ) -> None:
        conn.executemany(
            "INSERT INTO speaker_fingerprints (speaker_id, model, vector, source, speech_s, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (speaker_id, model or self.model, v.astype("<f4").tobytes(), str(source)[:500], speech_s, created_at)
                for v in vectors
            ],
        )

    def rename(self, ref: str, new_name: str) -> Speaker:
        """Rename a speaker; a name held by another speaker is refused."""
        new_name = check_name(new_name)
        with self._connect(write=True) as conn:
            if conn is None:
                raise SpeakerNotFoundError(f"no speaker '{ref}'", param="speaker")
            row = self._find(conn, ref)
            other = conn.execute(
                "SELECT id FROM speakers WHERE name = ? COLLATE NOCASE AND id != ?", (new_name, row[0])
            ).fetchone()
            if other is not None:
                raise SpeakerExistsError(
                    f"cannot rename '{row[1]}' to '{new_name}': that name is taken by another speaker", param="name"
                )
            conn.execute("UPDATE speakers SET name = ?, updated_at = ? WHERE id = ?", (new_name, _now(), row[0]))
            return self._speaker(conn, self._find(conn, row[0]))

    def remove(self, ref: str) -> Speaker:
        """Delete a speaker and its fingerprints; returns what was removed."""
        with self._connect(write=True) as conn:
            assert conn is not None
            row = self._find(conn, ref)
            speaker = self._speaker(conn, row)
            conn.execute("DELETE FROM speaker_fingerprints WHERE speaker_id = ?", (row[0],))
            conn.execute("DELETE FROM speakers WHERE id = ?", (row[0],))
            return speaker

    # -- export / import ---------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Every speaker with its fingerprints, as JSON-ready data (no audio)."""
        with self._connect(write=False) as conn:
            speakers = []
            if conn is not None:
                for row in conn.execute(
                    "SELECT id, name, created_at, updated_at FROM speakers ORDER BY name COLLATE NOCASE"
                ).fetchall():
                    prints = [
                        {"model": f[0], "source": f[1], "speech_s": f[2], "created_at": f[3],
                         "vector": [round(float(x), 7) for x in self._decode(f[4])]}
                        for f in conn.execute(
                            "SELECT model, source, speech_s, created_at, vector FROM speaker_fingerprints "
                            "WHERE speaker_id = ? ORDER BY id",
                            (row[0],),
                        )
                    ]
                    speakers.append({"name": row[1], "created_at": row[2], "updated_at": row[3],
                                     "fingerprints": prints})
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "dim": EMBEDDING_DIM, "speakers": speakers}

    def import_(self, data: Mapping[str, Any], *, merge: bool = False) -> builtins.list[Speaker]:
        """Add the speakers of an ``export()`` document, all or nothing.

        A name already in the library is refused unless ``merge`` (fingerprints are then
        added to it, skipping ones it already holds).
        """
        entries = parse_export(data)
        with self._connect(write=True) as conn:
            assert conn is not None
            done = []
            for entry in entries:
                row = conn.execute(
                    "SELECT id FROM speakers WHERE name = ? COLLATE NOCASE", (entry["name"],)
                ).fetchone()
                if row is not None and not merge:
                    raise SpeakerExistsError(
                        f"'{entry['name']}' is already in the library; import with --merge to add its "
                        "fingerprints, or remove or rename it first; nothing was imported",
                        param="name",
                    )
                now = _now()
                if row is None:
                    speaker_id = f"spk_{uuid.uuid4().hex[:16]}"
                    conn.execute(
                        "INSERT INTO speakers (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                        (speaker_id, entry["name"], entry.get("created_at") or now, entry.get("updated_at") or now),
                    )
                    held: set[bytes] = set()
                else:
                    speaker_id = row[0]
                    conn.execute("UPDATE speakers SET updated_at = ? WHERE id = ?", (now, speaker_id))
                    held = {
                        bytes(b) for (b,) in conn.execute(
                            "SELECT vector FROM speaker_fingerprints WHERE speaker_id = ?", (speaker_id,))
                    }
                for fp in entry["fingerprints"]:
                    vector = fp["vector"]
                    if vector.astype("<f4").tobytes() in held:
                        continue
                    self._insert(conn, speaker_id, vector[None, :], source=fp["source"], speech_s=fp["speech_s"],
                                 created_at=fp["created_at"] or now, model=fp["model"])
                done.append(speaker_id)
            return [self._speaker(conn, self._find(conn, i)) for i in done]

    # -- identification ----------------------------------------------------------

    def identifier(self, threshold: float | None = None):
        """A ``Diarization -> {label: (name, score)}`` callable for ``pipeline.transcribe``.

        The library is read when the callable runs, so it sees the latest enrolments.
        """

        def identify(diarization: Diarization) -> dict[str, tuple[str, float]]:
            known = self.known()
            if not known or not diarization.fingerprints:
                return {}
            return assign_names(diarization.fingerprints, known, threshold)

        return identify
