"""Self-healing through HTTP: the worker crashes, hangs, is killed, reports a device error.

One server with test faults enabled (``X-Saywho-Fault`` header) and the real restart
budget (3 per 30 minutes). The steps run in order in one test: each uses up a restart.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from .conftest import require_tools
from .server_harness import RunningServer, start_server

pytestmark = pytest.mark.slow

DEADLINE_S = 6.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    require_tools("flite")
    from saywho.evaluation.synth import SENTENCES, conversation

    return conversation([("flite:slt", SENTENCES[2])]).write(tmp_path_factory.mktemp("clip") / "c.wav").read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(
        tmp_path_factory.mktemp("faults"), test_faults=True, preload=["tiny.en"],
        request_deadline_s=DEADLINE_S, deadline_per_audio_s=0.5, retry_after_s=2, restart_budget=3,
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def _transcribe(server: RunningServer, clip: bytes, fault: str | None = None) -> httpx.Response:
    headers = {"X-Saywho-Fault": fault} if fault else None
    with server.http(timeout=120) as http:
        return http.post("/v1/audio/transcriptions", files={"file": ("c.wav", clip)},
                         data={"model": "whisper-1"}, headers=headers)


def _assert_503(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "backend_unavailable"


def _recovers(server: RunningServer, clip: bytes) -> float:
    """The next request succeeds (it waits for the restarted worker); returns its latency."""
    started = time.monotonic()
    client = server.client()
    text = client.audio.transcriptions.create(file=("c.wav", clip), model="whisper-1", response_format="text")
    assert "trains" in text.lower() or "prices" in text.lower()
    return time.monotonic() - started


def test_crash_hang_kill_and_restart_budget(server: RunningServer, clip: bytes) -> None:
    pid0 = server.ready()["worker"]["worker_pid"]
    assert _recovers(server, clip) < 30

    # 1. The worker dies mid-request: 503 + Retry-After, then the next request succeeds within seconds.
    _assert_503(_transcribe(server, clip, "crash"))
    assert _recovers(server, clip) < 30
    pid1 = server.ready()["worker"]["worker_pid"]
    assert pid1 != pid0

    # 2. The worker hangs: 503 once the deadline passes (not before), then recovery.
    started = time.monotonic()
    _assert_503(_transcribe(server, clip, "hang"))
    assert DEADLINE_S <= time.monotonic() - started < DEADLINE_S + 20
    assert _recovers(server, clip) < 30

    # 3. The worker is killed from outside while it works: 503 at once (no waiting for the deadline).
    pid2 = server.ready()["worker"]["worker_pid"]
    result: dict[str, httpx.Response] = {}
    request = threading.Thread(target=lambda: result.setdefault("r", _transcribe(server, clip, "hang")))
    started = time.monotonic()
    request.start()
    time.sleep(1.0)
    os.kill(pid2, signal.SIGKILL)
    request.join(60)
    _assert_503(result["r"])
    assert time.monotonic() - started < DEADLINE_S
    assert _recovers(server, clip) < 30
    ready = server.ready()
    assert ready["worker"]["restarts_in_window"] == 3 and ready["status"] == "ready"

    # 4. A device error with the budget spent: the server stays up, degraded, and says why.
    _assert_503(_transcribe(server, clip, "device"))
    with server.http() as http:
        assert http.get("/health").status_code == 200
        r = http.get("/health/ready")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "degraded"
        assert "restart budget exhausted" in body["worker"]["reason"]
        assert "device error" in body["worker"]["reason"]
        assert http.get("/v1/models").status_code == 200
    r = _transcribe(server, clip)
    _assert_503(r)
    assert 1 <= int(r.headers["Retry-After"]) <= 5  # the backoff, not half an hour
    assert r.json()["error"]["message"].count("restart budget") == 1
    # 5. Past the budget it does not give up: after the backoff the worker is back.
    deadline = time.monotonic() + 60
    while server.ready()["status"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _recovers(server, clip) < 30
    assert server.process.poll() is None
