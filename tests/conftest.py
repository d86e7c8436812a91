"""Shared fixtures: paths, the dev set (optional), and speech the tests make themselves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV = SHARED / "data" / "dev"


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/system-deps.sh installs it)")


@pytest.fixture(scope="session")
def dev_dir() -> Path:
    if not DEV.is_dir():
        pytest.skip("../shared/data/dev is absent")
    return DEV


@pytest.fixture(scope="session")
def three_voices(tmp_path_factory: pytest.TempPathFactory):
    """A ~45 s conversation of four synthetic voices with exact reference turns."""
    require_tools("flite", "espeak-ng")
    from saywho.evaluation.synth import conversation, demo_lines

    voices = ["flite:slt", "flite:awb", "piper:joe", "flite:rms"]
    conv = conversation(demo_lines(voices, 12), gap_s=0.6)
    path = conv.write(tmp_path_factory.mktemp("speech") / "four_voices.wav")
    return conv, path
