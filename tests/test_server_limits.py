"""Bounds without models: job admission, a full disk, job progress, trusted hosts, the cached
deep health check (the app in-process with fakes; the real server is in test_server_hardening)."""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from saywho.audio.decode import write_wav
from saywho.jobs.runner import JobChunkStore, JobProgress
from saywho.server.app import create_app
from saywho.settings import Settings


class _FakeInference:
    """Counts ``run`` calls (the deep health check) and answers like the worker."""

    def __init__(self) -> None:
        self.runs = 0

    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...

    def status(self) -> dict:
        return {"state": "ready", "reason": None}

    async def run(self, kind: str, payload: dict, **_: object) -> dict:
        self.runs += 1
        return {"text": "The quick brown fox jumps over the lazy dog.", "speakers": ["Speaker_0"],
                "audio_s": 3.0, "latency_ms": 1.0}


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def wav(tmp_path: Path) -> bytes:
    write_wav(tmp_path / "a.wav", (0.1 * np.sin(np.arange(16_000) / 5)).astype(np.float32))
    return (tmp_path / "a.wav").read_bytes()


def _client(settings: Settings, transcriber=None, inference=None) -> TestClient:
    app = create_app(settings, inference=inference or _FakeInference())
    if transcriber is not None:
        app.state.jobs.runner.transcriber = transcriber
    return TestClient(app, base_url="http://localhost")


def test_job_admission_answers_429_with_retry_after(tmp_path: Path, wav: bytes) -> None:
    release = threading.Event()

    def blocking(job, chunks, hook):
        release.wait(10)
        raise RuntimeError("stopped by the test")

    settings = Settings(data_dir=tmp_path, max_queued_jobs=2, retry_after_s=9)
    with _client(settings, blocking) as client:
        try:
            for _ in range(2):
                assert client.post("/v1/jobs", files={"file": ("a.wav", wav)}).status_code == 202
            r = client.post("/v1/jobs", files={"file": ("a.wav", wav)})
            assert r.status_code == 429 and r.headers["Retry-After"] == "9"
            assert r.json()["error"]["code"] == "too_many_requests"
            assert len(list((tmp_path / "uploads").glob("job_*"))) == 2  # nothing kept of the refused one
        finally:
            release.set()


def test_disk_full_fails_the_job_with_the_reason_and_the_api_keeps_working(tmp_path: Path, wav: bytes,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(job, chunks: JobChunkStore, hook):
        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(np, "save", no_space)
        chunks.save_audio(type("Chunk", (), {"index": 0})(), np.zeros(16_000, np.float32))

    settings = Settings(data_dir=tmp_path)
    with _client(settings, full_disk) as client:
        store = client.app.state.jobs.store
        real_fail, failures = store.fail, []

        def fail_once_then_record(job_id, error):  # the database is full too, at first
            failures.append(job_id)
            if len(failures) == 1:
                raise sqlite3.OperationalError("database or disk is full")
            real_fail(job_id, error)

        monkeypatch.setattr(store, "fail", fail_once_then_record)
        client.app.state.jobs.runner.retry_delay_s = 0.1
        job_id = client.post("/v1/jobs", files={"file": ("a.wav", wav)}).json()["id"]
        job = wait_for(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["status"] == "failed" and j)
        assert job["error"]["code"] == "insufficient_storage" and "disk is full" in job["error"]["message"]
        assert len(failures) >= 2  # recorded once there was room again
        assert not list((tmp_path / "uploads").rglob("*.tmp")), "a partial chunk file was left behind"
        assert client.get("/v1/jobs").status_code == 200


def test_too_little_disk_space_refuses_a_job_up_front(tmp_path: Path, wav: bytes) -> None:
    settings = Settings(data_dir=tmp_path, min_free_bytes=1 << 60)
    with _client(settings, lambda *a: None) as client:
        r = client.post("/v1/jobs", files={"file": ("a.wav", wav)})
        assert r.status_code == 507 and r.json()["error"]["code"] == "insufficient_storage"
        assert client.get("/v1/jobs").json()["data"] == []


def test_job_progress_never_goes_back_and_reaches_100_only_at_the_end() -> None:
    seen: list[float] = []
    progress = JobProgress(lambda percent, step: seen.append(percent))
    progress("decode", completed=0, total=90)
    progress("decode", completed=90, total=90)
    progress("chunks", completed=0, total=3)
    for chunk in range(3):
        for step in ("asr", "segmentation", "embeddings", "clustering"):  # a chunk's own steps
            for done in (0, 5, 10):
                progress(step, completed=done, total=10)
        progress("chunks", completed=chunk + 1, total=3)
        assert seen[-1] < 100, f"100% after chunk {chunk + 1} of 3"
    progress("clustering", completed=0, total=1)  # the global speakers
    assert seen[-1] < 100
    progress("clustering", completed=1, total=1)
    progress.finish()
    assert seen == sorted(seen) and seen[-1] == 100
    assert seen.index(100) >= len(seen) - 2


def test_trusted_hosts_without_keys(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, trusted_hosts=["saywho.lan"]), inference=_FakeInference())
    for host, status in [("localhost:8000", 200), ("127.0.0.1", 200), ("[::1]:8000", 200),
                         ("saywho.lan:8000", 200), ("evil.example", 400), ("localhost.evil.example", 400)]:
        r = TestClient(app, base_url=f"http://{host}").get("/v1/models")
        assert r.status_code == status, host
        if status == 400:
            assert r.json()["error"]["code"] == "untrusted_host"


def test_deep_health_is_cached_and_behind_the_key(tmp_path: Path) -> None:
    inference = _FakeInference()
    app = create_app(Settings(data_dir=tmp_path, api_keys=["k"]), inference=inference)
    client = TestClient(app)
    assert client.get("/health/deep").status_code == 401
    for _ in range(10):
        r = client.get("/health/deep", headers={"Authorization": "Bearer k"})
        assert r.status_code == 200 and r.json()["status"] == "ok"
    assert inference.runs == 1  # ten callers, one real inference
    assert client.get("/health").status_code == 200


def test_the_language_list_is_whispers() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    from saywho.asr.languages import WHISPER_LANGUAGES

    assert set(WHISPER_LANGUAGES) == set(_LANGUAGE_CODES)


def test_a_job_started_too_often_is_failed_at_start_up_not_resumed(tmp_path: Path, wav: bytes) -> None:
    from saywho.jobs.runner import JobRunner
    from saywho.jobs.store import JobStore

    store = JobStore(tmp_path / "s.db", tmp_path / "uploads")
    audio = tmp_path / "a.wav"
    audio.write_bytes(wav)
    store.create("job_poison", filename="a.wav", audio_path=audio, size_bytes=len(wav), options={}, duration_s=1.0)
    for _ in range(3):  # three starts, each ended by the server dying under it
        store.mark_running("job_poison")
    ran = []
    runner = JobRunner(store, lambda *a: ran.append(a), max_attempts=3)
    assert runner.start() == ["job_poison"]
    try:
        job = wait_for(lambda: (j := store.get("job_poison")).done and j)
    finally:
        runner.stop()
    assert job.state == "failed" and job.error["code"] == "too_many_attempts" and not ran
