"""The server database's connections (saywho.db): real SQLite files."""

from __future__ import annotations

import threading

from saywho import db


def test_concurrent_connections_to_a_new_file_all_open_in_wal(tmp_path):
    """Connections that open one new file at once all switch it to WAL: SQLite answers a
    switch racing another one with "database is locked" at once, and ``use_wal`` retries."""
    errors: list[Exception] = []

    def open_it(path) -> None:
        try:
            conn = db.connect(path)
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            conn.close()
        except Exception as exc:
            errors.append(exc)

    for n in range(40):
        threads = [threading.Thread(target=open_it, args=(tmp_path / f"jobs{n}.db",)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
