"""Jobs: the store and its migrations, the runner (resume, cancel, failure) and the HTTP API,
with a scripted transcriber instead of the models."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from saywho import db
from saywho.errors import NotFoundError
from saywho.jobs.runner import JobProgress, JobRunner
from saywho.jobs.store import FAILED, FINISHED, MIGRATIONS, RUNNING, SCHEMA_VERSION, JobStore
from saywho.server.app import create_app
from saywho.settings import Settings

from .jobs_fakes import ScriptedTranscriber, write_tone_wav


class _NoInference:
    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out")


@pytest.fixture
def store(tmp_path) -> JobStore:
    return JobStore(tmp_path / "jobs.db", tmp_path / "uploads")


def add_job(store: JobStore, tmp_path, job_id: str = "job_a", duration: float = 20.0):
    folder = store.job_dir(job_id)
    folder.mkdir(parents=True)
    audio = folder / "audio.wav"
    write_tone_wav(audio, duration)
    return store.create(job_id, filename="talk.wav", audio_path=audio, size_bytes=audio.stat().st_size,
                        options={"model": "tiny.en"}, duration_s=duration)


# ---------------------------------------------------------------------------
# Store and migrations
# ---------------------------------------------------------------------------


def test_fresh_database_is_at_the_latest_schema(store) -> None:
    with db.opened(store.db_path) as conn:
        assert db.schema_version(conn) == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migration_from_version_1_keeps_jobs(tmp_path) -> None:
    path = tmp_path / "old.db"
    with db.opened(path) as conn:
        db.migrate(conn, MIGRATIONS[:1])
        conn.execute("INSERT INTO jobs (id, state, created_at, updated_at, filename, audio_path, size_bytes, options)"
                     " VALUES ('job_old', 'finished', 1, 1, 'a.wav', '/nowhere', 3, '{}')")
        assert db.schema_version(conn) == 1
    store = JobStore(path, tmp_path / "uploads")
    job = store.get("job_old")
    assert job.state == FINISHED and job.attempts == 0
    with db.opened(path) as conn:
        assert db.schema_version(conn) == SCHEMA_VERSION


def test_a_newer_database_is_refused(tmp_path) -> None:
    path = tmp_path / "new.db"
    with db.opened(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(db.DatabaseError, match="newer"):
        JobStore(path, tmp_path / "uploads")


def test_progress_is_monotonic_and_list_pages(store, tmp_path) -> None:
    for i in range(5):
        add_job(store, tmp_path, f"job_{i}", duration=1.0)
        time.sleep(0.002)
    store.set_progress("job_0", 40, "asr")
    store.set_progress("job_0", 10, "asr")
    assert store.get("job_0").progress == 40
    page, more = store.list(limit=2)
    assert [j.id for j in page] == ["job_4", "job_3"] and more
    page, more = store.list(limit=2, after="job_3")
    assert [j.id for j in page] == ["job_2", "job_1"] and more
    page, more = store.list(limit=2, after="job_1")
    assert [j.id for j in page] == ["job_0"] and not more


def test_delete_removes_rows_and_files(store, tmp_path) -> None:
    add_job(store, tmp_path)
    store.put_chunk("job_a", 0, {"x": 1})
    store.delete("job_a")
    assert not store.job_dir("job_a").exists()
    with db.opened(store.db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM job_chunks").fetchone()[0] == 0
    with pytest.raises(NotFoundError):
        store.get("job_a")


def test_orphan_upload_folders_are_swept(store, tmp_path) -> None:
    add_job(store, tmp_path)
    (store.uploads_dir / "job_ghost").mkdir()
    (store.uploads_dir / ".incoming").mkdir()
    store.sweep_orphans()
    assert sorted(p.name for p in store.uploads_dir.iterdir()) == ["job_a"]


def test_job_progress_maps_chunks_and_steps_monotonically() -> None:
    seen: list[float] = []
    chunk_reports: list[tuple[int, int]] = []
    progress = JobProgress(lambda p, step: seen.append(p), lambda d, t: chunk_reports.append((d, t)))
    progress("decode", completed=1, total=1)
    progress("chunks", completed=0, total=4)
    for done in range(1, 5):
        progress("asr", completed=1, total=1)
        progress("embeddings", completed=1, total=1)
        progress("chunks", completed=done, total=4)
    progress("clustering", completed=1, total=1)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(100.0)
    assert chunk_reports[-1] == (4, 4)


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------


def test_runner_finishes_a_job(store, tmp_path) -> None:
    add_job(store, tmp_path)
    fake = ScriptedTranscriber(chunk_s=5.0)
    runner = JobRunner(store, fake, progress_interval_s=0)
    runner.start()
    try:
        job = wait_for(lambda: (j := store.get("job_a")).done and j)
    finally:
        runner.stop()
    assert job.state == FINISHED and job.progress == 100 and (job.chunks_done, job.chunks_total) == (4, 4)
    assert "spreadsheet" in store.result("job_a").text


def test_a_stopped_runner_resumes_from_the_last_finished_chunk(store, tmp_path) -> None:
    add_job(store, tmp_path)
    first = ScriptedTranscriber(chunk_s=5.0, delay_s=0.3)
    runner = JobRunner(store, first, progress_interval_s=0)
    runner.start()
    wait_for(lambda: len(store.chunk_indices("job_a")) >= 2)
    runner.stop()  # like a shutdown: the job stays "running" in the store
    assert store.get("job_a").state == RUNNING
    done_before = set(store.chunk_indices("job_a"))
    assert 2 <= len(done_before) < 4

    second = ScriptedTranscriber(chunk_s=5.0)
    runner = JobRunner(store, second, progress_interval_s=0)
    assert runner.start() == ["job_a"]
    try:
        job = wait_for(lambda: (j := store.get("job_a")).done and j)
    finally:
        runner.stop()
    assert job.state == FINISHED and job.attempts == 2
    redone = {i for _, i in second.processed}
    assert redone == {0, 1, 2, 3} - done_before  # nothing finished was redone


def test_a_failing_job_records_its_error(store, tmp_path) -> None:
    add_job(store, tmp_path)
    runner = JobRunner(store, ScriptedTranscriber(fail_at=1), progress_interval_s=0)
    runner.start()
    try:
        job = wait_for(lambda: (j := store.get("job_a")).done and j)
    finally:
        runner.stop()
    assert job.state == FAILED and "broke on purpose" in job.error["message"]


# ---------------------------------------------------------------------------
# HTTP API (in process)
# ---------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", db_path=tmp_path / "data" / "server.db")


def make_client(settings: Settings, transcriber) -> TestClient:
    app = create_app(settings, inference=_NoInference())
    app.state.jobs.runner.transcriber = transcriber
    app.state.jobs.runner.progress_interval_s = 0
    return TestClient(app, base_url="http://localhost")


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "talk.wav"
    write_tone_wav(path, 20.0)
    return path


def submit(client: TestClient, path, **fields):
    with open(path, "rb") as f:
        return client.post("/v1/jobs", files={"file": (path.name, f, "audio/wav")}, data=fields)


def sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_submit_stream_and_fetch_every_format(settings, wav) -> None:
    with make_client(settings, ScriptedTranscriber(chunk_s=5.0, delay_s=0.15)) as client:
        r = submit(client, wav, num_speakers="3")
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] in ("queued", "running") and job["duration"] == pytest.approx(20.0, abs=0.05)
        assert job["options"]["num_speakers"] == 3

        events = sse(client.get(f"/v1/jobs/{job['id']}/events").text)
        kinds = [k for k, _ in events]
        assert kinds[-1] == "finished" and "failed" not in kinds
        percents = [d["progress"] for k, d in events if k == "progress"]
        assert percents == sorted(percents) and percents[-1] == 100.0 and len(percents) >= 3
        assert [d["completed"] for k, d in events if k == "chunk"] == [1, 2, 3, 4]

        state = client.get(f"/v1/jobs/{job['id']}").json()
        assert state["status"] == "finished" and state["chunks"] == {"completed": 4, "total": 4}
        for fmt in ("json", "txt", "srt", "vtt", "rttm", "diarized_json"):
            r = client.get(f"/v1/jobs/{job['id']}/result", params={"format": fmt})
            assert r.status_code == 200, (fmt, r.text)
        assert "Speaker_2" in client.get(f"/v1/jobs/{job['id']}/result?format=rttm").text
        r = client.get(f"/v1/jobs/{job['id']}/result?format=srt&download=true")
        assert r.headers["content-disposition"] == 'attachment; filename="talk.srt"'
        bad = client.get(f"/v1/jobs/{job['id']}/result?format=docx")
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "format"


def test_rename_applies_to_every_export(settings, wav) -> None:
    with make_client(settings, ScriptedTranscriber(delay_s=0)) as client:
        job_id = submit(client, wav).json()["id"]
        wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "finished")
        r = client.put(f"/v1/jobs/{job_id}/speakers/Speaker_1", json={"name": "Ada Lovelace"})
        assert r.status_code == 200, r.text
        assert "[Ada Lovelace] I think the numbers" in client.get(f"/v1/jobs/{job_id}/result?format=srt").text
        assert "Ada Lovelace" in client.get(f"/v1/jobs/{job_id}/result?format=vtt").text
        assert "Ada Lovelace" in client.get(f"/v1/jobs/{job_id}/result?format=txt").text
        speakers = {s["label"]: s["display"] for s in client.get(f"/v1/jobs/{job_id}/result").json()["speakers"]}
        assert speakers["Speaker_1"] == "Ada Lovelace" and speakers["Speaker_0"] == "Speaker_0"
        diarized = client.get(f"/v1/jobs/{job_id}/result?format=diarized_json").json()
        assert "Ada Lovelace" in {s["speaker"] for s in diarized["segments"]}
        assert client.get(f"/v1/jobs/{job_id}").json()["speaker_names"] == {"Speaker_1": "Ada Lovelace"}
        # blank forgets the name; an unknown label is a 404
        client.put(f"/v1/jobs/{job_id}/speakers/Speaker_1", json={"name": ""})
        assert "Ada" not in client.get(f"/v1/jobs/{job_id}/result?format=srt").text
        assert client.put(f"/v1/jobs/{job_id}/speakers/Nobody", json={"name": "x"}).status_code == 404


def test_rename_can_enrol_the_voice(settings, wav) -> None:
    with make_client(settings, ScriptedTranscriber(delay_s=0)) as client:
        job_id = submit(client, wav).json()["id"]
        wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "finished")
        r = client.put(f"/v1/jobs/{job_id}/speakers/Speaker_0", json={"name": "Grace", "enrol": True})
        assert r.status_code == 200, r.text
        assert r.json()["enrolled"]["name"] == "Grace"
        assert [s["name"] for s in client.get("/v1/speakers").json()["data"]] == ["Grace"]


def test_an_admin_enrolling_from_a_keys_job_teaches_that_keys_library(settings, wav) -> None:
    keyed = settings.model_copy(update={"api_keys": ["alice-key", "bob-key"], "admin_keys": ["root-key"]})
    with make_client(keyed, ScriptedTranscriber(delay_s=0)) as client:
        alice, bob, root = ({"Authorization": f"Bearer {k}"} for k in ("alice-key", "bob-key", "root-key"))
        job_id = client.post("/v1/jobs", files={"file": (wav.name, wav.read_bytes())}, headers=alice).json()["id"]
        wait_for(lambda: client.get(f"/v1/jobs/{job_id}", headers=alice).json()["status"] == "finished")
        r = client.put(f"/v1/jobs/{job_id}/speakers/Speaker_0", json={"name": "Grace", "enrol": True}, headers=root)
        assert r.status_code == 200, r.text
        mine = client.get("/v1/speakers", headers=alice).json()["data"]
        assert [s["name"] for s in mine] == ["Grace"] and mine[0]["owner"] != "shared"
        assert client.get("/v1/speakers", headers=bob).json()["data"] == []
        assert client.get("/v1/speakers", headers=root, params={"owner": "shared"}).json()["data"] == []


def test_audio_supports_range_requests(settings, wav) -> None:
    with make_client(settings, ScriptedTranscriber(delay_s=0)) as client:
        job_id = submit(client, wav).json()["id"]
        full = client.get(f"/v1/jobs/{job_id}/audio")
        assert full.status_code == 200 and full.content == wav.read_bytes()
        assert full.headers["content-type"].startswith("audio/")
        part = client.get(f"/v1/jobs/{job_id}/audio", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == wav.read_bytes()[100:200]


def test_failed_job_reports_its_error(settings, wav) -> None:
    with make_client(settings, ScriptedTranscriber(fail_at=2, delay_s=0.05)) as client:
        job_id = submit(client, wav).json()["id"]
        events = sse(client.get(f"/v1/jobs/{job_id}/events").text)
        assert events[-1][0] == "failed"
        assert "broke on purpose" in events[-1][1]["error"]["message"]
        state = client.get(f"/v1/jobs/{job_id}").json()
        assert state["status"] == "failed" and "broke on purpose" in state["error"]["message"]
        r = client.get(f"/v1/jobs/{job_id}/result")
        assert r.status_code == 409 and r.json()["error"]["code"] == "job_not_finished"


def uploads(settings: Settings) -> list[str]:
    root = settings.data_dir / "uploads"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("payload", [b"this is not audio at all\n" * 40, b"", b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_bad_upload_leaves_no_job_and_no_file(settings, tmp_path, payload) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_bytes(payload)
    with make_client(settings, ScriptedTranscriber()) as client:
        r = submit(client, bad)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] in ("invalid_audio", "invalid_value")
        assert ".incoming" not in error["message"] and error["param"] == "file"
        assert client.get("/v1/jobs").json()["data"] == []
        assert uploads(settings) == []


def test_missing_file_and_unknown_job(settings) -> None:
    with make_client(settings, ScriptedTranscriber()) as client:
        r = client.post("/v1/jobs", data={"model": "whisper-1"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "file"
        for path in ("/v1/jobs/job_nope", "/v1/jobs/job_nope/events", "/v1/jobs/job_nope/audio",
                     "/v1/jobs/job_nope/result"):
            r = client.get(path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
        assert client.delete("/v1/jobs/job_nope").status_code == 404


def test_delete_cancels_a_running_job_and_removes_its_files(settings, wav) -> None:
    gate = threading.Event()
    with make_client(settings, ScriptedTranscriber(gate=gate, delay_s=0.2)) as client:
        job_id = submit(client, wav).json()["id"]
        wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "running")
        gate.set()
        r = client.delete(f"/v1/jobs/{job_id}")
        assert r.status_code == 200 and r.json()["deleted"] is True
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404
        assert uploads(settings) == []
        with sqlite3.connect(settings.db_path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM job_chunks").fetchone()[0] == 0


def test_dashboard_is_served(settings) -> None:
    with make_client(settings, ScriptedTranscriber()) as client:
        page = client.get("/")
        assert page.status_code == 200 and "<title>saywho" in page.text
        assert "http://" not in page.text and "https://" not in page.text  # no CDN
        for name in ("app.js", "app.css"):
            r = client.get(f"/static/{name}")
            assert r.status_code == 200 and "https://" not in r.text
        assert client.get("/static/../app.py").status_code == 404
