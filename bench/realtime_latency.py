"""Live transcription at real-time speed (issue 18): latency, live DER, label changes, lag.

    PYTHONPATH=src .venv/bin/python bench/realtime_latency.py [--files sample dev00 ...] [--model tiny.en]

Each dev recording (``../shared/data/dev/diarization``) is fed to a ``LiveSession`` in
100 ms blocks, each block when its audio would have been heard live (``paced``), on
this machine as it is (note the load average printed). Measured per file:

- word latency: from the end of a word in the audio (the offline transcript's word
  times) to the first delta containing it (deltas aligned to the offline words in
  order, by normalised text);
- end of speech -> ``completed``: from the end of an item's last word to its event;
- live DER (no collar, overlap scored) of the speaker segments against the reference,
  next to the offline pipeline's DER on the same file;
- label changes after first assignment (by construction none: labels are never revised);
- the largest lag reported.
Numbers are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from saywho.audio.decode import load_audio
from saywho.evaluation.metrics import der, read_rttm
from saywho.pipeline import transcribe
from saywho.streaming import Completed, Delta, LiveOptions, LiveSession, SpeakerSegment
from saywho.streaming.sources import paced
from saywho.types import SAMPLE_RATE, SpeakerTurn, TranscribeOptions

DEV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dev" / "diarization"
if not DEV.is_dir():
    DEV = Path("/work/shared/data/dev/diarization")


def norm(w: str) -> str:
    return re.sub(r"[^\w']", "", w.lower())


def run_file(name: str, model: str) -> dict:
    path = DEV / f"{name}.wav"
    samples = load_audio(path).samples
    offline = transcribe(path, TranscribeOptions(model=model))
    words = [(norm(w.text), w.end) for w in offline.words if norm(w.text)]
    session = LiveSession(LiveOptions(model=model, identify=False))
    blocks = (samples[i: i + 1600] for i in range(0, len(samples), 1600))
    began = time.monotonic()
    word_latency, completed_latency, segments, max_lag = [], [], [], 0.0
    cursor = 0  # next offline word to match

    def handle(events: list, now: float) -> None:
        nonlocal cursor, max_lag
        for e in events:
            if isinstance(e, Delta):
                max_lag = max(max_lag, e.lag_s)
                for token in (norm(t) for t in e.delta.split()):
                    for k in range(cursor, min(cursor + 4, len(words))):  # skip at most 3 missed words
                        if words[k][0] == token:
                            word_latency.append(now - words[k][1])
                            cursor = k + 1
                            break
            elif isinstance(e, Completed):
                inside = [end for _, end in words if e.start <= end <= e.end]
                if inside:
                    completed_latency.append(now - max(inside))
            elif isinstance(e, SpeakerSegment):
                segments.append(SpeakerTurn(start=e.start, end=e.end, speaker=e.speaker))

    for block, _lag in paced(blocks):
        events = session.feed(block, lag_s=max(0.0, time.monotonic() - began - session.received_s))
        handle(events, time.monotonic() - began)
    handle(session.finish(), time.monotonic() - began)
    reference = read_rttm(DEV / ("sample.rttm" if name == "sample" else
                                 "ami_dev.rttm" if name.startswith("dev") else "ami_train.rttm"))
    ref = reference.get(name) or next(iter(reference.values()))
    uem = [(0.0, 30.0)]
    live_der = der(ref, segments, uem).der if segments else 1.0
    offline_der = der(ref, list(offline.diarization.turns), uem).der if offline.diarization else float("nan")
    return {"word_latency": word_latency, "completed_latency": completed_latency, "live_der": live_der,
            "offline_der": offline_der, "max_lag": max_lag, "segments": len(segments),
            "matched": len(word_latency), "words": len(words),
            "wall": time.monotonic() - began, "duration": len(samples) / SAMPLE_RATE}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=["sample"])
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, model {args.model}")
    all_words, all_done = [], []
    for name in args.files:
        r = run_file(name, args.model)
        all_words += r["word_latency"]
        all_done += r["completed_latency"]
        print(f"{name}: word->delta median {pct(r['word_latency'], 50):.2f} s p95 {pct(r['word_latency'], 95):.2f} s "
              f"({r['matched']}/{r['words']} words matched); speech end->completed p95 "
              f"{pct(r['completed_latency'], 95):.2f} s; DER live {r['live_der']:.3f} offline {r['offline_der']:.3f}; "
              f"label changes 0/{r['segments']}; max lag {r['max_lag']:.2f} s; "
              f"wall {r['wall']:.1f} s for {r['duration']:.1f} s")
    print(f"all: word->delta median {pct(all_words, 50):.2f} s p95 {pct(all_words, 95):.2f} s; "
          f"speech end->completed median {pct(all_done, 50):.2f} s p95 {pct(all_done, 95):.2f} s")


if __name__ == "__main__":
    sys.exit(main())
