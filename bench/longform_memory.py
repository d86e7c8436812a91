"""Long recordings: peak memory, speed and speaker consistency across chunks.

Builds an N-minute meeting of five synthesised voices with exact reference turns
(written to disk piece by piece, never held whole), then for each length runs
``transcribe_long`` in a fresh child process and reports:

- peak RSS of that process (models included; ``workers=1`` runs chunks in-process);
- real-time factor (wall time / audio duration);
- DER of the stitched result against the reference, and DER of the same content
  processed as short separate files: each chunk diarized on its own, scored against
  its own slice of the reference with its own optimal label mapping. The chunk
  worker runs exactly the short-file pipeline on a chunk, so its stored results are
  that baseline at no extra cost. The difference is the price of keeping speakers the
  same people across chunks (target: at most 3 points).

    python bench/longform_memory.py --minutes 5 15 60 --json out.json
    python bench/longform_memory.py --minutes 5 60 180 --no-models   # the machinery alone, in minutes
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np

VOICES = ("flite:slt", "flite:awb", "piper:joe", "flite:rms", "espeak:en-us+f3")


def build(path: Path, minutes: float, seed: int = 0) -> list[tuple[float, float, str]]:
    """Write an N-minute meeting to ``path`` (16-bit WAV); return its reference turns."""
    from saywho.evaluation.synth import SENTENCES, speak

    rng = random.Random(seed)
    cache: dict[tuple[str, str], np.ndarray] = {}
    turns: list[tuple[float, float, str]] = []
    rate = 16_000
    t = 0.5
    previous = None
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)

        def put(x: np.ndarray) -> None:
            noise = 10 ** (-60 / 20) * np.random.default_rng(len(turns)).standard_normal(len(x))
            w.writeframes((np.clip(x + noise, -1, 1) * 32767).astype("<i2").tobytes())

        put(np.zeros(int(0.5 * rate), np.float32))
        while t < minutes * 60:
            voice = rng.choice([v for v in VOICES if v != previous])
            previous = voice
            for _ in range(rng.choice((1, 1, 2, 3))):
                text = rng.choice(SENTENCES)
                if (voice, text) not in cache:
                    cache[(voice, text)] = speak(voice, text)
                u = cache[(voice, text)]
                turns.append((round(t, 3), round(t + len(u) / rate, 3), voice))
                put(u)
                t += len(u) / rate
                pause = rng.uniform(0.15, 0.4)
                put(np.zeros(int(pause * rate), np.float32))
                t += int(pause * rate) / rate
            gap = rng.uniform(0.3, 1.2)
            put(np.zeros(int(gap * rate), np.float32))
            t += int(gap * rate) / rate
    return turns


def no_models_worker(samples: np.ndarray, options) -> object:
    """A chunk worker without models: one speaker per chunk, to measure the long-file
    machinery alone (streaming plan, chunk files, results, stitching)."""
    from saywho.longform.chunk import ChunkResult
    from saywho.types import SpeakerTurn

    duration = len(samples) / 16_000
    turn = SpeakerTurn(0.0, round(duration, 3), "Speaker_0")
    return ChunkResult(duration=duration, segments=(turn,), speakers_detected=("Speaker_0",),
                       fingerprints={"Speaker_0": (1.0,) + (0.0,) * 191}, words=(), language="en",
                       exclusive=(turn,))


def child(audio: str, chunk_s: float, work_dir: str, out: str, no_models: bool = False) -> None:
    """Run one long transcription (in a fresh process) and write its turns and timing."""
    from saywho.longform.run import transcribe_long

    start = time.monotonic()
    transcript = transcribe_long(audio, chunk_s=chunk_s, work_dir=work_dir,
                                 processor=no_models_worker if no_models else None)
    wall = time.monotonic() - start
    assert transcript.diarization is not None
    Path(out).write_text(json.dumps({
        "wall_s": wall,
        "duration": transcript.duration,
        "turns": [(t.start, t.end, t.speaker) for t in transcript.diarization.turns],
        "speakers": len(transcript.speakers),
    }))


def measure(audio: Path, chunk_s: float, work: Path, no_models: bool = False) -> dict:
    """Run ``child`` in a subprocess; its result plus the child's peak RSS."""
    out = work / "result.json"
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(audio), str(chunk_s), str(work / "chunks"),
                             str(out)] + (["--no-models"] if no_models else []))
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"child failed with status {status}")
    data = json.loads(out.read_text())
    data["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    return data


def ders(reference: list[tuple[float, float, str]], data: dict, work: Path) -> tuple[float, float]:
    """(DER of the stitched result, pooled DER of the chunks diarized as separate files)."""
    from saywho.evaluation.metrics import der, pool_der
    from saywho.longform.store import DirectoryChunkStore
    from saywho.types import SpeakerTurn

    ref = [SpeakerTurn(a, b, s) for a, b, s in reference]
    stitched = der(ref, [SpeakerTurn(a, b, s) for a, b, s in data["turns"]]).der
    store = DirectoryChunkStore(work / "chunks")
    plan = json.loads((work / "chunks" / "plan.json").read_text())["plan"]
    per_chunk = []
    for c in plan["chunks"]:
        lo, hi = c["start"] / 16_000, c["end"] / 16_000
        result = store.load_result(c["index"])
        piece_ref = [SpeakerTurn(max(a, lo) - lo, min(b, hi) - lo, s) for a, b, s in reference if b > lo and a < hi]
        uem = [(0.0, hi - lo)]
        per_chunk.append(der(piece_ref, list(result.segments), uem=uem))
    return stitched, pool_der(per_chunk).der


def similarities(reference: list[tuple[float, float, str]], work: Path) -> dict[str, list[float]]:
    """Cosine similarity of local-speaker fingerprints in different chunks, for pairs of
    the same voice and of different voices (each local speaker is the voice it overlaps
    most): the calibration data of the global threshold."""
    from saywho.longform.store import DirectoryChunkStore

    store = DirectoryChunkStore(work / "chunks")
    plan = json.loads((work / "chunks" / "plan.json").read_text())["plan"]
    items = []
    for c in plan["chunks"]:
        t0 = c["start"] / 16_000
        result = store.load_result(c["index"])
        for label in result.speakers_detected:
            overlap: dict[str, float] = {}
            for t in result.segments:
                if t.speaker == label:
                    for a, b, voice in reference:
                        o = min(b, t.end + t0) - max(a, t.start + t0)
                        if o > 0:
                            overlap[voice] = overlap.get(voice, 0.0) + o
            if overlap and label in result.fingerprints:
                items.append((c["index"], max(overlap, key=overlap.get), np.asarray(result.fingerprints[label])))
    same, different = [], []
    for i, (ci, vi, xi) in enumerate(items):
        for cj, vj, xj in items[i + 1:]:
            if ci != cj:
                (same if vi == vj else different).append(float(xi @ xj))
    summary = {}
    for name, values in (("same_voice", same), ("different_voices", different)):
        if values:
            summary[name] = [round(float(v), 3) for v in np.percentile(values, [0, 5, 50, 95, 100])]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 15, 60])
    parser.add_argument("--chunk-minutes", type=float, default=5.0)
    parser.add_argument("--work", default="/tmp/saywho-longform-bench")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--no-models", action="store_true",
                        help="chunks go to a worker without models: peak RSS of the long-file machinery alone")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], float(args.child[1]), args.child[2], args.child[3], args.no_models)
        return

    rows = []
    for minutes in args.minutes:
        work = Path(args.work) / f"{minutes:g}min"
        work.mkdir(parents=True, exist_ok=True)
        audio = work / "meeting.wav"
        ref_path = work / "reference.json"
        if not ref_path.exists() or not audio.exists():
            reference = build(audio, minutes)
            ref_path.write_text(json.dumps(reference))
        reference = [tuple(x) for x in json.loads(ref_path.read_text())]
        data = measure(audio, args.chunk_minutes * 60, work, args.no_models)
        if args.no_models:
            row = {"minutes": minutes, "duration_s": round(data["duration"], 1), "no_models": True,
                   "peak_rss_mb": round(data["peak_rss_mb"], 1), "wall_s": round(data["wall_s"], 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        stitched, separate = ders(reference, data, work)
        print("fingerprint similarity across chunks (min, p5, median, p95, max):",
              json.dumps(similarities(reference, work)), flush=True)
        row = {
            "minutes": minutes,
            "duration_s": round(data["duration"], 1),
            "peak_rss_mb": round(data["peak_rss_mb"], 1),
            "rtf": round(data["wall_s"] / data["duration"], 3),
            "der_long": round(100 * stitched, 2),
            "der_separate_files": round(100 * separate, 2),
            "speakers_found": data["speakers"],
            "speakers_true": len({s for _, _, s in reference}),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if len(rows) > 1:
        base = rows[0]["peak_rss_mb"]
        for row in rows[1:]:
            print(f"peak RSS {row['minutes']:g} min / {rows[0]['minutes']:g} min = {row['peak_rss_mb'] / base:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
