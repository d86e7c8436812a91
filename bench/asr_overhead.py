"""Overhead of saywho's ASR path over bare faster-whisper (issue 7, item 2; target <= 1.05x).

    .venv/bin/python bench/asr_overhead.py [--repeats 6] [--threads 2] [--seconds 60]

One process, one ``WhisperModel`` object (the bundled tiny.en, int8, ``cpu_threads``),
one in-memory 16 kHz clip (the dev recordings concatenated to ``--seconds``). Side A is
bare faster-whisper with exactly the decoding options saywho passes (see
``saywho.asr.transcribe``), consuming the lazy segments and their words; side B is
``saywho.pipeline.run_asr(audio, TranscribeOptions(diarize=False, ...))`` with a model
manager that hands out the same model object. After one untimed warm-up of each, the
pairs run interleaved in ABBA order (A B, B A, A B, ...) so drift in the machine's load
hits both sides alike; the ratio of medians B/A is reported, and the transcripts are
checked to be identical.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report


def clip(seconds: float) -> np.ndarray:
    from saywho.audio.decode import load_audio

    dev = report.require_dev()
    names = ["diarization/sample.wav", "asr/jfk.wav", "diarization/dev00.wav", "asr/1221-135766-0001.wav"]
    pieces = [load_audio(str(dev / n)).samples for n in names if (dev / n).is_file()]
    audio = np.concatenate(pieces)
    while len(audio) < seconds * 16_000:
        audio = np.concatenate([audio, audio])
    return np.ascontiguousarray(audio[: int(seconds * 16_000)], dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=6, help="timed runs per side")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="cpu_threads for both sides")
    parser.add_argument("--seconds", type=float, default=60.0, help="clip length")
    args = parser.parse_args(argv)

    audio = clip(args.seconds)
    from faster_whisper import WhisperModel

    from saywho.models.manager import ModelManager
    from saywho.models.registry import resolve_asr_model
    from saywho.pipeline import run_asr
    from saywho.types import TranscribeOptions

    options = TranscribeOptions(diarize=False, cpu_threads=args.threads, identify=False)
    model_dir = resolve_asr_model(options.model)
    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=args.threads)
    manager = ModelManager(lambda key: model, ttl_s=-1)

    def bare() -> str:
        segments, _info = model.transcribe(
            audio,
            language=None,
            task="transcribe",
            beam_size=options.beam_size,
            temperature=options.temperature,
            initial_prompt=None,
            word_timestamps=True,
            vad_filter=options.vad_filter,
            condition_on_previous_text=False,
        )
        texts = []
        for s in segments:
            texts.append(s.text)
            _ = [(w.start, w.end, w.word, w.probability) for w in s.words or ()]
        return "".join(texts)

    def saywho() -> str:
        return "".join(s.text for s in run_asr(audio, options, manager=manager).segments)

    sides = {"bare faster-whisper": bare, "saywho run_asr": saywho}
    times: dict[str, list[float]] = {k: [] for k in sides}
    with report.LoadSampler() as load:
        texts = {k: f() for k, f in sides.items()}  # warm-up, untimed
        for i in range(args.repeats):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for k in order:
                t0 = time.perf_counter()
                sides[k]()
                times[k].append(time.perf_counter() - t0)
            print(f"pair {i + 1}: " + ", ".join(f"{k} {times[k][-1]:.2f}s" for k in sides), flush=True)
    a, b = (report.median(times[k]) for k in sides)
    same = texts["bare faster-whisper"] == texts["saywho run_asr"]
    ratio = b / a
    paired = report.median([y / x for x, y in zip(*times.values(), strict=True)])
    print(f"median bare {a:.2f}s, saywho {b:.2f}s, ratio {ratio:.3f}, identical text: {same}")
    rows = [
        [k, f"{report.median(v):.2f}", f"{min(v):.2f}", f"{max(v):.2f}", " ".join(f"{x:.2f}" for x in v)]
        for k, v in times.items()
    ]
    body = (
        report.header("2. ASR overhead: saywho against bare faster-whisper", load)
        + f"Same model object (bundled tiny.en, int8, cpu_threads={args.threads}), same {args.seconds:g} s clip "
        f"(dev recordings concatenated), same decoding options (beam {options.beam_size}, temperature fallback "
        f"{options.temperature}, word timestamps, VAD filter {options.vad_filter}, "
        "condition_on_previous_text off); "
        f"{args.repeats} timed runs per side after one warm-up each, interleaved ABBA.\n\n"
        + report.table(["side", "median (s)", "min (s)", "max (s)", "all runs (s)"], rows)
        + f"\n**Ratio of medians saywho / bare: {ratio:.3f}** (target <= 1.05; "
        f"{'met' if ratio <= 1.05 else 'NOT met'}). Median of the per-pair ratios (less sensitive to load drift): "
        f"{paired:.3f}. Transcripts identical: {'yes' if same else 'no'}.\n"
    )
    report.write_section("asr_overhead", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
