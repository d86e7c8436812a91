"""Long recordings on a local Ray cluster: 1 and 2 worker processes, time and the
overhead per chunk (issue 16).

    PYTHONPATH=src:bench .venv/bin/python bench/ray_scaleout.py --minutes 20 [--write]

Builds a recording of the dev meetings joined to ``--minutes``, then for 1 and 2 workers
starts a private local Ray (``ray.init(num_cpus=N)``: one chunk per CPU at a time) and
runs ``transcribe_long`` on it (5-minute chunks). Each chunk task reports how long its
own processing took; the overhead per chunk is what the wall time adds to that: task
scheduling, shipping the samples through Ray's object store, worker start and model
loads, stitching. Needs ``pip install 'saywho[ray]'``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report

from saywho.longform.chunk import ChunkResult, process_chunk
from saywho.types import TranscribeOptions


def timed_process_chunk(samples: np.ndarray, options: TranscribeOptions) -> ChunkResult:
    """``process_chunk``, with its own seconds in the result's model names (read by the driver)."""
    t0 = time.perf_counter()
    result = process_chunk(samples, options)
    return dataclasses.replace(result, models={**result.models, "seconds": f"{time.perf_counter() - t0:.3f}"})


def build(path: Path, minutes: float) -> None:
    from gpu import joined, load_wav
    from scipy.io import wavfile

    clips = [load_wav(p) for p in sorted(report.require_dev("diarization").glob("*.wav"))]
    wavfile.write(path, 16_000, joined(clips, minutes * 60))


def run(path: Path, workers: int) -> dict:
    import ray

    from saywho.longform.run import transcribe_long

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    seconds: list[float] = []
    try:
        t0 = time.perf_counter()
        transcript = transcribe_long(
            str(path), TranscribeOptions(identify=False), ray_address="auto", processor=timed_process_chunk,
            on_chunk=lambda chunk, result: seconds.append(float(result.models["seconds"])),
        )
        wall = time.perf_counter() - t0
    finally:
        ray.shutdown()
    return {"workers": workers, "wall_s": round(wall, 1), "chunks": len(seconds),
            "chunk_s": [round(s, 1) for s in seconds], "speakers": len(transcript.speakers),
            "overhead_per_chunk_s": round((wall * workers - sum(seconds)) / len(seconds), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--write", action="store_true", help="write the section of docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp, report.LoadSampler() as load:
        path = Path(tmp) / f"dev_{args.minutes:g}min.wav"
        build(path, args.minutes)
        for workers in (1, 2):
            r = run(path, workers)
            results.append(r)
            print(json.dumps(r), flush=True)
            rows.append([workers, r["chunks"], f"{r['wall_s']:.0f}", f"{args.minutes * 60 / r['wall_s']:.1f}x",
                         f"{statistics.median(r['chunk_s']):.0f}", f"{r['overhead_per_chunk_s']:.1f}", r["speakers"]])
    one, two = results
    body = report.header("Long recordings on a local Ray cluster (issue 16)", load) + report.table(
        ["workers (Ray CPUs)", "chunks", "wall (s)", "speed", "chunk task median (s)",
         "overhead per chunk (s)", "speakers"], rows)
    body += (f"\n{args.minutes:g} minutes of the dev meetings joined, 5-minute chunks, tiny.en, diarization on. "
             f"2 workers / 1 worker: {one['wall_s'] / two['wall_s']:.2f}x faster. Overhead per chunk = "
             "(wall x workers - the chunk tasks' own seconds) / chunks: scheduling, samples through the object "
             "store, worker start and model loads, stitching. Each Ray task has one CPU (torch and CTranslate2 "
             "then run one thread each), so 2 workers on 2 cores do the work of the CLI's one 2-thread worker.\n")
    print(body)
    if args.write:
        report.write_section("ray_scaleout", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
