"""Speed and peak memory of ``saywho transcribe`` against audio length (issue 7, item 1).

    .venv/bin/python bench/speed_vs_length.py --minutes 1 5 15 60

For each length an input is built by concatenating the dev recordings (all of
../shared/data/dev, in a fixed order, repeated; 0.5 s of silence between pieces) into
a 16 kHz WAV, then ``python -m saywho transcribe FILE -f json --no-identify -q`` runs
in a fresh child process, exactly as a user would run it (diarization on, default
model tiny.en, int8, all threads). Files longer than a chunk (5 min) plus a minute go
through ``saywho.longform.transcribe_long``, as the CLI routes them. Wall time and the
child's peak RSS (``os.wait4`` rusage, models included) are recorded.

Results accumulate in bench/results/speed_vs_length.json (one entry per length, the
latest run wins), so a long run (60 min) can be measured separately, e.g. in the
background, and the section and plot are redrawn from all stored entries.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report

RESULTS = report.ROOT / "bench" / "results" / "speed_vs_length.json"
PLOT = report.IMG / "speed_vs_length.png"
RATE = 16_000


def dev_pieces(dev: Path) -> list[np.ndarray]:
    from scipy.io import wavfile

    pieces = []
    for path in sorted(dev.glob("*/*.wav")):
        sr, data = wavfile.read(path)
        if sr != RATE:
            continue
        x = data.astype(np.float32) / (32768.0 if data.dtype == np.int16 else 1.0)
        pieces.append(x.mean(axis=1) if x.ndim == 2 else x)
    return pieces


def build(path: Path, minutes: float, pieces: list[np.ndarray]) -> None:
    """Write ``minutes`` of concatenated dev speech to ``path`` (int16 WAV), piece by piece."""
    import wave

    target = int(minutes * 60 * RATE)
    gap = np.zeros(RATE // 2, np.float32)
    written = 0
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        i = 0
        while written < target:
            x = np.concatenate([pieces[i % len(pieces)], gap])[: target - written]
            w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
            written += len(x)
            i += 1


def tree_rss_mib(root: int) -> float:
    """Resident memory of ``root`` and all its descendants right now (MiB), from /proc."""
    parent, rss = {}, {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        rss[int(entry)] = int(fields[21]) * page
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += [c for c, pp in parent.items() if pp == pid]
    return total / 2**20


class TreeSampler(threading.Thread):
    """The largest sum of the RSS of a process tree, sampled every 0.2 s (a chunked run's
    parent and its worker process hold memory at the same time; ru_maxrss reports the
    largest single process)."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak, self.stopped = root, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            self.peak = max(self.peak, tree_rss_mib(self.root))


def measure(audio: Path, out_dir: Path) -> dict:
    cmd = [
        str(report.PYTHON),
        "-m",
        "saywho",
        "transcribe",
        str(audio),
        "-f",
        "json",
        "--no-identify",
        "-q",
        "-o",
        str(out_dir),
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    sampler.stopped.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"saywho transcribe failed ({proc.returncode}): {err.strip()[-500:]}")
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_tree_rss_mib": round(sampler.peak, 1),
    }


