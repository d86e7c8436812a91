"""Schemathesis (every check) against the live server, from its own OpenAPI document.

Twice: with no key (the default), and with API keys set, the client sending a valid
key, so that the document declaring the bearer scheme (and ``ignored_auth``: every
protected route refuses a request without the key) is fuzzed too. A bounded number of
examples per operation keeps each run short; the configuration
(``tests/fuzz/schemathesis.toml``) says why 400 answers schema-valid audio requests
(random bytes are not audio). Zero failures of any kind.

``/health/deep`` runs a real TTS -> ASR -> diarization round trip; in the keyless run it
is asked once before the run (a cold probe can take longer than Schemathesis waits for
an answer on a busy machine) and cached for the rest of it (``deep_health_cache_s``).
The keyed run leaves it out, to load no model: that its key is required is asserted
directly (and in ``test_server_hardening.py``); its schema is the keyless run's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from .server_harness import RunningServer, start_server

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 10
KEYED_MAX_EXAMPLES = 5  # the keyed run adds auth to the same routes: fewer examples keep it short
CONFIG_DIR = Path(__file__).parent / "fuzz"


def _schemathesis() -> str:
    pytest.importorskip("schemathesis")
    import sys

    exe = Path(sys.executable).with_name("schemathesis")
    return str(exe) if exe.exists() else shutil.which("schemathesis") or pytest.skip("no schemathesis CLI")


def _fuzz(server: RunningServer, exe: str, *, max_examples: int, key: str | None = None) -> None:
    server.wait_ready(120)
    command = [exe, "run", f"{server.url}/openapi.json", "--checks", "all", "--max-examples", str(max_examples),
               "--seed", "14", "--no-color"]
    if key:
        command += ["--header", f"Authorization: Bearer {key}", "--exclude-path", "/health/deep"]
    else:  # /health/deep runs real inference: answered from one warm-up probe (a cold model
        # load on shared cores can outlast schemathesis's 10 s request timeout)
        warm = httpx.get(f"{server.url}/health/deep", timeout=300)
        assert warm.status_code == 200, warm.text
    run = subprocess.run(command, cwd=CONFIG_DIR, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Traceback" not in server.log.read_text()
    assert server.process.poll() is None


def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    exe = _schemathesis()
    server = start_server(tmp_path, max_upload_bytes=2_000_000, deep_health_cache_s=3600)
    try:
        _fuzz(server, exe, max_examples=MAX_EXAMPLES)
    finally:
        server.stop()


def test_schemathesis_with_api_keys_finds_nothing(tmp_path: Path) -> None:
    exe = _schemathesis()
    server = start_server(tmp_path, max_upload_bytes=2_000_000,
                          api_keys=["fuzz-key", "other-key"], admin_keys=["fuzz-admin"])
    try:
        server.wait_ready(120)
        spec = httpx.get(f"{server.url}/openapi.json", timeout=60).json()
        assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert spec["paths"]["/v1/speakers"]["get"]["security"] == [{"bearer": []}]
        assert spec["paths"]["/health/deep"]["get"]["security"] == [{"bearer": []}]
        for headers in ({}, {"Authorization": "Bearer wrong-key"}):
            r = httpx.get(f"{server.url}/health/deep", headers=headers, timeout=60)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", r.text
        _fuzz(server, exe, max_examples=KEYED_MAX_EXAMPLES, key="fuzz-key")
    finally:
        server.stop()
