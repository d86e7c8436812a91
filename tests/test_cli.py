"""The CLI: help, version, models, and bad input answered with one line and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from saywho import __version__


def saywho(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "saywho", *args], capture_output=True, text=True,
                          timeout=300, check=False, cwd=cwd)


def test_version() -> None:
    r = saywho("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"saywho {__version__}"


def test_help_lists_commands() -> None:
    r = saywho("--help")
    assert r.returncode == 0
    for cmd in ("transcribe", "models"):
        assert cmd in r.stdout
    r = saywho("transcribe", "--help")
    for opt in ("--format", "--model", "--language", "--num-speakers", "--min-speakers", "--max-speakers",
                "--no-diarize", "--quiet", "--output"):
        assert opt in r.stdout


def test_models_lists_bundled() -> None:
    r = saywho("models")
    assert r.returncode == 0
    for alias in ("tiny.en", "base", "pyannote-segmentation-3.0", "campplus"):
        assert alias in r.stdout


def _one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


@pytest.mark.parametrize("content", [b"", b"not audio, just some text\n" * 10, bytes(range(256)) * 20])
def test_bad_files_give_one_line(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    line = _one_line_error(saywho("transcribe", str(bad)))
    assert line.startswith("saywho: error:") and "bad.wav" in line


def test_missing_file(tmp_path: Path) -> None:
    line = _one_line_error(saywho("transcribe", str(tmp_path / "missing.mp3")))
    assert "no such file" in line


def test_conflicting_speaker_counts(tmp_path: Path) -> None:
    line = _one_line_error(saywho("transcribe", "x.wav", "--num-speakers", "2", "--max-speakers", "3"))
    assert "not both" in line
    line = _one_line_error(saywho("transcribe", "x.wav", "--min-speakers", "4", "--max-speakers", "2"))
    assert "larger than" in line
    line = _one_line_error(saywho("transcribe", "x.wav", "--num-speakers", "0"))
    assert "from 1 to 64" in line


def test_unknown_model(tmp_path: Path) -> None:
    import numpy as np

    from saywho.audio.decode import write_wav

    wav = tmp_path / "a.wav"
    write_wav(wav, np.zeros(16000, np.float32))
    line = _one_line_error(saywho("transcribe", str(wav), "--model", "no-such-model", "--no-diarize"))
    assert "unknown model" in line


def test_unknown_format_is_a_usage_error() -> None:
    r = saywho("transcribe", "x.wav", "--format", "docx")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_several_files_keep_going_after_a_bad_one(tmp_path: Path) -> None:
    import numpy as np

    from saywho.audio.decode import write_wav

    good = tmp_path / "silence.wav"
    write_wav(good, np.zeros(32000, np.float32))
    bad = tmp_path / "bad.wav"
    bad.write_text("nope")
    out = tmp_path / "out"
    r = saywho("transcribe", str(bad), str(good), "-o", str(out), "-f", "json", "--no-diarize", "-q")
    assert r.returncode == 1 and "bad.wav" in r.stderr
    assert (out / "silence.json").is_file()  # the good file was still transcribed


def test_a_device_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    import torch

    line = _one_line_error(saywho("transcribe", "x.wav", "--device", "gpu"))
    assert "cpu, cuda or cuda:N" in line
    line = _one_line_error(saywho("diarize", "x.wav", "--device", "cuda:x"))
    assert "cpu, cuda or cuda:N" in line
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU (cuda:0 on a CPU-only machine)
    line = _one_line_error(saywho("diarize", "x.wav", "--device", missing))
    assert f"device '{missing}' is not available" in line


def test_the_library_checks_the_device_before_loading_anything() -> None:
    import numpy as np
    import torch

    import saywho
    from saywho.errors import InvalidOptionError
    from saywho.runtime import check_device, split_device
    from saywho.types import DiarizeOptions, TranscribeOptions

    assert split_device("cuda:1") == ("cuda", 1) and split_device("cpu") == ("cpu", 0)
    check_device("cpu")
    for bad in ("cpu:1", "tpu", "cuda:-1"):
        with pytest.raises(InvalidOptionError):
            check_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(InvalidOptionError, match="no CUDA GPU"):
            saywho.transcribe(np.zeros(16000, np.float32), TranscribeOptions(device="cuda"))
        with pytest.raises(InvalidOptionError, match="no CUDA GPU"):
            saywho.diarize(np.zeros(16000, np.float32), DiarizeOptions(device="cuda"))