def render(results: dict) -> str:
    rows = []
    for key in sorted(results, key=float):
        r = results[key]
        minutes = float(key)
        rows.append(
            [
                f"{minutes:g}",
                "long-form (chunked)" if minutes * 60 > 360 else "single pass",
                f"{r['wall_s']:.1f}",
                f"{r['wall_s'] / (minutes * 60):.3f}",
                f"{minutes * 60 / r['wall_s']:.1f}x",
                f"{r['cpu_s']:.0f}",
                f"{r['peak_rss_mib']:.0f}",
                f"{r['peak_tree_rss_mib']:.0f}" if "peak_tree_rss_mib" in r else "",
                f"{r['load']}",
                r["date"],
                r["commit"],
            ]
        )
    return report.table(
        [
            "audio (min)",
            "path",
            "wall (s)",
            "RTF",
            "speed",
            "CPU (s)",
            "peak RSS (MiB)",
            "peak of the process tree (MiB)",
            "load avg (median)",
            "date",
            "commit",
        ],
        rows,
    )


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(results, key=float)
    minutes = [float(k) for k in keys]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(minutes, [results[k]["wall_s"] / 60 for k in keys], "o-", label="wall time")
    a.plot(minutes, [results[k]["cpu_s"] / 60 for k in keys], "s-", label="CPU time (user + sys)")
    a.plot(minutes, minutes, "--", color="grey", label="real time")
    a.set_xlabel("audio length (min)")
    a.set_ylabel("minutes")
    a.set_title("saywho transcribe: time")
    a.legend()
    b.plot(minutes, [results[k]["peak_rss_mib"] for k in keys], "o-", color="tab:red")
    b.set_xlabel("audio length (min)")
    b.set_ylabel("peak RSS (MiB)")
    b.set_ylim(bottom=0)
    b.set_title("saywho transcribe: peak memory")
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 15, 60])
    parser.add_argument("--render-only", action="store_true", help="redraw the section from stored results")
    args = parser.parse_args(argv)

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if not args.render_only:
        pieces = dev_pieces(report.require_dev())
        if not pieces:
            print("no 16 kHz dev recordings found: nothing to measure")
            return 0
        with tempfile.TemporaryDirectory(prefix="saywho-bench-") as tmp:
            for minutes in args.minutes:
                audio = Path(tmp) / f"dev_{minutes:g}min.wav"
                build(audio, minutes, pieces)
                with report.LoadSampler() as load:
                    r = measure(audio, Path(tmp))
                audio.unlink()
                r.update(
                    load=round(report.median(load.samples), 1),
                    date=f"{load.started:%Y-%m-%d %H:%M}",
                    commit=load.commit.split()[0],
                )
                print(f"{minutes:g} min: {r}", flush=True)
                # Re-read first: another run (say, the 60-minute one) may have stored results meanwhile.
                results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
                results[f"{minutes:g}"] = r
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    if not results:
        print("no results yet")
        return 0
    plot(results)
    missing = [m for m in ("1", "5", "15", "60") if m not in results]
    body = (
        "## 1. Speed and peak memory against audio length\n\n"
        "- Command (one row): `.venv/bin/python bench/speed_vs_length.py --minutes N` "
        "(results accumulate in `bench/results/speed_vs_length.json`; `--render-only` redraws)\n"
        "- What runs: `python -m saywho transcribe FILE -f json --no-identify -q` in a fresh process "
        "(tiny.en int8, diarization on, all threads); input = the dev recordings concatenated to N minutes. "
        "Files over 6 minutes go through the chunked long-form path (5-minute chunks, 1 worker). Long-form "
        "rows dated 2026-12-04 or later ran each chunk in a fresh worker process (`--chunks-per-worker 1`, the "
        "default since then); earlier rows ran the chunks in the command's own process.\n"
        f"- Machine: {report.machine()}\n"
        "- Each row carries its own date, commit and median load average (1 min); "
        "the machine was shared, so wall times are pessimistic.\n"
        "- RTF = wall time / audio duration; CPU = user + system seconds of the child (less sensitive to the "
        "machine's load than wall time); peak RSS: the largest single process (ru_maxrss, models "
        "included); peak of the process tree: the largest sum over the command and its worker processes at one "
        "moment (sampled every 0.2 s; empty for rows measured before it existed).\n\n"
        + render(results)
        + (
            f"\nNot measured yet: {', '.join(missing)} min. Measure with `.venv/bin/python bench/speed_vs_length.py "
            f"--minutes {' '.join(missing)}`; on the shared 2-core machine it could not finish within the "
            "benchmarking session, so no figure is given rather than an extrapolated one.\n"
            if missing
            else ""
        )
        + "\n![time and peak memory against audio length](img/speed_vs_length.png)\n"
    )
    report.write_section("speed_vs_length", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
