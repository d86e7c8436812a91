"""Time per diarization step and its share of the total (issue 7, item 3).

    .venv/bin/python bench/diarization_steps.py [--repeats 3] [--long-minutes 5]

Runs ``saywho.diarization.diarize`` (the in-memory pipeline, models loaded beforehand)
on each dev diarization recording and on a ``--long-minutes`` concatenation of them,
with timers wrapped around the stage functions it calls:

- segmentation: ``segmentation.segment`` (sliding-window pyannote segmentation);
- embedding: ``embedding.fbank`` + ``embedding.masked_frames`` + ``embedding.embed_frame_sets``;
- clustering: ``clustering.cluster`` + ``clustering.centroids`` + ``clustering.assign_distinct``;
- other: the rest of ``diarize`` (normalisation, reconstruction, turns).

Each figure is the median over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report

STEPS = {
    "segmentation": ("segmentation", ("segment",)),
    "embedding": ("embedding", ("fbank", "masked_frames", "embed_frame_sets")),
    "clustering": ("clustering", ("cluster", "centroids", "assign_distinct")),
}


def instrument(spent: dict[str, float]) -> None:
    """Wrap the stage functions so that their time adds up in ``spent[step]``."""
    for step, (module_name, names) in STEPS.items():
        module = importlib.import_module(f"saywho.{module_name}")
        for name in names:
            original = getattr(module, name)

            @functools.wraps(original)
            def timed(*args, _f=original, _step=step, **kwargs):
                t0 = time.perf_counter()
                try:
                    return _f(*args, **kwargs)
                finally:
                    spent[_step] += time.perf_counter() - t0

            setattr(module, name, timed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-minutes", type=float, default=5.0, help="0 to skip the long input")
    args = parser.parse_args(argv)

    data = report.require_dev("diarization")
    from saywho.audio.decode import load_audio
    from saywho.diarization import embedding, segmentation

    diarize_module = importlib.import_module("saywho.diarization.pipeline")
    files = {p.stem: load_audio(str(p)).samples for p in sorted(data.glob("*.wav"))}
    if not files:
        print(f"no recordings in {data}: nothing to measure")
        return 0
    if args.long_minutes > 0:
        gap = np.zeros(8000, np.float32)
        joined = np.concatenate([x for a in files.values() for x in (a, gap)])
        reps = int(np.ceil(args.long_minutes * 60 * 16_000 / len(joined)))
        files[f"dev x{reps} ({args.long_minutes:g} min)"] = np.tile(joined, reps)[
            : int(args.long_minutes * 960_000)
        ]
    segmentation.get_model()
    embedding.get_model()
    spent: dict[str, float] = defaultdict(float)
    instrument(spent)
    diarize_module.diarize(files[next(iter(files))])  # warm-up, untimed

    rows = []
    pooled: dict[str, float] = defaultdict(float)
    with report.LoadSampler() as load:
        for name, audio in files.items():
            runs: dict[str, list[float]] = defaultdict(list)
            for _ in range(args.repeats):
                spent.clear()
                t0 = time.perf_counter()
                diarize_module.diarize(audio)
                total = time.perf_counter() - t0
                for step in STEPS:
                    runs[step].append(spent[step])
                runs["other"].append(total - sum(spent[s] for s in STEPS))
                runs["total"].append(total)
            med = {k: report.median(v) for k, v in runs.items()}
            if not name.startswith("dev x"):
                for k, v in med.items():
                    pooled[k] += v
            dur = len(audio) / 16_000
            print(f"{name}: " + ", ".join(f"{k} {v:.2f}s" for k, v in med.items()), flush=True)
            rows.append(row(name, dur, med))
    short = [k for k in files if not k.startswith("dev x")]
    rows.insert(
        len(short),
        row(f"**sum of the {len(short)} dev files**", sum(len(files[k]) for k in short) / 16_000, pooled),
    )
    body = (
        report.header("3. Time per diarization step", load)
        + f"`saywho.diarization.diarize` on in-memory audio, models preloaded, torch CPU; median of {args.repeats} "
        "runs per file. Each cell: seconds (share of the total). Step boundaries: segmentation = "
        "`segmentation.segment`; embedding = `embedding.fbank` + `masked_frames` + `embed_frame_sets`; "
        "clustering = `clustering.cluster` + `centroids` + `assign_distinct`; other = the rest of `diarize` "
        "(normalisation, reconstruction, turns).\n\n"
        + report.table(
            ["file", "audio (s)", "segmentation", "embedding", "clustering", "other", "total (s)", "RTF"],
            rows,
        )
    )
    report.write_section("diarization_steps", body)
    return 0


def row(name: str, duration: float, med: dict[str, float]) -> list[object]:
    total = med["total"]
    cells = [
        f"{med[k]:.2f} ({med[k] / total:.0%})" for k in ("segmentation", "embedding", "clustering", "other")
    ]
    return [name, f"{duration:.0f}", *cells, f"{total:.2f}", f"{total / duration:.3f}"]


if __name__ == "__main__":
    sys.exit(main())
