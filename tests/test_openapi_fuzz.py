"""Schemathesis (every check) against the live server, from its own OpenAPI document.

A bounded number of examples per operation keeps it to well under a minute; the
configuration (``tests/fuzz/schemathesis.toml``) says why 400 answers schema-valid audio
requests (random bytes are not audio). Zero failures of any kind.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .server_harness import start_server

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 10
CONFIG_DIR = Path(__file__).parent / "fuzz"


def _schemathesis() -> str:
    pytest.importorskip("schemathesis")
    import sys

    exe = Path(sys.executable).with_name("schemathesis")
    return str(exe) if exe.exists() else shutil.which("schemathesis") or pytest.skip("no schemathesis CLI")


def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    exe = _schemathesis()
    # /health/deep runs real inference: answered from one warm-up probe, so that schemathesis's
    # 10 s request timeout does not race a cold model load on shared cores.
    server = start_server(tmp_path, max_upload_bytes=2_000_000, deep_health_cache_s=3600)
    try:
        server.wait_ready(120)
        with server.http(timeout=300) as http:
            assert http.get("/health/deep").status_code == 200
        run = subprocess.run(
            [exe, "run", f"{server.url}/openapi.json", "--checks", "all", "--max-examples", str(MAX_EXAMPLES),
             "--seed", "14", "--no-color"],
            cwd=CONFIG_DIR, capture_output=True, text=True, timeout=600,
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "Traceback" not in server.log.read_text()
        assert server.process.poll() is None
    finally:
        server.stop()
