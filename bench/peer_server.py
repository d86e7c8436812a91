"""saywho serve against a peer OpenAI-compatible STT server (issue 7, item 4).

    .venv/bin/python bench/peer_server.py [--peer-venv /tmp/peer-venv] [--clients 2] [--seconds 60]

The peer is ``faster-whisper-server`` (PyPI, 0.0.3) in its own virtual environment,
never in saywho's (``speaches`` is not on PyPI, so it cannot be installed offline):

    python3.11 -m venv /tmp/peer-venv && /tmp/peer-venv/bin/pip install faster-whisper-server==0.0.3

Both servers listen on 127.0.0.1 and serve the same bundled tiny.en directory, int8,
``--threads`` CPU threads, with the decoding options saywho uses (beam 5, temperature
fallback, word timestamps, VAD filter, no conditioning on previous text; the peer gets
them from its YAML config). saywho runs with diarization off (``response_format=json``
runs no diarization). Load: ``--clients`` concurrent clients, each posting the same
file in a loop for ``--seconds`` per phase, loopback only; phases run saywho, peer,
peer, saywho (ABBA) while both servers are up, so both see the same background load.
Reported: requests per second, p50 / p95 latency, errors.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 600.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f} s")


def post(url: str, audio: bytes, fields: dict[str, str]) -> tuple[float, int, str]:
    import httpx

    t0 = time.perf_counter()
    try:
        r = httpx.post(url, files={"file": ("audio.wav", audio, "audio/wav")}, data=fields, timeout=600)
        text = r.json().get("text", "") if r.status_code == 200 else r.text[:200]
        return time.perf_counter() - t0, r.status_code, text
    except httpx.HTTPError as exc:
        return time.perf_counter() - t0, 0, str(exc)[:200]


def load_phase(url: str, audio: bytes, fields: dict[str, str], clients: int, seconds: float) -> dict:
    """``clients`` threads post in a loop until ``seconds`` have passed; in-flight requests finish."""
    results: list[tuple[float, int, str]] = []
    lock = threading.Lock()
    start = time.perf_counter()

    def client() -> None:
        while time.perf_counter() - start < seconds:
            r = post(url, audio, fields)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = [r for r in results if r[1] == 200]
    return {
        "wall": wall,
        "latencies": [r[0] for r in ok],
        "errors": len(results) - len(ok),
        "text": ok[0][2] if ok else (results[0][2] if results else ""),
        "codes": sorted({r[1] for r in results}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peer-venv", type=Path, default=Path("/tmp/peer-venv"))
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each load phase")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--file", default="asr/jfk.wav", help="dev file to post (relative to the dev set)")
    args = parser.parse_args(argv)

    dev = report.require_dev()
    audio_path = dev / args.file
    peer_bin = args.peer_venv / "bin" / "faster-whisper-server"
    if not peer_bin.exists():
        print(f"peer server not installed at {peer_bin} (see this script's docstring): nothing to compare")
        return 0
    audio = audio_path.read_bytes()
    from saywho.models.registry import resolve_asr_model
    from saywho.types import TranscribeOptions

    opts = TranscribeOptions(diarize=False)
    model_dir = resolve_asr_model(opts.model)
    tmp = tempfile.TemporaryDirectory(prefix="saywho-peer-")
    config = Path(tmp.name) / "peer.yaml"
    config.write_text(
        json.dumps(
            {  # JSON is YAML
                "models": [
                    {
                        "name": "tiny.en",
                        "path": model_dir,
                        "model_options": {
                            "device": "cpu",
                            "compute_type": "int8",
                            "cpu_threads": args.threads,
                        },
                        "transcribe_options": {
                            "beam_size": opts.beam_size,
                            "temperature": list(opts.temperature),
                            "word_timestamps": True,
                            "vad_filter": opts.vad_filter,
                            "condition_on_previous_text": False,
                        },
                    }
                ],
            }
        )
    )
    env = {
        **os.environ,
        "SAYWHO_CPU_THREADS": str(args.threads),
        "SAYWHO_DATA_DIR": tmp.name,
        "OMP_NUM_THREADS": str(args.threads),
        "HF_HUB_OFFLINE": "1",
    }
    sp, pp = free_port(), free_port()
    servers = {
        "saywho": subprocess.Popen(
            [
                str(report.PYTHON),
                "-m",
                "saywho",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(sp),
                "--preload",
                "tiny.en",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp.name) / "saywho.log", "w"),  # noqa: SIM115 - lives with the server
        ),
        "faster-whisper-server": subprocess.Popen(
            [str(peer_bin), "--config", str(config), "--host", "127.0.0.1", "--port", str(pp)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp.name) / "peer.log", "w"),  # noqa: SIM115
        ),
    }
    urls = {"saywho": f"http://127.0.0.1:{sp}", "faster-whisper-server": f"http://127.0.0.1:{pp}"}
    fields = {
        "saywho": {"model": "tiny.en", "response_format": "json"},
        "faster-whisper-server": {"model_name": "tiny.en", "response_format": "json"},
    }
    try:
        for name, proc in servers.items():
            try:
                wait_ready(urls[name] + "/health", proc)
            except RuntimeError as exc:
                log = (Path(tmp.name) / ("saywho.log" if name == "saywho" else "peer.log")).read_text()[-400:]
                print(f"{name} did not start ({exc}): {log.strip().splitlines()[-1] if log.strip() else ''}")
                return 0
        endpoint = "/v1/audio/transcriptions"
        for name in servers:  # warm-up: first request loads the model
            lat, code, text = post(urls[name] + endpoint, audio, fields[name])
            print(f"warm-up {name}: {code} in {lat:.1f}s: {text[:80]!r}", flush=True)
            if code != 200:
                print(f"{name} answered {code} to the warm-up request: {text}")
                return 0
        phases: dict[str, list[dict]] = {n: [] for n in servers}
        with report.LoadSampler() as load:
            for name in ("saywho", "faster-whisper-server", "faster-whisper-server", "saywho"):
                r = load_phase(urls[name] + endpoint, audio, fields[name], args.clients, args.seconds)
                phases[name].append(r)
                print(
                    f"{name}: {len(r['latencies'])} ok, {r['errors']} errors in {r['wall']:.1f}s", flush=True
                )
    finally:
        for proc in servers.values():
            proc.terminate()
        for proc in servers.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()

    rows, rps = [], {}
    for name, rs in phases.items():
        lat = np.array([x for r in rs for x in r["latencies"]])
        wall = sum(r["wall"] for r in rs)
        errors = sum(r["errors"] for r in rs)
        rps[name] = len(lat) / wall
        rows.append(
            [
                name,
                len(lat),
                errors,
                f"{wall:.0f}",
                f"{rps[name]:.3f}",
                f"{np.percentile(lat, 50):.2f}" if len(lat) else "-",
                f"{np.percentile(lat, 95):.2f}" if len(lat) else "-",
                f"{rps[name] * len(audio_from(audio_path)) / 16_000:.1f}x",
            ]
        )
        print(f"{name}: {rows[-1]}")
    ratio = rps["saywho"] / rps["faster-whisper-server"] if rps["faster-whisper-server"] else float("nan")
    same = phases["saywho"][0]["text"].strip() == phases["faster-whisper-server"][0]["text"].strip()
    body = (
        report.header("4. saywho serve against a peer server (faster-whisper-server)", load)
        + f"- Peer: `faster-whisper-server` 0.0.3 from PyPI in its own venv ({args.peer_venv}); `speaches` is not "
        "on PyPI (GitHub only) and could not be installed offline.\n"
        f"- Both: bundled tiny.en directory, int8, {args.threads} CPU threads, beam {opts.beam_size}, temperature "
        "fallback, word timestamps, VAD filter, no conditioning on previous text; 127.0.0.1 only. saywho: "
        "`saywho serve` (default 1 inference slot, queue 8), `response_format=json` (no diarization). Peer: "
        "`faster-whisper-server --config` with the same options.\n"
        f"- Load: {args.clients} concurrent clients posting `{args.file}` "
        f"({len(audio_from(audio_path)) / 16_000:.1f} s) in a loop, {args.seconds:g} s per phase, "
        "phases saywho / peer / peer / saywho; in-flight requests finish at the end of a phase.\n"
        f"- Same transcript from both: {'yes' if same else 'no'}.\n"
        "- Caveats: a short run on a loaded machine gives few requests per side, so read the ratio as indicative; "
        "the peer runs inference inside its `async def` handler (on the event loop), so it serves one request at "
        "a time, as saywho does with its single default slot.\n\n"
        + report.table(
            [
                "server",
                "requests ok",
                "errors",
                "time (s)",
                "req/s",
                "p50 latency (s)",
                "p95 latency (s)",
                "audio/s",
            ],
            rows,
        )
        + f"\n**Throughput saywho / peer: {ratio:.2f}** (target >= 1.0: {'met' if ratio >= 1.0 else 'NOT met'}).\n"
    )
    report.write_section("peer_server", body)
    return 0


def audio_from(path: Path) -> np.ndarray:
    from saywho.audio.decode import load_audio

    return load_audio(str(path)).samples


if __name__ == "__main__":
    sys.exit(main())
