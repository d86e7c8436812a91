"""Diarization on torch against ONNX Runtime, and the cheap knobs, on a 2-minute recording.

    .venv/bin/python bench/diarization_speed.py [--repeats 3] [--seconds 120]

The dev diarization recordings are joined into one ``--seconds`` file. Every
measurement is a fresh process, and the variants run interleaved (A B A B ...) so that
they share the machine's load:

1. the diarization steps inside one process (models loaded and warmed up first, not
   timed): segmentation (``segmentation.segment``) and fingerprints
   (``embedding.fbank`` + ``embed_frame_sets``), wall and CPU time (all threads), for
   each backend at 2 threads and 1 thread (what diarization gets while ASR runs beside
   it in ``saywho transcribe`` on 2 cores), and with a 4x larger fingerprint batch;
2. the whole ``saywho diarize FILE`` command (model loading included, the ONNX files
   already exported), wall, CPU (user + system) and peak RSS, per backend.

The backend is chosen with ``SAYWHO_DIARIZATION_BACKEND``. Outputs are compared: the
RTTM of the two backends, and the turns of each variant against torch's.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report

# name -> (backend, threads, max fingerprint batch frames; 0: the default)
VARIANTS: dict[str, tuple[str, int, int]] = {
    "torch, 2 threads": ("torch", 2, 0),
    "onnx, 2 threads": ("onnx", 2, 0),
    "torch, 1 thread": ("torch", 1, 0),
    "onnx, 1 thread": ("onnx", 1, 0),
    "onnx, 2 threads, batch x4": ("onnx", 2, 4),
}


def child(wav: str, threads: int, batch_scale: int) -> None:
    """One variant in this process: print the step times and the turns as JSON."""
    import resource

    from saywho.runtime import configure_openmp

    configure_openmp()  # as the CLI does, before torch loads OpenMP
    import torch

    from saywho.audio.decode import load_audio
    from saywho.diarization import embedding, segmentation
    from saywho.diarization import pipeline as diarization

    torch.set_num_threads(threads)
    audio = load_audio(wav).samples
    segmentation.get_model()
    embedding.get_model()
    diarization.diarize(audio[: 10 * 16_000])  # warm-up (first-call allocations), untimed
    spent: dict[str, list[float]] = {"segmentation": [0.0, 0.0], "embedding": [0.0, 0.0]}

    def timed(step: str, f, **fixed):
        @functools.wraps(f)
        def run(*args, **kwargs):
            w, c = time.perf_counter(), time.process_time()
            try:
                return f(*args, **{**kwargs, **fixed})
            finally:
                spent[step][0] += time.perf_counter() - w
                spent[step][1] += time.process_time() - c
        return run

    segmentation.segment = timed("segmentation", segmentation.segment)
    embedding.fbank = timed("embedding", embedding.fbank)
    extra = {"max_batch_frames": embedding.MAX_BATCH_FRAMES * batch_scale} if batch_scale else {}
    embedding.embed_frame_sets = timed("embedding", embedding.embed_frame_sets, **extra)
    w, c = time.perf_counter(), time.process_time()
    result = diarization.diarize(audio)
    total = [time.perf_counter() - w, time.process_time() - c]
    turns = [(t.speaker, round(t.start, 2), round(t.end, 2)) for t in result.turns]
    print(json.dumps({
        "steps": spent, "total": total, "turns": turns,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MiB, stdout) of one child process."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
        out.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read().decode()


def env_for(backend: str) -> dict[str, str]:
    return {**os.environ, "SAYWHO_DIARIZATION_BACKEND": backend}


def joined_dev(seconds: float, path: Path) -> float:
    """Write the dev recordings, joined, cut to ``seconds``; returns the duration."""
    from scipy.io import wavfile

    from saywho.audio.decode import load_audio

    data = report.require_dev("diarization")
    clips = [load_audio(str(p)).samples for p in sorted(data.glob("*.wav"))]
    audio = np.concatenate(clips)[: int(seconds * 16_000)]
    wavfile.write(path, 16_000, audio.astype(np.float32))
    return len(audio) / 16_000


def disagreement(reference_rttm: str, other_rttm: str) -> float:
    """DER of ``other_rttm`` with ``reference_rttm`` as the reference (no collar, overlap scored)."""
    import warnings

    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(text: str) -> Annotation:
        out = Annotation()
        for line in text.splitlines():
            f = line.split()
            out[Segment(float(f[3]), float(f[3]) + float(f[4]))] = f[7]
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scored region is the union of both: fine here
        return float(DiarizationErrorRate(collar=0.0)(annotation(reference_rttm), annotation(other_rttm)))


def dev_der(backend: str) -> str:
    """Pooled DER on the dev set (``bench/der_dev.py``) with the models on ``backend``."""
    script = Path(__file__).resolve().parent / "der_dev.py"
    out = subprocess.run([sys.executable, str(script)], env=env_for(backend), capture_output=True, text=True,
                         check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("pooled DER (no collar"))


def ratio(a: list[float], b: list[float]) -> str:
    return f"{statistics.median(a) / statistics.median(b):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--no-der", action="store_true", help="skip bench/der_dev.py on each backend")
    parser.add_argument("--child", nargs=3, metavar=("WAV", "THREADS", "BATCH_SCALE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0

    work = Path(tempfile.mkdtemp(prefix="diarization-speed-"))
    wav = work / "joined.wav"
    duration = joined_dev(args.seconds, wav)
    me = [sys.executable, str(Path(__file__).resolve())]
    # Export the ONNX files now (once), so that no timed run pays for it.
    run_measured([*me, "--child", str(wav), "2", "0"], env_for("onnx"))

    steps: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    whole: dict[str, dict[str, list[float]]] = {b: {"wall": [], "cpu": [], "rss": []} for b in ("torch", "onnx")}
    rttm: dict[str, str] = {}
    with report.LoadSampler() as load:
        for rep in range(args.repeats):
            for name, (backend, threads, scale) in VARIANTS.items():
                *_, out = run_measured([*me, "--child", str(wav), str(threads), str(scale)], env_for(backend))
                steps[name].append(json.loads(out.strip().splitlines()[-1]))
                print(f"[{rep + 1}/{args.repeats}] {name}: {steps[name][-1]['steps']} total {steps[name][-1]['total']}",
                      flush=True)
            for backend in ("torch", "onnx"):
                target = work / f"{backend}.rttm"
                wall, cpu, rss, _ = run_measured(
                    [sys.executable, "-m", "saywho", "diarize", str(wav), "-q", "-o", str(target)], env_for(backend))
                rttm[backend] = target.read_text()
                for key, value in (("wall", wall), ("cpu", cpu), ("rss", rss)):
                    whole[backend][key].append(value)
                print(f"[{rep + 1}/{args.repeats}] saywho diarize ({backend}): wall {wall:.2f} s, CPU {cpu:.2f} s, "
                      f"peak {rss:.0f} MiB", flush=True)

    der = {} if args.no_der else {b: dev_der(b) for b in ("torch", "onnx")}

    def med(name: str, step: str, i: int) -> float:
        values = [r["total"] if step == "total" else r["steps"][step] for r in steps[name]]
        return statistics.median(v[i] for v in values)

    reference = steps["torch, 2 threads"][0]["turns"]
    rows = []
    for name in VARIANTS:
        same = all(r["turns"] == reference for r in steps[name])
        rows.append([
            name, *(f"{med(name, s, 0):.2f} / {med(name, s, 1):.2f}" for s in ("segmentation", "embedding", "total")),
            f"{statistics.median(r['peak_mib'] for r in steps[name]):.0f}", "yes" if same else "no",
        ])
    ratio_rows = []
    for a, b in (("onnx, 2 threads", "torch, 2 threads"), ("onnx, 1 thread", "torch, 1 thread"),
                 ("onnx, 2 threads, batch x4", "onnx, 2 threads")):
        ratio_rows.append([f"{a} / {b}", *(
            f"{med(a, s, 1) / med(b, s, 1):.2f} / {med(a, s, 0) / med(b, s, 0):.2f}"
            for s in ("segmentation", "embedding", "total"))])
    w = whole
    whole_rows = [[b, f"{statistics.median(w[b]['wall']):.2f}", f"{statistics.median(w[b]['cpu']):.2f}",
                   f"{statistics.median(w[b]['rss']):.0f}", f"{duration / statistics.median(w[b]['wall']):.1f}x",
                   " ".join(f"{x:.1f}" for x in w[b]["wall"])] for b in ("torch", "onnx")]
    same_rttm = rttm["torch"] == rttm["onnx"]
    digest = {b: hashlib.sha256(t.encode()).hexdigest()[:8] for b, t in rttm.items()}
    body = (
        report.header("Diarization: torch against ONNX Runtime (issue 16)", load)
        + f"A {duration:.0f} s recording (the dev diarization clips joined). Each cell is the median of "
        f"{args.repeats} fresh processes, the variants interleaved. The models run on the backend named "
        "(`SAYWHO_DIARIZATION_BACKEND`); ONNX files exported beforehand (the first use exports them once: "
        "about 10 s for segmentation and 25 s for CAM++ on this machine).\n\n"
        "### Steps inside one process (wall / CPU seconds; models loaded and warmed up)\n\n"
        + report.table(["variant", "segmentation", "fingerprints", "diarize total", "peak MiB",
                        "turns = torch 2 threads"], rows)
        + "\n**Ratios** (CPU / wall; below 1: the first is faster):\n\n"
        + report.table(["variants", "segmentation", "fingerprints", "diarize total"], ratio_rows)
        + "\n`batch x4`: fingerprints batched up to 16,000 feature frames instead of 4,000 "
        "(`embedding.MAX_BATCH_FRAMES`). 1 thread is diarization's share while ASR runs beside it in "
        "`saywho transcribe` on 2 cores.\n\n"
        f"### `saywho diarize FILE` ({duration:.0f} s, fresh process, models loaded from disk)\n\n"
        + report.table(["backend", "wall (s)", "CPU (s)", "peak RSS (MiB)", "speed (x real time)",
                        "wall of each run (s)"], whole_rows)
        + f"\n**onnx / torch**: CPU {ratio(w['onnx']['cpu'], w['torch']['cpu'])}, "
        f"wall {ratio(w['onnx']['wall'], w['torch']['wall'])}, peak RSS {ratio(w['onnx']['rss'], w['torch']['rss'])}. "
        f"RTTM of the two backends identical: {'yes' if same_rttm else 'no'} "
        f"(sha256 {digest['torch']} / {digest['onnx']}); DER of ONNX Runtime's turns with torch's as the "
        f"reference: {100 * disagreement(rttm['torch'], rttm['onnx']):.2f}%.\n"
        + (f"\nDER on the dev set (`bench/der_dev.py`, pooled, no collar): torch {der['torch']}, "
           f"ONNX Runtime {der['onnx']}.\n" if der else "")
    )
    print(body)
    report.write_section("diarization_speed", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
