"""SQLite connections and versioned schema migrations for the server's database.

One file (``settings.db_path``) holds the jobs, their per-chunk results and speaker
names, and (when the server runs) the speaker library. ``PRAGMA user_version`` is the
schema version of the tables this module migrates (``MIGRATIONS`` in ``jobs.py``);
other owners of tables in the same file keep their own version elsewhere (the speaker
library uses its ``speaker_schema`` table).

Connections are short-lived and per call (WAL, busy timeout, foreign keys on), so
several threads and processes can share one file; writes go in ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from saywho.errors import SaywhoError

if TYPE_CHECKING:
    import os

logger = logging.getLogger(__name__)

# One migration: SQL statements, or a function given the connection (inside the transaction).
Migration = Sequence[str] | Callable[[sqlite3.Connection], None]

BUSY_TIMEOUT_S = 30.0
RECOVERY_HINT = ("restore it from a backup, or move it aside (keeping it) so that saywho starts a new one, "
                 "or point SAYWHO_DB_PATH elsewhere")


class DatabaseError(SaywhoError):
    """The database cannot be opened, is newer than this saywho, or is damaged."""

    status_code = 500
    code = "database_error"


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open the database {path}: {exc}; {RECOVERY_HINT}") from None
    return conn


def use_wal(conn: sqlite3.Connection, timeout_s: float = BUSY_TIMEOUT_S) -> None:
    """Put the file in WAL mode (it stays so). While another connection switches the same
    new file, SQLite answers "database is locked" at once instead of waiting out the busy
    timeout (8 threads creating one speaker library: 3-4 times in 150), so that answer is
    retried until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Bring the file to ``len(migrations)``; ``migrations[i]`` goes from version i to i + 1.

    Each step runs in its own transaction together with its ``user_version`` bump, so
    a crash leaves the file at a whole version. A file newer than this code is refused.
    Returns the version the file is at.
    """
    target = len(migrations)
    try:
        with transaction(conn):
            current = schema_version(conn)
    except sqlite3.DatabaseError as exc:  # damaged: name the file and the way out, in one line
        name = conn.execute("PRAGMA database_list").fetchone()[2] if not isinstance(exc, sqlite3.OperationalError) \
            else "the database"
        raise DatabaseError(f"cannot read {name}: {exc}; {RECOVERY_HINT}") from None
    if current > target:
        raise DatabaseError(
            f"the database is at schema version {current}, newer than this saywho knows ({target}); "
            "upgrade saywho or point SAYWHO_DB_PATH elsewhere"
        )
    for version in range(current, target):
        step = migrations[version]
        with transaction(conn):
            if schema_version(conn) != version:  # another process migrated meanwhile
                continue
            if callable(step):
                step(conn)
            else:
                for statement in step:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        logger.info("database migrated to schema version %d", version + 1)
    return target


@contextlib.contextmanager
def opened(path: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    """A connection closed on exit (for per-call use)."""
    conn = connect(path)
    try:
        yield conn
    finally:
        conn.close()
