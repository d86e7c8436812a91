"""Voice-command latency of ``saywho wyoming``, beside wyoming-faster-whisper and wyoming-piper.

    .venv/bin/python bench/wyoming_latency.py [--repeats 5] [--others-venv /tmp/wyo-others]

Speech to text: 2-4 s voice commands made with the bundled Piper voice (noise off, so
every run hears the same audio), sent at 16 kHz in 20 ms chunks as fast as the socket
takes them; the time is from writing ``audio-stop`` to reading ``transcript``. saywho
runs twice: with an empty speaker library, and with one enrolled voice (the utterance
is then fingerprinted with CAM++ and matched as well). Text to speech: from writing
``synthesize`` to the first ``audio-chunk``, and to ``audio-stop``. Each server runs
as its own process from its public CLI, gets one warm-up request, then ``--repeats``
rounds; medians are printed, with a Markdown table for docs/BENCHMARKS.md.

The other servers run from a separate venv (``--others-venv``; created with
``python3.11 -m venv DIR && DIR/bin/pip install wyoming-faster-whisper wyoming-piper``
when ``--install-others`` is given), offline: wyoming-faster-whisper is pointed at the
bundled tiny.en CTranslate2 directory, wyoming-piper at the bundled voice's directory,
both with ``--local-files-only``. When they cannot start, the reason is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe
from wyoming.tts import Synthesize

ROOT = Path(__file__).resolve().parents[1]
SAYWHO = [sys.executable, "-m", "saywho"]
COMMANDS = (
    "Turn on the kitchen lights.",
    "Lock the back door, please.",
    "What is the weather like tomorrow?",
    "Play some jazz in the living room.",
)
PAD_S = 0.5  # silence before and after each command, as a satellite's VAD leaves it
SPEECH_TEXT = "The front door is locked. Good night, and sleep well."


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    process: subprocess.Popen | None = None
    log: Path | None = None

    def start(self, log_dir: Path) -> None:
        self.log = log_dir / f"{self.name}.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(self.argv, stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def why_not(self) -> str:
        tail = self.log.read_text().strip().splitlines()[-3:] if self.log and self.log.exists() else []
        return " | ".join(tail) or "no output"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(server: Server, timeout_s: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            return False
        try:
            async with AsyncTcpClient("127.0.0.1", server.port) as client:
                await client.write_event(Describe().event())
                if (await client.read_event()) is not None:
                    return True
        except OSError:
            await asyncio.sleep(0.5)
    return False


async def stt_once(port: int, pcm: bytes) -> tuple[float, str, dict | None]:
    """(seconds from audio-stop to transcript, text, saywho's speaker field)."""
    step = 16000 * 2 // 50  # 20 ms
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for offset in range(0, len(pcm), step):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[offset: offset + step])
                                     .event())
        started = time.perf_counter()
        await client.write_event(AudioStop().event())
        while True:
            event = await client.read_event()
            if event is None or event.type == "error":
                raise RuntimeError(f"no transcript: {event}")
            if event.type == "transcript":
                return time.perf_counter() - started, event.data["text"].strip(), event.data.get("speaker")


