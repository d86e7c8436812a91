"""DER of saywho's diarization on the shared dev set, and its real-time factor.

    .venv/bin/python bench/der_dev.py [--data DIR] [--rttm-out DIR]

No speaker count is given to the pipeline. DER is scored with no collar and overlap
included (pyannote.metrics collar=0.0, skip_overlap=False), per file and pooled; the
0.25 s collar figure (md-eval convention, pyannote.metrics collar=0.5) is printed too.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dev" / "diarization"


@dataclass(frozen=True)
class DevFile:
    uri: str
    wav: Path
    rttm: Path
    uem: Path | None


def dev_files(data: Path) -> list[DevFile]:
    """The dev recordings with their references (sample.wav; dev00/dev01 from AMI)."""
    files = [DevFile("sample", data / "sample.wav", data / "sample.rttm", None)]
    for uri in ("dev00", "dev01"):
        files.append(DevFile(uri, data / f"{uri}.wav", data / "ami_dev.rttm", data / "ami_dev.uem"))
    return [f for f in files if f.wav.is_file()]


def load_wav(path: Path) -> np.ndarray:
    """16 kHz mono float32 from a WAV file (int16 or float32)."""
    from scipy.io import wavfile

    sr, data = wavfile.read(path)
    if sr != 16_000:
        raise SystemExit(f"{path}: expected 16 kHz, got {sr}")
    if data.dtype == np.int16:
        data = data.astype(np.float32) / 32768.0
    data = data.astype(np.float32)
    return data.mean(axis=1) if data.ndim == 2 else data


def load_reference(f: DevFile):
    """(reference Annotation, scored Timeline) for one dev file."""
    from pyannote.core import Annotation, Segment, Timeline

    reference = Annotation(uri=f.uri)
    for line in f.rttm.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0] == "SPEAKER" and parts[1] == f.uri:
            start, dur = float(parts[3]), float(parts[4])
            reference[Segment(start, start + dur)] = parts[7]
    uem = None
    if f.uem is not None and f.uem.is_file():
        spans = [
            Segment(float(p[2]), float(p[3]))
            for p in (line.split() for line in f.uem.read_text().splitlines())
            if len(p) >= 4 and p[0] == f.uri
        ]
        uem = Timeline(spans, uri=f.uri) if spans else None
    return reference, uem


def to_annotation(diarization, uri: str):
    from pyannote.core import Annotation, Segment

    hypothesis = Annotation(uri=uri)
    for i, turn in enumerate(diarization.turns):
        hypothesis[Segment(turn.start, turn.end), i] = turn.speaker
    return hypothesis


def write_rttm(diarization, uri: str, path: Path) -> None:
    lines = [
        f"SPEAKER {uri} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {t.speaker} <NA> <NA>"
        for t in diarization.turns
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dev diarization directory")
    parser.add_argument("--rttm-out", type=Path, default=None, help="write hypothesis RTTMs here")
    args = parser.parse_args(argv)

    if not args.data.is_dir():
        print(f"dev set not found at {args.data.resolve()} (../shared absent?): nothing to score")
        return 0
    files = dev_files(args.data)
    if not files:
        print(f"no dev recordings in {args.data}: nothing to score")
        return 0

    import importlib

    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    from saywho.diarization import embedding, segmentation

    # The pipeline module (saywho.diarize is the package-level function).
    diarize_module = importlib.import_module("saywho.diarization.pipeline")

    segmentation.get_model()  # load once, outside the timings
    embedding.get_model()
    strict = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    collar = DiarizationErrorRate(collar=0.5, skip_overlap=False)
    total_audio = total_time = 0.0
    header = f"{'file':<8} {'dur(s)':>6} {'ref':>3} {'hyp':>3} {'DER':>6} {'miss':>6} {'FA':>6} {'conf':>6} {'DER@.25':>7} {'time(s)':>7}"
    print(header)
    print("-" * len(header))
    for f in files:
        audio = load_wav(f.wav)
        t0 = time.perf_counter()
        result = diarize_module.diarize(audio)
        elapsed = time.perf_counter() - t0
        duration = len(audio) / 16_000
        total_audio += duration
        total_time += elapsed
        reference, uem = load_reference(f)
        if uem is None:
            uem = Timeline([Segment(0.0, duration)], uri=f.uri)
        hypothesis = to_annotation(result, f.uri)
        if args.rttm_out is not None:
            args.rttm_out.mkdir(parents=True, exist_ok=True)
            write_rttm(result, f.uri, args.rttm_out / f"{f.uri}.rttm")
        d = strict(reference, hypothesis, uem=uem, detailed=True)
        c = collar(reference, hypothesis, uem=uem)
        total = max(d["total"], 1e-9)
        print(
            f"{f.uri:<8} {duration:6.1f} {len(reference.labels()):3d} {len(result.speakers):3d} "
            f"{d['diarization error rate']:6.1%} {d['missed detection'] / total:6.1%} "
            f"{d['false alarm'] / total:6.1%} {d['confusion'] / total:6.1%} {c:7.1%} {elapsed:7.2f}"
        )
    print("-" * len(header))
    pooled = abs(strict)
    print(f"{'pooled':<8} {total_audio:6.1f} {'':3} {'':3} {pooled:6.1%} {'':6} {'':6} {'':6} {abs(collar):7.1%} {total_time:7.2f}")
    print(f"\npooled DER (no collar, overlap scored): {pooled:.2%}")
    print(f"pooled DER (0.25 s collar, pyannote collar=0.5): {abs(collar):.2%}")
    print(f"diarization real-time factor: {total_time / total_audio:.3f} ({total_audio / total_time:.1f}x real time)")
    print(f"thresholds: cosine={diarize_module.clustering.COSINE_THRESHOLD} step={diarize_module.STEP_S}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
