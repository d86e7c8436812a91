"""``saywho eval`` on the shared dev set, its tables copied into docs/BENCHMARKS.md.

    .venv/bin/python bench/eval_dev.py

Runs, from the repository root,

    saywho eval ../shared/data/dev/diarization --plots docs/img/eval -q
    saywho eval ../shared/data/dev/asr --plots docs/img/eval -q

and writes their Markdown reports (per file and pooled) with the git commit the figures
were measured at.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report

SETS = ("diarization", "asr")


def main() -> int:
    report.require_dev()
    parts = []
    with report.LoadSampler() as load:
        for name in SETS:
            data = report.require_dev(name)
            rel = f"../shared/data/dev/{data.name}"
            cmd = [str(report.PYTHON), "-m", "saywho", "eval", rel, "--plots", "docs/img/eval", "-q"]
            proc = subprocess.run(cmd, cwd=report.ROOT, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"saywho eval {rel} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
                return 1
            print(proc.stdout)
            plots = sorted((report.IMG / "eval").glob("*.png"))
            parts.append(
                f"### `saywho eval {rel} --plots docs/img/eval`\n\n{demote(proc.stdout).strip()}\n"
                + ("" if name != SETS[-1] else "".join(f"\n![{p.stem}](img/eval/{p.name})\n" for p in plots))
            )
    body = (
        report.header(
            "Accuracy on the dev set (`saywho eval`)", load, command=".venv/bin/python bench/eval_dev.py"
        )
        + "Figures from `saywho eval` (tiny.en int8, diarization on, no speaker count given, anonymous labels). "
        "The diarization settings were still being tuned when these were measured: the commit above is the "
        "one they belong to.\n\n" + "\n".join(parts)
    )
    report.write_section("eval", body)
    return 0


def demote(markdown: str) -> str:
    """Headings of the eval report one level down, under this section's heading."""
    return "\n".join("###" + line if line.startswith("#") else line for line in markdown.splitlines())


if __name__ == "__main__":
    sys.exit(main())
