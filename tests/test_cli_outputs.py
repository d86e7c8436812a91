"""Where ``saywho transcribe`` writes: names that never collide, the format from ``-o``,
an error for several inputs into one file, one "wrote PATH" line per output (none with
``-q``), log lines above the progress bar, "interrupted" on Ctrl-C."""

from __future__ import annotations

import io
import logging
import shutil
import sys
from pathlib import Path

import pytest

from saywho.cli import outputs
from saywho.cli.app import main

from .conftest import require_tools


def test_inputs_with_the_same_name_keep_their_relative_paths(tmp_path) -> None:
    files = [str(tmp_path / "a" / "x.wav"), str(tmp_path / "b" / "x.wav"), str(tmp_path / "b" / "y.wav")]
    assert outputs.targets(files, "out/", "txt") == [Path("out/a/x.txt"), Path("out/b/x.txt"), Path("out/b/y.txt")]
    assert outputs.targets(files[1:], "out/", "srt") == [Path("out/x.srt"), Path("out/y.srt")]
    with pytest.raises(Exception, match="the same input is given twice"):
        outputs.targets([files[0], files[0]], "out/", "txt")


@pytest.mark.parametrize(("output", "expected"), [
    ("notes.srt", "srt"), ("notes.VTT", "vtt"), ("notes.json", "json"), ("notes.rttm", "rttm"),
    ("notes.txt", "txt"), ("notes.md", "txt"), ("out/", "txt"), (None, "txt"),
])
def test_the_format_follows_the_output_extension(output, expected) -> None:
    allowed = ("txt", "json", "srt", "vtt", "rttm")
    assert outputs.format_for(None, output, 1, allowed, "txt") == expected
    assert outputs.format_for("json", output, 1, allowed, "txt") == "json"  # -f wins


def test_several_inputs_into_one_file_is_a_one_line_error(tmp_path, capsys) -> None:
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    code = main(["transcribe", str(wav), str(wav.with_name("b.wav")), "-o", str(tmp_path / "single.txt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    assert "2 inputs need a directory" in err[0]
    assert not (tmp_path / "single.txt").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_go_above_the_bar_and_ctrl_c_says_interrupted(monkeypatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = logging.StreamHandler(sys.stderr)  # as the CLI's logging.basicConfig makes it
    logging.getLogger().addHandler(handler)
    try:
        from saywho.cli.progressbar import ProgressBar

        bar = ProgressBar()
        bar("asr", completed=1, total=2)
        logging.getLogger("ray.worker").warning("Started a local Ray instance.")
        bar("asr", completed=2, total=2)
        bar.close(interrupted=True)
    finally:
        logging.getLogger().removeHandler(handler)
    screen = terminal.getvalue()
    # the bar was cleared before the record and drawn again after it: the record has its own line
    before, record, after = screen.partition("Started a local Ray instance.\n")
    assert record and before.endswith("\r") and after.startswith("\r")
    last = screen.rstrip("\n").split("\r")[-1]
    assert "interrupted" in last and "100%" not in last


@pytest.mark.slow
def test_real_runs_name_every_output_and_say_where_it_went(tmp_path, capsys, monkeypatch) -> None:
    require_tools("flite")
    from saywho.evaluation.synth import conversation

    monkeypatch.chdir(tmp_path)
    clip = conversation([("flite:slt", "Good morning, the budget is ready.")], seed=1).write(tmp_path / "clip.wav")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copyfile(clip, tmp_path / folder / "x.wav")

    assert main(["transcribe", "a/x.wav", "b/x.wav", "-o", "out/", "--no-diarize"]) == 0
    err = capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "out").rglob("*.txt")) == [
        "out/a/x.txt", "out/b/x.txt"]
    assert [line for line in err.splitlines() if line.startswith("saywho: wrote")] == [
        "saywho: wrote out/a/x.txt", "saywho: wrote out/b/x.txt"]
    assert "budget" in (tmp_path / "out" / "a" / "x.txt").read_text().lower()

    assert main(["transcribe", "a/x.wav", "-o", "notes.srt", "--no-diarize"]) == 0
    assert "-->" in (tmp_path / "notes.srt").read_text()  # SRT, not plain text
    assert capsys.readouterr().err.strip().splitlines()[-1] == "saywho: wrote notes.srt"

    assert main(["transcribe", "a/x.wav", "-o", "quiet.vtt", "-q", "--no-diarize"]) == 0
    assert (tmp_path / "quiet.vtt").read_text().startswith("WEBVTT")
    assert capsys.readouterr().err == ""
