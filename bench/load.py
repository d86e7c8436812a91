"""A short, bounded load run against ``saywho serve`` on loopback.

Starts its own server on 127.0.0.1 (or uses ``--url`` if it is a loopback address),
runs N clients (the official ``openai`` package) for T seconds or R requests each, and
prints requests/s, p50/p95 latency, 5xx answers, 429s (a full queue: expected under
burst), other errors, and the resident memory of the server and its worker before and
after the run.

    .venv/bin/python bench/load.py --clients 3 --seconds 60 --kind mixed
    .venv/bin/python bench/load.py --clients 12 --requests 1 --kind transcribe   # a burst
    .venv/bin/python bench/load.py --clients 1 --requests 200 --kind transcribe  # sequential
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import httpx

MAX_CLIENTS = 16
MAX_SECONDS = 600
KINDS = ("transcribe", "diarize", "speech")


def rss_mib(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_clip() -> bytes:
    from saywho.audio.decode import write_wav
    from saywho.evaluation.synth import SENTENCES, conversation

    conv = conversation([("flite:slt", SENTENCES[0]), ("flite:rms", SENTENCES[1])])
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.wav"
        write_wav(path, conv.samples)
        buf.write(path.read_bytes())
    return buf.getvalue()


def start_server(slots: int, queue: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="saywho-bench-"))
    env = dict(os.environ, SAYWHO_DATA_DIR=str(tmp / "data"), SAYWHO_INFERENCE_SLOTS=str(slots),
               SAYWHO_QUEUE_SIZE=str(queue), SAYWHO_PRELOAD=json.dumps(["tiny.en", "diarization", "en_US-joe-medium"]),
               SAYWHO_MODEL_TTL_S="-1", SAYWHO_LOG_LEVEL="warning")
    log = tmp / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "saywho", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


def wait_ready(url: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/health/ready", timeout=5)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server at {url} not ready after {timeout} s")


def one_request(client, kind: str, clip: bytes) -> None:
    if kind == "transcribe":
        r = client.audio.transcriptions.create(file=("clip.wav", clip), model="whisper-1")
        assert r.text
    elif kind == "diarize":
        r = client.audio.transcriptions.create(file=("clip.wav", clip), model="whisper-1",
                                               response_format="diarized_json")
        assert r.segments
    else:
        r = client.audio.speech.create(model="tts-1", voice="alloy", input="Short answer from the load test.",
                                       response_format="mp3")
        assert len(r.content) > 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=3, help=f"concurrent clients (1-{MAX_CLIENTS})")
    parser.add_argument("--seconds", type=float, default=60, help=f"run time (at most {MAX_SECONDS})")
    parser.add_argument("--requests", type=int, help="requests per client (instead of --seconds)")
    parser.add_argument("--kind", choices=(*KINDS, "mixed"), default="mixed")
    parser.add_argument("--slots", type=int, default=1, help="server inference slots")
    parser.add_argument("--queue", type=int, default=8, help="server queue size")
    parser.add_argument("--url", help="an already running loopback server (default: start one)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    if args.requests is not None and not 1 <= args.requests <= 1000:
        parser.error("--requests must be 1-1000")
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--clients must be 1-{MAX_CLIENTS} and --seconds at most {MAX_SECONDS}")
    if args.url and urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--url must be a loopback address")

    import openai

    proc = None
    url = args.url
    if url is None:
        proc, url, log = start_server(args.slots, args.queue)
        print(f"server: {url} (log {log})", file=sys.stderr)
    try:
        ready = wait_ready(url)
        server_pid = proc.pid if proc else None
        worker_pid = ready["worker"]["worker_pid"]
        clip = make_clip()
        kinds = KINDS if args.kind == "mixed" else (args.kind,)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=300)
        for kind in kinds:  # warm-up: every model loaded and every code path run once
            one_request(client, kind, clip)
        rss_before = (rss_mib(server_pid), rss_mib(worker_pid))

        latencies: list[float] = []
        errors: Counter[str] = Counter()
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds
        statuses: Counter[int] = Counter()

        def run_client(index: int) -> None:
            c = openai.OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=300)
            i = index
            while (i - index < args.requests) if args.requests else time.monotonic() < stop_at:
                kind = kinds[i % len(kinds)]
                i += 1
                started = time.perf_counter()
                try:
                    one_request(c, kind, clip)
                except Exception as exc:
                    status = getattr(exc, "status_code", 0) or 0
                    with lock:
                        statuses[status] += 1
                        if status != 429:
                            errors[f"{kind}: {type(exc).__name__} {status or ''}".strip()] += 1
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)

        samples: list[float] = []  # worker RSS every 5 s: growth shows as a rising second half

        server_samples: list[float] = []

        def sample_memory() -> None:
            while any(t.is_alive() for t in threads[:-1]):
                samples.append(round(rss_mib(worker_pid), 1))
                server_samples.append(round(rss_mib(server_pid), 1))
                time.sleep(5)

        started = time.monotonic()
        threads = [threading.Thread(target=run_client, args=(i,)) for i in range(args.clients)]
        threads.append(threading.Thread(target=sample_memory, daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        rss_after = (rss_mib(server_pid), rss_mib(worker_pid))
        final = httpx.get(f"{url}/health/ready", timeout=10).json()

        ordered = sorted(latencies)
        summary = {
            "clients": args.clients, "seconds": round(elapsed, 1), "kind": args.kind, "slots": args.slots,
            "requests": len(latencies), "requests_per_s": round(len(latencies) / elapsed, 2),
            "p50_s": round(statistics.median(ordered), 3) if ordered else None,
            "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3) if ordered else None,
            "errors": sum(errors.values()), "error_kinds": dict(errors),
            "server_errors_5xx": sum(n for s, n in statuses.items() if s >= 500),
            "rejected_429": statuses.get(429, 0),
            "rss_server_mib": [round(rss_before[0], 1), round(rss_after[0], 1)],
            "rss_server_max_mib": max(server_samples, default=None),
            "rss_worker_mib": [round(rss_before[1], 1), round(rss_after[1], 1)],
            "rss_worker_samples_mib": samples,
            "rss_worker_growth_second_half_mib": round(samples[-1] - samples[len(samples) // 2], 1) if samples else None,
            "worker_restarts": final["worker"]["restarts_total"], "status_after": final["status"],
        }
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            for key, value in summary.items():
                print(f"{key:>16}: {value}")
        return 0 if not errors and final["status"] == "ready" else 1
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
