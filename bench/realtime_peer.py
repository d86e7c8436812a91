"""Live transcription side by side with WhisperLiveKit (issue 18): word latency and text.

WhisperLiveKit 0.2.26 from PyPI, run in-process through its own ``TestHarness`` (its
LocalAgreement policy on faster-whisper with its own decoding settings (beam 5), the same
bundled tiny.en directory, its Silero VAD on, no diarization: its diarization backends
download models), against saywho's
``LiveSession`` (the default policy), each fed the same dev recording in 100 ms blocks
at real-time speed, one after the other. WhisperLiveKit needs torchaudio in its
requirements but not on this path, so it is installed without dependencies and given
the few it imports:

    pip download whisperlivekit==0.2.26 --no-deps -d /tmp/wlk && unzip -q -o /tmp/wlk/whisperlivekit-0.2.26-py3-none-any.whl -d /tmp/wlk/src
    pip install --target /tmp/wlk-extra soundfile librosa tiktoken && rm -rf /tmp/wlk-extra/numpy* /tmp/wlk-extra/scipy*
    PYTHONPATH=src:/tmp/wlk/src:/tmp/wlk-extra .venv/bin/python bench/realtime_peer.py --files sample dev00 trn03

Word latency: from the end of a word in the audio (the offline transcript's word times)
to the first moment the word is in the system's committed text (saywho: a delta;
WhisperLiveKit: its ``lines``, not the tentative ``buffer_transcription``); committed
words are aligned to the offline words with difflib's matching blocks. WER: each
system's final text against the offline transcript of the same file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report
from realtime_latency import aligned_latencies, norm

from saywho.audio.decode import load_audio
from saywho.evaluation.metrics import wer
from saywho.pipeline import transcribe
from saywho.streaming import Completed, Delta, LiveOptions, LiveSession
from saywho.streaming.sources import paced
from saywho.types import SAMPLE_RATE, TranscribeOptions

BLOCK = 1600  # 100 ms


def run_saywho(samples: np.ndarray) -> tuple[list[tuple[str, float]], str]:
    session = LiveSession(LiveOptions(model="tiny.en", identify=False))
    heard: list[tuple[str, float]] = []
    texts: list[str] = []
    began = time.monotonic()

    def handle(events) -> None:
        now = time.monotonic() - began
        for e in events:
            if isinstance(e, Delta):
                heard.extend((t, now) for t in (norm(x) for x in e.delta.split()) if t)
            elif isinstance(e, Completed):
                texts.append(e.transcript)

    blocks = (samples[i: i + BLOCK] for i in range(0, len(samples), BLOCK))
    for block, _lag in paced(blocks):
        handle(session.feed(block, lag_s=max(0.0, time.monotonic() - began - session.received_s)))
    handle(session.finish())
    return heard, " ".join(texts)


async def run_wlk(samples: np.ndarray, model_dir: str) -> tuple[list[tuple[str, float]], str]:
    import logging

    from whisperlivekit.test_harness import TestHarness

    for name in ("", "whisperlivekit", "faster_whisper"):
        logging.getLogger(name).setLevel(logging.WARNING)

    heard: list[tuple[str, float]] = []
    seen = 0  # committed words already recorded
    began = 0.0  # set when the first audio goes in

    def on_update(state) -> None:
        nonlocal seen
        words = [t for t in (norm(x) for line in state.lines for x in (line.get("text") or "").split()) if t]
        now = time.monotonic() - began
        if len(words) > seen:
            heard.extend((w, now) for w in words[seen:])
            seen = len(words)

    async with TestHarness(model_size="tiny.en", lan="en", backend="faster-whisper", backend_policy="localagreement",
                           model_dir=model_dir, diarization=False, log_level="WARNING") as h:
        h._on_update = on_update
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        began = time.monotonic()
        step = BLOCK * 2
        for i, offset in enumerate(range(0, len(pcm), step)):
            await h._processor.process_audio(pcm[offset:offset + step])
            h._audio_position = (offset + step) / 2 / SAMPLE_RATE
            await asyncio.sleep(max(0.0, began + (i + 1) * BLOCK / SAMPLE_RATE - time.monotonic()))
        result = await h.finish()
        text = " ".join((line.get("text") or "") for line in result.lines)
    return heard, text


NOTE = """
Both systems: the bundled tiny.en, each dev file fed in 100 ms blocks at real-time speed in one process,
one system after the other. WhisperLiveKit 0.2.26 (PyPI, installed without its dependencies as this file's
docstring says; LocalAgreement policy, its own decoding settings, Silero VAD, no diarization since its
diarization backends download models); a word counts when it reaches its committed `lines`, not the
tentative buffer. saywho: `LiveSession` with the default policy; a word counts at its first delta.
Final WER: each system's final text against saywho's offline transcript of the file.
"""


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=["sample"])
    args = parser.parse_args()
    from saywho.models.registry import resolve_asr_model

    model_dir = str(resolve_asr_model("tiny.en"))
    dev = report.require_dev("diarization")
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows, lines = [], []
    total: dict[str, list[float]] = {"saywho": [], "WhisperLiveKit": []}
    with report.LoadSampler() as load:
        for name in args.files:
            path = dev / f"{name}.wav"
            samples = load_audio(path).samples
            offline = transcribe(path, TranscribeOptions(model="tiny.en", diarize=False))
            words = [(norm(w.text), w.end) for w in offline.words if norm(w.text)]
            for system in ("saywho", "WhisperLiveKit"):
                heard, text = run_saywho(samples) if system == "saywho" else asyncio.run(run_wlk(samples, model_dir))
                lat = aligned_latencies(words, heard)
                total[system] += lat
                w = wer(offline.text, text).wer
                line = (f"{name} {system}: word->committed median {pct(lat, 50):.2f} s p95 {pct(lat, 95):.2f} s "
                        f"({len(lat)}/{len(words)} words matched); final text WER vs offline {w:.3f}")
                print(line, flush=True)
                lines.append(line)
                rows.append([name, system, f"{pct(lat, 50):.2f}", f"{pct(lat, 95):.2f}", f"{len(lat)}/{len(words)}",
                             f"{w:.3f}"])
    for system, lat in total.items():
        rows.append(["all", system, f"{pct(lat, 50):.2f}", f"{pct(lat, 95):.2f}", len(lat), ""])
    body = report.header("Live transcription side by side with WhisperLiveKit (issue 18)", load) + report.table(
        ["file", "system", "word->committed median s", "p95 s", "words matched", "final WER vs offline"], rows)
    body += "\n```\n" + "\n".join(lines) + "\n```\n" + NOTE
    report.write_section("realtime_peer", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