async def tts_once(port: int, text: str) -> tuple[float, float, float]:
    """(seconds to the first audio-chunk, seconds to audio-stop, seconds of audio)."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        started = time.perf_counter()
        await client.write_event(Synthesize(text=text).event())
        first = None
        audio_bytes, rate = 0, 1
        while True:
            event = await client.read_event()
            if event is None or event.type == "error":
                raise RuntimeError(f"no audio: {event}")
            if event.type == "audio-chunk":
                first = first or time.perf_counter() - started
                audio_bytes += len(event.payload or b"")
                rate = event.data["rate"]
            if event.type == "audio-stop":
                return first or 0.0, time.perf_counter() - started, audio_bytes / 2 / rate


def make_commands() -> list[tuple[str, bytes]]:
    from piper.config import SynthesisConfig

    from saywho import tts
    from saywho.wyoming.audio import float_to_pcm16, resample

    voice = tts.load_voice("en_US-joe-medium")
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    out = []
    pad = np.zeros(int(PAD_S * 16000), np.float32)
    for text in COMMANDS:
        speech = np.concatenate([c.audio_float_array for c in voice.synthesize(text, syn_config=config)])
        samples = np.concatenate([pad, resample(speech.astype(np.float32), voice.config.sample_rate), pad])
        out.append((text, float_to_pcm16(samples)))
    return out


def enrol(db: Path, work: Path) -> None:
    """Enrol the Piper voice as 'Joe' through the public CLI (a different sentence than the commands)."""
    from saywho import tts
    from saywho.audio.decode import write_wav

    voice = tts.load_voice("en_US-joe-medium")
    speech = tts.synthesize(voice, "My name is Joe, and this is how my voice sounds when I read a sentence aloud.")
    wav = work / "joe.wav"
    write_wav(wav, speech.float_samples(16000))
    subprocess.run([*SAYWHO, "speakers", "add", "Joe", str(wav), "--speakers-db", str(db)], check=True,
                   capture_output=True)


def words(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c == " ").split())


async def bench_stt(server: Server, commands: list[tuple[str, bytes]], repeats: int) -> dict:
    await stt_once(server.port, commands[0][1])  # warm-up
    times, right, names = [], 0, set()
    for _ in range(repeats):
        for text, pcm in commands:
            seconds, heard, speaker = await stt_once(server.port, pcm)
            times.append(seconds)
            right += words(heard) == words(text)
            if speaker is not None:
                names.add(speaker.get("name") or "null")
    durations = [len(pcm) / 32000 for _, pcm in commands]
    return {"median_ms": 1000 * statistics.median(times), "p90_ms": 1000 * sorted(times)[int(0.9 * len(times))],
            "right": f"{right}/{len(times)}", "audio_s": f"{min(durations):.1f}-{max(durations):.1f}",
            "names": sorted(str(n) for n in names)}


async def bench_tts(server: Server, repeats: int) -> dict:
    await tts_once(server.port, SPEECH_TEXT)  # warm-up
    runs = [await tts_once(server.port, SPEECH_TEXT) for _ in range(repeats)]
    return {"first_ms": 1000 * statistics.median(r[0] for r in runs),
            "total_ms": 1000 * statistics.median(r[1] for r in runs), "audio_s": runs[0][2]}


def install_others(venv: Path) -> None:
    subprocess.run([shutil.which("python3.11") or sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "wyoming-faster-whisper",
                    "wyoming-piper"], check=True)


async def main_async(args: argparse.Namespace) -> int:
    from saywho.models.registry import BUNDLED, resolve_asr_model

    work = Path(tempfile.mkdtemp(prefix="wyoming-bench-"))
    commands = make_commands()
    db = work / "speakers.db"
    enrol(db, work)
    common = ["--no-zeroconf", "--model", "tiny.en"]
    servers = [
        Server("saywho (empty library)", [*SAYWHO, "wyoming", "--uri", f"tcp://127.0.0.1:{(p := free_port())}",
                                           "--speakers-db", str(work / "empty.db"), *common], p),
        Server("saywho (1 enrolled voice)", [*SAYWHO, "wyoming", "--uri", f"tcp://127.0.0.1:{(p := free_port())}",
                                             "--speakers-db", str(db), *common], p),
    ]
    others = Path(args.others_venv)
    if args.install_others and not (others / "bin" / "python").exists():
        install_others(others)
    skipped = []
    python = others / "bin" / "python"
    if python.exists():
        tiny = resolve_asr_model("tiny.en")
        voice_dir = BUNDLED["en_US-joe-medium"].locate().parent
        servers.append(Server("wyoming-faster-whisper", [
            str(python), "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{(p := free_port())}",
            "--model", tiny, "--data-dir", str(work / "wfw"), "--local-files-only", "--language", "en",
            "--cpu-threads", str(os.cpu_count() or 2)], p))
        servers.append(Server("wyoming-piper", [
            str(python), "-m", "wyoming_piper", "--uri", f"tcp://127.0.0.1:{(p := free_port())}",
            "--voice", "en_US-joe-medium", "--data-dir", str(voice_dir), "--local-files-only"], p))
    else:
        skipped.append(f"wyoming-faster-whisper, wyoming-piper: no venv at {others} (use --install-others)")

    stt_rows, tts_rows = [], []
    for server in servers:
        server.start(work)
        try:
            if not await wait_ready(server):
                skipped.append(f"{server.name}: did not start offline: {server.why_not()}")
                continue
            if server.name != "wyoming-piper":
                stt = await bench_stt(server, commands, args.repeats)
                stt_rows.append((server.name, stt))
                print(f"{server.name}: audio-stop -> transcript median {stt['median_ms']:.0f} ms, "
                      f"p90 {stt['p90_ms']:.0f} ms, exact {stt['right']}, names {stt['names']}", flush=True)
            if server.name in ("saywho (empty library)", "wyoming-piper"):
                synth = await bench_tts(server, args.repeats)
                tts_rows.append((server.name.split(" (")[0], synth))
                print(f"{server.name}: synthesize -> first audio-chunk {synth['first_ms']:.0f} ms, "
                      f"-> audio-stop {synth['total_ms']:.0f} ms ({synth['audio_s']:.1f} s of audio)", flush=True)
        finally:
            server.stop()

    load = os.getloadavg()[0]
    print(f"\n{os.cpu_count()} cores, load average {load:.1f} at the end; {args.repeats} rounds of "
          f"{len(commands)} commands ({stt_rows[0][1]['audio_s'] if stt_rows else '?'} s each)\n")
    print("| server | audio-stop -> transcript, median | p90 | exact text | speaker field |")
    print("|---|---|---|---|---|")
    for name, r in stt_rows:
        field = "name: " + ", ".join(r["names"]) if r["names"] else "(no such field)"
        print(f"| {name} | {r['median_ms']:.0f} ms | {r['p90_ms']:.0f} ms | {r['right']} | {field} |")
    print("\n| server | synthesize -> first audio-chunk, median | -> audio-stop | audio |")
    print("|---|---|---|---|")
    for name, r in tts_rows:
        print(f"| {name} | {r['first_ms']:.0f} ms | {r['total_ms']:.0f} ms | {r['audio_s']:.1f} s |")
    for line in skipped:
        print(f"\nnot measured: {line}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--others-venv", default="/tmp/wyo-others")
    parser.add_argument("--install-others", action="store_true", help="create --others-venv with pip if absent")
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
