"""``saywho eval`` on the shared dev set through the real pipeline (real models: slow).

Skips cleanly when ../shared is absent or the pipeline is not importable. Bounds are
loose sanity checks, not accuracy targets: they catch a broken scorer or pipeline.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DEV = SHARED / "data" / "dev"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEV.is_dir(), reason="../shared/data/dev is absent"),
    pytest.mark.skipif(importlib.util.find_spec("saywho.pipeline") is None, reason="saywho.pipeline missing"),
]


def _eval(capsys: pytest.CaptureFixture[str], dataset: Path) -> dict:
    pytest.importorskip("pyannote.metrics")
    pytest.importorskip("jiwer")
    import saywho.cli.app as cli

    assert cli.main(["eval", str(dataset), "--json", "-q"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_dev_diarization(capsys: pytest.CaptureFixture[str]):
    report = _eval(capsys, DEV / "diarization")
    # The dev set's 7 clips: 2-4 speakers each (README of ../shared/data/dev).
    speakers = {"sample": 2, "dev00": 2, "dev01": 2, "trn00": 3, "trn03": 2, "trn06": 3, "trn08": 4}
    assert {f["uri"] for f in report["files"]} == set(speakers)
    pooled = report["pooled"]
    der, collared = pooled["der"], pooled["der_collar"]
    assert der["total_s"] > 180  # about 190 s of reference speech, overlap counted per speaker
    parts = der["missed_rate"] + der["false_alarm_rate"] + der["confusion_rate"]
    assert der["der"] == pytest.approx(parts)
    assert collared["der"] <= der["der"]  # the collar only removes scored time
    assert der["der"] < 0.5
    assert 0 <= pooled["jer"]["jer"] <= 1
    assert pooled["rtf"] > 0 and pooled["peak_memory_mib"] > 0
    for f in report["files"]:
        assert f["speakers"]["reference"] == speakers[f["uri"]]
        assert f["speakers"]["hypothesis"] >= 1


def test_eval_dev_asr(capsys: pytest.CaptureFixture[str]):
    report = _eval(capsys, DEV / "asr")
    files = {f["uri"]: f for f in report["files"]}
    assert set(files) == {
        "jfk",
        "1089-134686-0001",
        "1221-135766-0001",
        "1221-135766-0002",
        "stereo_diarization",
    }
    assert report["pooled"]["wer"]["reference_words"] == 22 + 18 + 48 + 11
    assert report["pooled"]["wer"]["wer"] < 0.25
    assert files["jfk"]["wer"]["wer"] < 0.1
    assert files["stereo_diarization"]["cpwer"]["reference_words"] == 17 + 5
    assert 0 <= files["stereo_diarization"]["cpwer"]["cpwer"] <= 1.5
