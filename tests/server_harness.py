"""Start the real ``saywho serve`` in a subprocess on 127.0.0.1 and wait until it is ready."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path, api_key: str | None) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.api_key = api_key

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> Any:
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 300)
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.api_key or "unused", **kwargs)

    def http(self, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop("timeout", 300), **kwargs)

    def ready(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/health/ready", timeout=10).json()

    def wait_ready(self, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                r = httpx.get(f"{self.url}/health/ready", timeout=5)
                if r.status_code == 200:
                    return r.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(tmp: Path, *, api_key: str | None = None, **settings: Any) -> RunningServer:
    """``python -m saywho serve`` with ``SAYWHO_*`` settings from keyword arguments."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAYWHO_")}
    env["SAYWHO_DATA_DIR"] = str(tmp / "data")
    env["SAYWHO_CACHE_DIR"] = os.environ.get("SAYWHO_CACHE_DIR", str(Path.home() / ".cache" / "saywho"))
    if api_key:
        settings["api_keys"] = [api_key]
    for key, value in settings.items():
        env[f"SAYWHO_{key.upper()}"] = json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)
    log = tmp / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "saywho", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    return RunningServer(process, port, log, api_key)
