"""Job progress on the real server (``saywho serve`` on 127.0.0.1, the real models).

A 30 s recording cut into chunks of about 8 s (``SAYWHO_JOB_CHUNK_S``) runs as a
background job in the supervised worker; its ``/v1/jobs/{id}/events`` stream is read
from the moment the job is accepted. The progress it reports never goes backwards,
moves between chunks, and reaches 100 only with the last events (issue 14: progress
jumped to 100 after the first of three chunks and stayed there).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .server_harness import start_server

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "meeting.flac"
CHUNK_S = 8.0


def read_events(lines) -> list[tuple[str, dict]]:
    """Server-sent events as (event name, data), until the stream ends."""
    events, name, data = [], None, []
    for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line.split(":", 1)[1].strip())
        elif not line and name is not None:
            events.append((name, json.loads("\n".join(data))))
            name, data = None, []
    return events


def test_a_multi_chunk_jobs_progress_never_goes_back_and_reaches_100_only_at_the_end(tmp_path: Path) -> None:
    server = start_server(tmp_path, job_chunk_s=CHUNK_S, model_ttl_s=-1)
    try:
        server.wait_ready(180)
        with server.http(timeout=600) as http:
            r = http.post("/v1/jobs", files={"file": (SAMPLE.name, SAMPLE.read_bytes())}, data={"model": "tiny.en"})
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            with http.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
                assert stream.status_code == 200
                events = read_events(stream.iter_lines())
            job = http.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "finished", job
        assert job["chunks"]["total"] >= 3, job  # a real multi-chunk job

        names = [name for name, _ in events]
        assert names[-1] == "finished", names
        progress = [data["progress"] for name, data in events if name == "progress"]
        assert progress == sorted(progress), progress  # never backwards
        assert progress[-1] == 100.0 and 100.0 not in progress[:-1], progress
        # 100 is reported only with the last events: the final progress, then "finished".
        assert names[names.index("progress", len(names) - 2):] == ["progress", "finished"], names
        # It moved while the chunks ran, not in one jump: a figure below 100 after each chunk but the last.
        chunks = [(i, data["completed"]) for i, (name, data) in enumerate(events) if name == "chunk"]
        assert len({p for p in progress if 0 < p < 100}) >= 3, progress
        for index, completed in chunks:
            after = [d["progress"] for n, d in events[index + 1:] if n == "progress"]
            if completed < job["chunks"]["total"] and after:
                assert after[0] < 100.0, (completed, events)
        assert any(completed < job["chunks"]["total"] for _, completed in chunks), events
    finally:
        server.stop()
    assert "Traceback" not in server.log.read_text()
