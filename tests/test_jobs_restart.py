"""A server killed mid-job (SIGKILL) resumes the job at its next start from the last
finished chunk, and the result equals an uninterrupted run's. Real models, real server
process (``saywho serve``), a synthesised three-voice recording cut into 8 s chunks."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``saywho serve`` in its own process group, so SIGKILL takes the worker down too."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30)  # one client: polling stays cheap

    def start(self) -> Server:
        env = dict(os.environ, SAYWHO_JOB_CHUNK_S="8", SAYWHO_CPU_THREADS="2", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "saywho", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=env, stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if self.http.get("/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("the server did not start:\n" + self.log.read_text()[-3000:])

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        self.http.close()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def job(self, job_id: str) -> dict:
        r = self.http.get(f"/v1/jobs/{job_id}")
        r.raise_for_status()
        return r.json()

    def wait(self, job_id: str, predicate, timeout: float = 300.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            assert job["status"] != "failed", job["error"]
            if predicate(job):
                return job
            time.sleep(0.25)
        raise AssertionError(f"job {job_id} stuck: {self.job(job_id)}\n" + self.log.read_text()[-3000:])

    def submit(self, path: Path) -> str:
        with path.open("rb") as f:
            r = self.http.post("/v1/jobs", files={"file": (path.name, f, "audio/wav")},
                           data={"model": "tiny.en"})
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def result(self, job_id: str) -> dict:
        r = self.http.get(f"/v1/jobs/{job_id}/result", params={"format": "json"})
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    from .conftest import require_tools

    require_tools("flite")
    from saywho.evaluation.synth import conversation, demo_lines

    conv = conversation(demo_lines(["flite:slt", "flite:awb", "flite:rms"], 6), gap_s=0.6)
    assert conv.duration > 20  # at least three 8 s chunks
    return conv.write(tmp_path_factory.mktemp("rec") / "meeting.wav")


def chunk_times(db_path: Path, job_id: str) -> dict[int, float]:
    with sqlite3.connect(db_path) as conn:
        return dict(conn.execute("SELECT chunk, created_at FROM job_chunks WHERE job_id = ?", (job_id,)))


def sse_events(url: str) -> list[tuple[str, dict]]:
    events = []
    with httpx.stream("GET", url, timeout=300) as r:
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                events.append((kind, json.loads(line[6:])))
                if kind in ("finished", "failed", "cancelled"):
                    break
    return events


def test_a_killed_server_resumes_and_loses_nothing(tmp_path, recording) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "server.log"
    server = Server(data_dir, log).start()
    try:
        job_id = server.submit(recording)
        job = server.wait(job_id, lambda j: j["chunks"]["completed"] >= 1)
        total = job["chunks"]["total"]
        assert total >= 3 and job["chunks"]["completed"] < total, job
        server.kill()  # mid-job, no chance to clean up
        before = chunk_times(data_dir / "saywho.db", job_id)
        assert 1 <= len(before) < total
        progress_at_kill = job["progress"]

        server = Server(data_dir, log).start()
        job = server.job(job_id)
        assert job["status"] in ("queued", "running") and job["progress"] >= progress_at_kill
        events = sse_events(f"{server.url}/v1/jobs/{job_id}/events")
        assert events[-1][0] == "finished"
        percents = [d["progress"] for k, d in events if k == "progress"]
        assert percents == sorted(percents) and percents[-1] == 100.0

        job = server.job(job_id)
        assert job["status"] == "finished" and job["attempts"] == 2
        after = chunk_times(data_dir / "saywho.db", job_id)
        assert sorted(after) == list(range(total))
        assert {i: after[i] for i in before} == before  # finished chunks were not redone
        resumed = server.result(job_id)

        # The same file, uninterrupted, on the same server.
        again = server.submit(recording)
        server.wait(again, lambda j: j["status"] == "finished")
        uninterrupted = server.result(again)
        assert resumed["text"] == uninterrupted["text"]
        assert resumed["segments"] == uninterrupted["segments"]
        assert resumed["speakers"] == uninterrupted["speakers"]
        assert resumed == uninterrupted
        assert "budget" in resumed["text"] and resumed["speakers"]
        assert not list((data_dir / "uploads" / job_id / "chunks").glob("*.npy"))  # chunk audio dropped
    finally:
        server.stop()
