"""Live sessions under load (issue 18): one long stream, and several streams at once.

    PYTHONPATH=src .venv/bin/python bench/realtime_load.py --minutes 30
    PYTHONPATH=src .venv/bin/python bench/realtime_load.py --sessions 1 2 3 4 --seconds 120

Starts ``saywho serve`` on 127.0.0.1 (tiny.en and the speaker model preloaded) and
streams real speech to ``WS /v1/realtime`` with the ``websockets`` package: the dev
recordings (diarization and ASR clips) joined and repeated to the length asked, 16 kHz
PCM16 in 100 ms appends at real-time speed, server VAD on. Every delta and
``completed`` event carries the server's lag (``lag_s``: audio received but not yet
processed). Reported per run:

- the lag over time (largest in each tenth of the stream): a session keeps up when the
  lag does not grow from the first tenths to the last (and stays under the 2 s at which
  the engine starts skipping partial decodes);
- the server process's resident memory over time (sampled every 5 s: the live engine
  runs in the HTTP process);
- items completed and words delivered.

``--sessions N ...`` runs N streams at once (each its own socket and engine, the
server's session limit raised to N) for each N given, one after the other, and says how
many 2 cores sustain. Numbers are printed and written to docs/BENCHMARKS.md (section
``realtime_load``); nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report
from load import free_port, rss_mib, wait_ready

BLOCK_S = 0.1
RATE = 16_000
SKIP_LAG_S = 2.0  # LiveOptions.max_partial_lag_s: above it, partial decodes are skipped


def stream_audio(seconds: float) -> np.ndarray:
    """The dev recordings joined (1 s of silence between files), repeated to ``seconds``."""
    from saywho.audio.decode import load_audio

    files = sorted(report.require_dev("diarization").glob("*.wav")) + sorted(report.require_dev("asr").glob("*.wav"))
    gap = np.zeros(RATE, dtype=np.float32)
    one = np.concatenate([piece for f in files for piece in (load_audio(f).samples, gap)])
    reps = int(np.ceil(seconds * RATE / len(one)))
    return np.tile(one, reps)[: int(seconds * RATE)]


def start_server(sessions: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="saywho-rtload-"))
    env = dict(os.environ, SAYWHO_DATA_DIR=str(tmp / "data"), SAYWHO_REALTIME_MAX_SESSIONS=str(max(4, sessions)),
               SAYWHO_PRELOAD=json.dumps(["tiny.en", "diarization"]), SAYWHO_MODEL_TTL_S="-1",
               SAYWHO_LOG_LEVEL="warning", SAYWHO_REALTIME_MAX_BACKLOG_S="600")
    log = tmp / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "saywho", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


async def one_session(url: str, audio: np.ndarray) -> dict:
    """Stream ``audio`` at real-time speed; (time, lag) of each delta/completed, words, items."""
    import websockets

    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    step = int(RATE * BLOCK_S) * 2
    lags: list[tuple[float, float]] = []
    counts = {"completed": 0, "words": 0, "errors": 0}
    ws_url = url.replace("http://", "ws://") + "/v1/realtime"
    async with websockets.connect(ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": RATE},
            "transcription": {"model": "tiny.en", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}}}))
        began = time.monotonic()
        done = asyncio.Event()

        async def receive() -> None:
            last = time.monotonic()
            while True:  # until 60 s pass without an event once the audio has all been sent
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    # A session far behind skips partials: its commits can be far apart.
                    if done.is_set() and time.monotonic() - last > 60:
                        return
                    continue
                except websockets.ConnectionClosed:
                    return
                last = time.monotonic()
                event = json.loads(raw)
                kind = event.get("type", "")
                if kind.endswith(".delta") or kind.endswith(".completed"):
                    lags.append((time.monotonic() - began, float(event.get("lag_s", 0.0))))
                if kind.endswith("input_audio_transcription.completed"):
                    counts["completed"] += 1
                    counts["words"] += len(event.get("transcript", "").split())
                elif kind == "error":
                    counts["errors"] += 1

        receiver = asyncio.create_task(receive())
        for i, offset in enumerate(range(0, len(pcm), step)):
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(pcm[offset:offset + step]).decode()}))
            await asyncio.sleep(max(0.0, began + (i + 1) * BLOCK_S - time.monotonic()))
        done.set()
        await receiver
    return {"lags": lags, **counts, "seconds": len(audio) / RATE}


def tenths(lags: list[tuple[float, float]], seconds: float) -> list[float | None]:
    """The largest lag reported in each tenth of the stream (None where no event came:
    a session too far behind to send one, not one without lag)."""
    out: list[float | None] = [None] * 10
    for t, lag in lags:
        if t > seconds:  # after the stream: the last commit
            continue
        k = min(9, int(10 * t / seconds))
        out[k] = max(out[k] or 0.0, lag)
    return out


def _largest(values: list[float | None]) -> float:
    return max((v for v in values if v is not None), default=float("inf"))


def run(sessions: int, seconds: float) -> dict:
    proc, url, log = start_server(sessions)
    memory: list[tuple[float, float]] = []
    stop = threading.Event()
    try:
        wait_ready(url)
        audio = stream_audio(seconds)

        def sample() -> None:
            began = time.monotonic()
            while not stop.wait(5.0):
                memory.append((time.monotonic() - began, rss_mib(proc.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        rss_before = rss_mib(proc.pid)
        sampler.start()

        async def all_sessions() -> list[dict]:
            # each stream starts at a different place in the audio, so they do not talk in unison
            shift = len(audio) // max(1, sessions)
            return list(await asyncio.gather(*(one_session(url, np.roll(audio, k * shift))
                                               for k in range(sessions))))

        results = asyncio.run(all_sessions())
    finally:
        stop.set()
        proc.terminate()
        proc.wait(30)
    return {"sessions": sessions, "seconds": seconds, "results": results, "memory": memory,
            "rss_before": rss_before, "log": str(log)}


def summarize(r: dict) -> tuple[list[str], list[list[object]]]:
    lines, rows = [], []
    seconds = r["seconds"]
    mem = [m for _, m in r["memory"]] or [r["rss_before"]]
    q = max(1, len(mem) // 10)
    for k, s in enumerate(r["results"]):
        t = tenths(s["lags"], seconds)
        first, last = _largest(t[:3]), _largest(t[-3:])
        keeps_up = None not in t[-3:] and last < SKIP_LAG_S and last <= first + 0.5
        lines.append(f"sessions {r['sessions']} #{k}: {seconds / 60:.1f} min, {s['completed']} items, {s['words']} words, "
                     f"{s['errors']} errors; largest lag per tenth of the stream (s; -: no event): "
                     + " ".join("-" if x is None else f"{x:.1f}" for x in t) + f"; keeps up: {'yes' if keeps_up else 'no'}")
        rows.append([r["sessions"], k, f"{seconds / 60:.1f}", s["completed"], s["words"], s["errors"],
                     *("-" if x == float("inf") else f"{x:.1f}" for x in (first, last)), "yes" if keeps_up else "no",
                     f"{r['rss_before']:.0f}", f"{np.median(mem[:q]):.0f}", f"{np.median(mem[-q:]):.0f}",
                     f"{max(mem):.0f}"])
    lines.append(f"sessions {r['sessions']}: server RSS (MiB) every ~{len(mem) and seconds / len(mem):.0f} s, "
                 "tenths: " + " ".join(f"{np.median(mem[i * q:(i + 1) * q]):.0f}" for i in range(min(10, len(mem) // q))))
    return lines, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=0.0, help="one session of this many minutes")
    parser.add_argument("--sessions", type=int, nargs="*", default=[], help="parallel sessions to try, each N")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of each parallel run")
    args = parser.parse_args()
    plan = ([(1, args.minutes * 60)] if args.minutes else []) + [(n, args.seconds) for n in args.sessions]
    if not plan:
        parser.error("give --minutes and/or --sessions")
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    lines, rows = [], []
    with report.LoadSampler() as load:
        for sessions, seconds in plan:
            r = run(sessions, seconds)
            more_lines, more_rows = summarize(r)
            for line in more_lines:
                print(line, flush=True)
            lines += more_lines
            rows += more_rows
    body = report.header("Live sessions: a long stream and parallel streams (issue 18)", load) + report.table(
        ["sessions", "#", "minutes", "items", "words", "errors", "lag, first 3 tenths (max s)",
         "lag, last 3 tenths (max s)", "keeps up", "server RSS before (MiB)", "RSS first tenth",
         "RSS last tenth", "RSS max"], rows)
    body += ("\nKeeps up: the largest lag in the last three tenths of the stream is under 2 s (where the "
             "engine starts skipping partial decodes) and at most 0.5 s above the first three tenths', and each of them had an event.\n\n```\n"
             + "\n".join(lines) + "\n```\n")
    report.write_section("realtime_load", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
