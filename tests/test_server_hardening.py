"""A hostile or unlucky client against the real server (``saywho serve`` on 127.0.0.1).

No model is loaded: every request here is answered before inference, or by the worker
failing on purpose. A bad-input corpus (more than 30 kinds) must get a correct 2xx or
an OpenAI-shaped 4xx, never a traceback, and leave the server healthy; a 6-hour FLAC
of silence is refused without the HTTP process growing; a chunked upload stops at the
limit; a job whose audio crashes the worker fails after N tries.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from saywho.audio.decode import write_wav

from .server_harness import RunningServer, start_server

UPLOAD_LIMIT = 20_000_000


def _wav(path: Path, seconds: float = 1.0) -> bytes:
    t = np.arange(int(16_000 * seconds)) / 16_000
    write_wav(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    return path.read_bytes()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("hostile")
    bomb = tmp / "six-hours.flac"  # 6 h of silence: ~4 MB on disk, 1.4 GB once decoded to float32
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
                    "-t", "21600", "-c:a", "flac", "-compression_level", "8", str(bomb)], check=True)
    wav = _wav(tmp / "tone.wav")
    return {"bomb": bomb.read_bytes(), "wav": wav, "truncated": wav[:30], "header_only": wav[:44]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(tmp_path_factory.mktemp("server"), max_upload_bytes=UPLOAD_LIMIT, test_faults=True,
                       restart_backoff_s=1, retry_after_s=1)
    try:
        srv.wait_ready(120)
        yield srv
    finally:
        srv.stop()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def assert_openai_error(r: httpx.Response, status: int | tuple[int, ...], code: str | None = None) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


# ---------------------------------------------------------------------------
# The decode bomb
# ---------------------------------------------------------------------------


def test_six_hour_flac_is_refused_without_growing_the_http_process(server: RunningServer, files) -> None:
    pid = server.process.pid
    with server.http() as http:
        http.get("/health")  # warm the request path
        before = rss_mib(pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mib(pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            r = http.post("/v1/audio/transcriptions", files={"file": ("six-hours.flac", files["bomb"])},
                          data={"model": "whisper-1"})
        finally:
            done.set()
            sampler.join()
    error = assert_openai_error(r, 400, "audio_too_long")
    assert "21600 s" in error["message"]
    assert peak[0] - before < 50, f"the HTTP process grew {peak[0] - before:.0f} MiB"


# ---------------------------------------------------------------------------
# The bad-input corpus: every answer a correct 2xx or an OpenAI-shaped 4xx
# ---------------------------------------------------------------------------


def _data_url(data: bytes) -> str:
    return "data:audio/wav;base64," + base64.b64encode(data).decode()


def corpus(files: dict[str, bytes]) -> list[tuple[str, str, str, dict[str, Any], int | tuple[int, ...], str | None]]:
    """(kind, method, path, httpx arguments, expected status, expected code)."""
    wav, bomb = files["wav"], files["bomb"]
    stt = "/v1/audio/transcriptions"

    def audio(data: bytes = wav, name: str = "a.wav", **fields: Any) -> dict[str, Any]:
        return {"files": {"file": (name, data)}, "data": {"model": "whisper-1", **fields}}

    return [
        ("decode bomb (transcription)", "POST", stt, audio(bomb, "b.flac"), 400, "audio_too_long"),
        ("decode bomb (translation)", "POST", "/v1/audio/translations", audio(bomb, "b.flac"), 400, "audio_too_long"),
        ("decode bomb (diarize-chunk)", "POST", "/v1/audio/diarize-chunk", audio(bomb, "b.flac"), 400,
         "audio_too_long"),
        ("decode bomb (job)", "POST", "/v1/jobs", audio(bomb, "b.flac"), 400, "audio_too_long"),
        ("decode bomb (known speaker reference: a field over 1 MB)", "POST", stt,
         audio(**{"known_speaker_names[]": "a", "known_speaker_references[]": _data_url(bomb)}), 400,
         "invalid_request"),
        ("empty file (transcription)", "POST", stt, audio(b""), 400, "invalid_audio"),
        ("empty file (job)", "POST", "/v1/jobs", audio(b""), 400, "invalid_audio"),
        ("not audio", "POST", stt, audio(b"hello, this is text" * 50, "a.txt"), 400, "invalid_audio"),
        ("truncated header", "POST", stt, audio(files["truncated"]), 400, "invalid_audio"),
        ("header without samples (job)", "POST", "/v1/jobs", audio(files["header_only"]), 400, "invalid_audio"),
        ("no file field", "POST", stt, {"data": {"model": "whisper-1"}}, 400, "invalid_value"),
        ("file sent as a text field", "POST", stt, {"data": {"model": "whisper-1", "file": "abc"}}, 400,
         "invalid_value"),
        ("no model", "POST", stt, {"files": {"file": ("a.wav", wav)}}, 400, "invalid_value"),
        ("unknown model", "POST", stt, audio(model="no-such-model"), 404, "model_not_found"),
        ("hub model not downloaded", "POST", stt, audio(model="nobody/nothing"), 404, "model_not_found"),
        ("hub model not downloaded (job)", "POST", "/v1/jobs", audio(model="nobody/nothing"), 404,
         "model_not_found"),
        ("unknown response_format", "POST", stt, audio(response_format="xml"), 400, "invalid_value"),
        ("diarized_json for a translation", "POST", "/v1/audio/translations",
         audio(response_format="diarized_json"), 400, "invalid_value"),
        ("temperature out of range", "POST", stt, audio(temperature="7"), 400, "invalid_value"),
        ("temperature not a number", "POST", stt, audio(temperature="nan"), 400, "invalid_value"),
        ("unknown language", "POST", stt, audio(language="klingon"), 400, "invalid_value"),
        ("unknown language (job)", "POST", "/v1/jobs", audio(language="xx"), 400, "invalid_value"),
        ("diarize=banana (job)", "POST", "/v1/jobs", audio(diarize="banana"), 400, "invalid_value"),
        ("a billion speakers", "POST", stt, audio(num_speakers="1000000000"), 400, "invalid_value"),
        ("a billion speakers (job)", "POST", "/v1/jobs", audio(num_speakers="1000000000"), 400, "invalid_value"),
        ("negative speakers", "POST", stt, audio(min_speakers="-1"), 400, "invalid_value"),
        ("min above max speakers", "POST", stt, audio(min_speakers="5", max_speakers="2"), 400, "invalid_value"),
        ("speakers not an integer", "POST", stt, audio(num_speakers="two"), 400, "invalid_value"),
        ("names without references", "POST", stt, audio(**{"known_speaker_names[]": "a"}), 400, "invalid_value"),
        ("reference not a data URL", "POST", stt,
         audio(**{"known_speaker_names[]": "a", "known_speaker_references[]": "http://x/a.wav"}), 400,
         "invalid_value"),
        ("unknown chunking_strategy", "POST", stt, audio(chunking_strategy="sometimes"), 400, "invalid_value"),
        ("unknown timestamp granularity", "POST", stt, audio(**{"timestamp_granularities[]": "char"}), 400,
         "invalid_value"),
        ("stream=maybe", "POST", stt, audio(stream="maybe"), 400, "invalid_value"),
        ("multipart without a boundary", "POST", stt,
         {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data"}}, 400, None),
        ("body over the limit by Content-Length", "POST", stt,
         {"content": b"x" * (UPLOAD_LIMIT + (2 << 20))}, 413, "payload_too_large"),
        ("speech: not JSON", "POST", "/v1/audio/speech", {"content": b"{nope"}, 400, None),
        ("speech: no input", "POST", "/v1/audio/speech", {"json": {"model": "tts-1", "voice": "alloy"}}, 400,
         None),
        ("speech: input too long", "POST", "/v1/audio/speech",
         {"json": {"model": "tts-1", "voice": "alloy", "input": "a" * 5000}}, 400, None),
        ("job not found", "GET", "/v1/jobs/job_nope", {}, 404, "not_found"),
        ("job list limit 0", "GET", "/v1/jobs?limit=0", {}, 400, "invalid_value"),
        ("job list limit not a number", "GET", "/v1/jobs?limit=abc", {}, 400, "invalid_value"),
        ("job list after an unknown id", "GET", "/v1/jobs?after=job_nope", {}, 404, "not_found"),
        ("result of an unknown job", "GET", "/v1/jobs/job_nope/result?format=xml", {}, (400, 404), None),
        ("audio of an unknown job", "GET", "/v1/jobs/job_nope/audio", {}, 404, "not_found"),
        ("delete an unknown job", "DELETE", "/v1/jobs/job_nope", {}, 404, "not_found"),
        ("name a speaker with bad JSON", "PUT", "/v1/jobs/job_nope/speakers/A", {"content": b"]["}, (400, 404),
         None),
        ("enrol a voice without a name", "POST", "/v1/speakers", {"files": {"file": ("a.wav", wav)}}, 400, None),
        ("unknown speaker", "GET", "/v1/speakers/spk_nope", {}, 404, None),
        ("speaker library owner as a path", "GET", "/v1/speakers?owner=../../etc/passwd", {}, 404, "not_found"),
        ("unknown speaker library owner", "DELETE", "/v1/speakers/spk_nope?owner=0123456789abcdef", {}, 404,
         "not_found"),
        ("speaker library owner too long", "GET", "/v1/speakers?owner=" + "a" * 300, {}, 400, "invalid_value"),
        ("unknown path", "GET", "/v1/nothing-here", {}, 404, "not_found"),
        ("wrong method", "PUT", "/v1/models", {}, 405, None),
        ("untrusted Host header (DNS rebinding)", "GET", "/v1/models", {"headers": {"Host": "evil.example"}}, 400,
         "untrusted_host"),
        ("models", "GET", "/v1/models", {}, 200, None),
        ("health", "GET", "/health", {}, 200, None),
    ]


def test_bad_input_corpus(server: RunningServer, files) -> None:
    cases = corpus(files)
    assert len({kind for kind, *_ in cases}) >= 30
    failures = []
    with server.http(timeout=60) as http:
        for kind, method, path, kwargs, status, code in cases:
            r = http.request(method, path, **kwargs)
            try:
                assert "Traceback" not in r.text
                if 200 <= r.status_code < 300 and status == 200:
                    continue
                assert_openai_error(r, status, code)
            except AssertionError as exc:
                failures.append(f"{kind}: {exc}")
        assert not failures, "\n".join(failures)
        assert http.get("/health").json()["status"] == "ok"
        assert http.get("/health/ready").status_code == 200
    assert "Traceback" not in server.log.read_text()


def test_chunked_upload_stops_at_the_limit(server: RunningServer) -> None:
    sent = [0]

    def body():  # a well-formed file part of 60 MiB, sent chunked (no Content-Length): the server must count
        yield (b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
               b"Content-Type: audio/wav\r\n\r\n")
        block = b"\1" * (1 << 20)
        for _ in range(60):
            sent[0] += len(block)
            yield block
        yield b"\r\n--x--\r\n"

    def written() -> int:  # bytes the HTTP process wrote (its spooled upload files included)
        io_stats = dict(line.split(": ") for line in Path(f"/proc/{server.process.pid}/io").read_text().splitlines())
        return int(io_stats["wchar"])

    before = written()
    with server.http(timeout=60) as http:
        r = http.post("/v1/audio/transcriptions", content=body(),
                      headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert_openai_error(r, 413, "payload_too_large")
    assert written() - before < UPLOAD_LIMIT + (4 << 20), "the upload was written past the limit"


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    _wav(wav)
    runs = [
        ["transcribe", str(tmp_path / "missing.wav")],
        ["transcribe", str(wav), "-o", "/proc/nope/x.txt"],
        ["transcribe", str(wav), "--threads", "-3"],
        ["transcribe", str(wav), "--num-speakers", "1000000000"],
    ]
    for args in runs:
        p = subprocess.run([sys.executable, "-m", "saywho", *args], capture_output=True, text=True, timeout=120)
        assert p.returncode != 0, args
        assert "Traceback" not in p.stderr + p.stdout, args
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("saywho:"), (args, p.stderr)


# ---------------------------------------------------------------------------
# A poison job: it crashes the worker every time, fails after N tries, the server goes on
# ---------------------------------------------------------------------------


def test_a_job_that_crashes_the_worker_fails_after_n_tries(server: RunningServer, files) -> None:
    with server.http(timeout=60) as http:
        r = http.post("/v1/jobs", files={"file": ("crash-worker.wav", files["wav"])},
                      data={"model": "tiny.en", "diarize": "false"})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 150
        while (job := http.get(f"/v1/jobs/{job_id}").json())["status"] not in ("failed", "finished"):
            assert time.monotonic() < deadline, job
            assert http.get("/health").status_code == 200  # the HTTP process never goes down
            time.sleep(0.5)
        assert job["status"] == "failed" and job["error"]["code"] == "worker_crashed", job
        assert job["attempts"] == 3
        assert "failed 3 times" in job["error"]["message"]
        assert server.process.poll() is None
        assert http.get("/v1/models").status_code == 200
        deadline = time.monotonic() + 90  # the worker comes back (after a backoff at most)
        while http.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline, http.get("/health/ready").text
            time.sleep(0.5)


# ---------------------------------------------------------------------------
# Keys own their jobs; an admin key sees all; /health/deep is behind the key
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(tmp_path_factory.mktemp("keyed"), api_keys=["alice-key", "bob-key"], admin_keys=["root-key"],
                       max_queued_jobs=2, retry_after_s=7)
    try:
        srv.wait_ready(120)
        yield srv
    finally:
        srv.stop()


def test_keys_isolate_jobs(keyed: RunningServer, files) -> None:
    def client(key: str) -> httpx.Client:
        return httpx.Client(base_url=keyed.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    with client("alice-key") as alice, client("bob-key") as bob, client("root-key") as root:
        job = alice.post("/v1/jobs", files={"file": ("a.wav", files["wav"])},
                         data={"model": "tiny.en", "diarize": "false"}).json()["id"]
        assert [j["id"] for j in alice.get("/v1/jobs").json()["data"]] == [job]
        assert bob.get("/v1/jobs").json()["data"] == []
        for method, path in [("GET", f"/v1/jobs/{job}"), ("GET", f"/v1/jobs/{job}/audio"),
                             ("GET", f"/v1/jobs/{job}/result"), ("GET", f"/v1/jobs/{job}/events"),
                             ("GET", f"/v1/jobs/{job}/corrections"), ("DELETE", f"/v1/jobs/{job}/corrections/last"),
                             ("DELETE", f"/v1/jobs/{job}")]:
            assert_openai_error(bob.request(method, path), 404, "not_found")
        assert_openai_error(bob.put(f"/v1/jobs/{job}/speakers/Speaker_0", json={"name": "x"}), 404, "not_found")
        assert_openai_error(bob.post(f"/v1/jobs/{job}/corrections", json={"op": "merge", "source": "Speaker_1",
                                                                           "target": "Speaker_0"}), 404, "not_found")
        assert alice.get(f"/v1/jobs/{job}/audio").content == files["wav"]
        assert [j["id"] for j in root.get("/v1/jobs").json()["data"]] == [job]
        assert root.get(f"/v1/jobs/{job}").status_code == 200
        # Admission: 2 jobs queued or running at most; the third gets 429 with Retry-After.
        second = alice.post("/v1/jobs", files={"file": ("a.wav", files["wav"])}, data={"diarize": "false"})
        third = alice.post("/v1/jobs", files={"file": ("a.wav", files["wav"])}, data={"diarize": "false"})
        if second.status_code == 202 and third.status_code != 202:
            assert_openai_error(third, 429, "too_many_requests")
            assert third.headers["Retry-After"] == "7"
        # /health/deep runs inference: behind the key; the cheap checks stay open.
        assert_openai_error(httpx.get(f"{keyed.url}/health/deep"), 401, "invalid_api_key")
        assert httpx.get(f"{keyed.url}/health/ready").status_code in (200, 503)
        assert httpx.get(f"{keyed.url}/health").status_code == 200
        # With keys set, the Host header is the key's business (no trusted-host check).
        assert alice.get("/v1/models", headers={"Host": "saywho.example"}).status_code == 200


def _transcript(seed: int) -> dict[str, Any]:
    """A saywho JSON result with one speaker "A" and its fingerprint (what POST /v1/speakers learns from)."""
    v = np.random.default_rng(seed).standard_normal(192)
    return {"duration": 20.0, "language": "en", "text": "", "segments": [],
            "speakers": [{"label": "A", "name": None, "speech_s": 10.0, "score": None}],
            "diarization": {"duration": 20.0, "speakers": ["A"], "turns": [], "exclusive_turns": [],
                            "fingerprints": {"A": (v / np.linalg.norm(v)).tolist()}}}


def test_keys_own_their_speakers_and_an_admin_sees_all(keyed: RunningServer) -> None:
    def client(key: str) -> httpx.Client:
        return httpx.Client(base_url=keyed.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def enrol(http: httpx.Client, name: str, seed: int, **params: str) -> dict[str, Any]:
        r = http.post("/v1/speakers", params=params, json={"name": name, "label": "A", "transcript_json": _transcript(seed)})
        assert r.status_code == 201, r.text
        return r.json()

    def listing(http: httpx.Client, **params: str) -> list[tuple[str, str]]:
        r = http.get("/v1/speakers", params=params)
        assert r.status_code == 200, r.text
        return sorted((s["owner"], s["name"]) for s in r.json()["data"])

    with client("alice-key") as alice, client("bob-key") as bob, client("root-key") as root:
        ada = enrol(alice, "Grace", 1)
        a = ada["owner"]
        bobs_grace, bo = enrol(bob, "Grace", 2), enrol(bob, "Bo", 3)
        b = bo["owner"]
        assert a != b and {a, b} <= {s["owner"] for s in (ada, bobs_grace, bo)}
        # A plain key sees its own speakers only; another key's are as if they did not exist.
        assert listing(alice) == [(a, "Grace")]
        assert listing(bob) == [(b, "Bo"), (b, "Grace")]
        for method, path in [("GET", f"/v1/speakers/{ada['id']}"), ("DELETE", f"/v1/speakers/{ada['id']}")]:
            assert_openai_error(bob.request(method, path), 404, "speaker_not_found")
        assert_openai_error(bob.patch(f"/v1/speakers/{ada['id']}", json={"name": "Mine"}), 404, "speaker_not_found")
        for owner in (a, "shared"):
            assert_openai_error(bob.get("/v1/speakers", params={"owner": owner}), 404, "not_found")
            assert_openai_error(bob.delete(f"/v1/speakers/{ada['id']}", params={"owner": owner}), 404, "not_found")
            r = bob.post("/v1/speakers", params={"owner": owner},
                         json={"name": "Intruder", "label": "A", "transcript_json": _transcript(9)})
            assert_openai_error(r, 404, "not_found")
        assert listing(bob, owner=b) == [(b, "Bo"), (b, "Grace")]
        assert listing(alice) == [(a, "Grace")]  # nothing of bob's landed there

        # The admin key sees every library, each speaker with its owner, and acts on any of them.
        shared = enrol(root, "Linus", 4)
        assert shared["owner"] == "shared"
        assert listing(root) == sorted([("shared", "Linus"), (a, "Grace"), (b, "Grace"), (b, "Bo")])
        assert listing(root, owner=a) == [(a, "Grace")]
        assert listing(root, owner="shared") == [("shared", "Linus")]
        assert listing(alice) == [(a, "Grace")] and listing(bob) == [(b, "Bo"), (b, "Grace")]
        got = root.get(f"/v1/speakers/{ada['id']}").json()
        assert (got["owner"], got["name"]) == (a, "Grace")
        assert_openai_error(root.get("/v1/speakers/Grace"), 409, "conflict")  # a name two keys use
        assert root.get("/v1/speakers/Grace", params={"owner": b}).json()["id"] == bobs_grace["id"]
        renamed = root.patch(f"/v1/speakers/{ada['id']}", json={"name": "Grace Hopper"})
        assert renamed.status_code == 200 and renamed.json()["owner"] == a, renamed.text
        assert listing(alice) == [(a, "Grace Hopper")]
        given = enrol(root, "Eve", 5, owner=b)
        assert given["owner"] == b and listing(bob) == [(b, "Bo"), (b, "Eve"), (b, "Grace")]
        gone = root.delete(f"/v1/speakers/{bo['id']}")
        assert gone.status_code == 200 and gone.json()["owner"] == b and gone.json()["deleted"] is True
        assert listing(bob) == [(b, "Eve"), (b, "Grace")]
        for owner in ("f" * 16, "../../etc/passwd", "speakers", a + "0"):
            assert_openai_error(root.get("/v1/speakers", params={"owner": owner}), 404, "not_found")
        # A plain key still manages its own.
        assert alice.delete(f"/v1/speakers/{ada['id']}").status_code == 200
        assert listing(alice) == [] and (a, "Grace Hopper") not in listing(root)


def test_a_truncated_files_job_shows_the_decoded_duration(server: RunningServer, tmp_path: Path) -> None:
    full = _wav(tmp_path / "ten.wav", seconds=10.0)
    truncated = full[: 44 + 3 * 16_000 * 2]  # the header still says 10 s
    with server.http(timeout=60) as http:
        r = http.post("/v1/jobs", files={"file": ("cut.wav", truncated)}, data={"model": "tiny.en", "diarize": "false"})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 60
        while abs((job := http.get(f"/v1/jobs/{job_id}").json())["duration"] - 3.0) > 0.1:
            assert time.monotonic() < deadline and job["status"] != "failed", job
            time.sleep(0.2)
        http.delete(f"/v1/jobs/{job_id}")


def test_a_damaged_database_is_one_line_naming_the_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "saywho.db").write_bytes(b"not a database " * 400)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAYWHO_")} | {"SAYWHO_DATA_DIR": str(data)}
    p = subprocess.run([sys.executable, "-m", "saywho", "serve", "--port", "1"], capture_output=True, text=True,
                       env=env, timeout=120)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert len(lines) == 1 and str(data / "saywho.db") in lines[0] and "move it aside" in lines[0], p.stderr
