"""Diarization accuracy on the shared dev set: pooled DER (no collar, overlap scored) <= 20 %."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).parents[1] / ".." / "shared"
DATA = SHARED / "data" / "dev" / "diarization"

pytestmark = pytest.mark.slow


def _bench():
    """bench/der_dev.py, loaded by path (bench/ is not a package)."""
    path = Path(__file__).parents[1] / "bench" / "der_dev.py"
    spec = importlib.util.spec_from_file_location("der_dev", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("der_dev", module)
    spec.loader.exec_module(module)
    return module


def test_pooled_der_on_the_dev_set():
    if not SHARED.is_dir() or not DATA.is_dir():
        pytest.skip("../shared (the dev set) is absent")
    pytest.importorskip("pyannote.metrics")
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    bench = _bench()
    diarize = importlib.import_module("saywho.diarization.pipeline").diarize
    files = bench.dev_files(DATA)
    assert files, "no dev recordings"
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    per_file = {}
    for f in files:
        audio = bench.load_wav(f.wav)
        reference, uem = bench.load_reference(f)
        if uem is None:
            uem = Timeline([Segment(0.0, len(audio) / 16_000)], uri=f.uri)
        per_file[f.uri] = metric(reference, bench.to_annotation(diarize(audio), f.uri), uem=uem)
    pooled = abs(metric)
    assert pooled <= 0.20, f"pooled DER {pooled:.1%} (per file: {per_file})"
