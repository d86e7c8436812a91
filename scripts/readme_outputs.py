"""Refresh the README's real-output blocks: what `make demo` prints and the CLI's help.

    .venv/bin/python scripts/readme_outputs.py

Runs the installed ``saywho`` command and replaces the text between the
``<!-- demo-output -->`` and ``<!-- cli-help -->`` markers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAYWHO = [sys.executable, "-m", "saywho"]


def run(*args: str) -> str:
    done = subprocess.run([*SAYWHO, *args], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "COLUMNS": "80"})
    return done.stdout


def replace(text: str, marker: str, body: str) -> str:
    begin, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    a, b = text.index(begin) + len(begin), text.index(end)
    return text[:a] + "\n```\n" + body.rstrip() + "\n```\n" + text[b:]


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    demo = "== saywho transcribe samples/meeting.flac\n" + run("transcribe", "samples/meeting.flac", "-q")
    text = replace(text, "demo-output", demo)
    helps = [("--help",), ("transcribe", "--help"), ("diarize", "--help")]
    body = "\n".join(f"$ saywho {' '.join(h)}\n{run(*h).rstrip()}\n" for h in helps)
    text = replace(text, "cli-help", body)
    readme.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
