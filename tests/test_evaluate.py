"""``saywho eval`` with a fake system on a hand-made dataset: discovery, scores, reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pyannote.metrics")
pytest.importorskip("jiwer")

import saywho.cli.app as cli
from saywho.errors import InvalidOptionError
from saywho.evaluation import evaluate
from saywho.evaluation.evaluate import discover, evaluate_dataset
from saywho.evaluation.report import render_json, render_markdown
from saywho.types import Diarization, SpeakerTurn, Transcript, Word

TURNS = {
    "meeting": (SpeakerTurn(0.0, 4.0, "A"), SpeakerTurn(4.0, 10.0, "B")),
    "pair": (SpeakerTurn(0.0, 3.0, "A"), SpeakerTurn(3.0, 6.0, "B")),
}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Two diarized recordings (one RTTM, a UEM for one), two with text, one with per-speaker text."""
    for name in ("meeting", "pair", "jfk", "utt1", "duo", "noref"):
        (tmp_path / f"{name}.wav").write_bytes(b"")  # the fake system never decodes
    (tmp_path / "refs.rttm").write_text(
        "SPEAKER meeting 1 0.0 4.0 <NA> <NA> A <NA> <NA>\n"
        "SPEAKER meeting 1 4.0 6.0 <NA> <NA> B <NA> <NA>\n"
        "SPEAKER pair 1 0.0 3.0 <NA> <NA> A <NA> <NA>\n"
        "SPEAKER pair 1 3.0 3.0 <NA> <NA> B <NA> <NA>\n"
        "SPEAKER ghost 1 0.0 3.0 <NA> <NA> A <NA> <NA>\n"
    )
    (tmp_path / "refs.uem").write_text("meeting NA 0.0 10.0\n")
    (tmp_path / "jfk.txt").write_text("Ask not what your country can do for you.\n")
    (tmp_path / "trans.txt").write_text("utt1 TWENTY FIVE LAMPS\n")
    (tmp_path / "duo.channels.tsv").write_text("left\tgood morning\nright\thello there\nleft\tall\n")
    return tmp_path


def fake_system(path: Path) -> Transcript:
    """Perfect diarization with swapped labels (and one missed second on 'pair'); fixed text."""
    if path.stem in TURNS:
        turns = tuple(
            SpeakerTurn(t.start, t.end, {"A": "S1", "B": "S0"}[t.speaker]) for t in TURNS[path.stem]
        )
        if path.stem == "pair":
            turns = (turns[0], SpeakerTurn(3.0, 5.0, "S0"))
        diarization = Diarization(duration=10.0, turns=turns, exclusive=turns, speakers=("S0", "S1"))
        return Transcript(
            duration=10.0, language="en", text="", segments=(), words=(), diarization=diarization
        )
    if path.stem == "duo":
        words = (
            Word(0.0, 0.5, " Good", speaker="X"),
            Word(0.5, 1.0, " morning", speaker="X"),
            Word(1.0, 1.5, " hello", speaker="Y"),
            Word(1.5, 2.0, " there.", speaker="Y"),
            Word(2.0, 2.5, " All", speaker="X"),
        )
        return Transcript(
            duration=2.5,
            language="en",
            text="Good morning hello there. All",
            segments=(),
            words=words,
            diarization=None,
        )
    text = {"jfk": "Ask not what your country can do for you!", "utt1": "25 lamps"}[path.stem]
    return Transcript(duration=5.0, language="en", text=text, segments=(), words=())


def test_discover(dataset: Path):
    found = discover(dataset)
    by_uri = {r.uri: r for r in found.recordings}
    assert sorted(by_uri) == ["duo", "jfk", "meeting", "pair", "utt1"]
    assert by_uri["meeting"].uem == ((0.0, 10.0),) and by_uri["pair"].uem is None
    assert by_uri["meeting"].turns == TURNS["meeting"]
    assert by_uri["jfk"].text == "Ask not what your country can do for you."
    assert by_uri["utt1"].text == "TWENTY FIVE LAMPS"
    assert dict(by_uri["duo"].speaker_texts) == {"left": "good morning all", "right": "hello there"}
    assert by_uri["duo"].needs_diarization and not by_uri["jfk"].needs_diarization
    assert "noref" in found.unscored
    assert "ghost (reference without audio)" in found.unscored


def test_discover_errors(tmp_path: Path):
    with pytest.raises(InvalidOptionError, match="not found"):
        discover(tmp_path / "missing")
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(InvalidOptionError, match="no recording"):
        discover(tmp_path)


def test_evaluate_scores_and_pools(dataset: Path):
    report = evaluate_dataset(dataset, fake_system)
    files = {f.uri: f for f in report.files}
    assert files["meeting"].der.der == 0.0  # swapped labels are mapped
    assert files["meeting"].speaker_count_error == 0
    # 'pair': B spoke 3-6 s, the system stopped at 5 s; no UEM, so 0-10 s (the audio) is scored.
    assert files["pair"].der.missed == pytest.approx(1.0)
    assert files["pair"].der.der == pytest.approx(1.0 / 6.0)
    assert files["pair"].scored_regions == ((0.0, 10.0),)
    assert report.der.der == pytest.approx(1.0 / 16.0)  # seconds pooled over files
    # With the md-eval collar, 5.75-6.25 s around B's end is not scored: 0.75 s missed.
    assert report.der_collar.missed == pytest.approx(0.75)
    assert files["jfk"].wer.wer == 0.0 and files["utt1"].wer.wer == 0.0
    assert files["duo"].cpwer.cpwer == 0.0
    assert report.wer.reference_words == 9 + 2
    assert all(f.wall_s >= 0 and f.peak_memory_mib > 0 for f in report.files)
    assert report.rtf == pytest.approx(report.wall_s / report.duration)


def test_reports(dataset: Path, tmp_path: Path):
    report = evaluate_dataset(dataset, fake_system)
    markdown = render_markdown(report)
    assert "| **pooled** |" in markdown
    assert "DER c0.25" in markdown and "pyannote.metrics collar=0.5" in markdown
    assert "| meeting | 10.0 | 0.0% |" in markdown
    data = json.loads(json.dumps(render_json(report)))
    assert data["pooled"]["der"]["der"] == pytest.approx(1.0 / 16.0)
    assert {f["uri"] for f in data["files"]} == {"duo", "jfk", "meeting", "pair", "utt1"}
    meeting = next(f for f in data["files"] if f["uri"] == "meeting")
    assert meeting["der"]["mapping"] == {"S1": "A", "S0": "B"}


def test_plots(dataset: Path, tmp_path: Path):
    pytest.importorskip("matplotlib")
    from saywho.evaluation.report import write_plots

    report = evaluate_dataset(dataset, fake_system)
    written = write_plots(report, tmp_path / "plots")
    names = sorted(p.name for p in written)
    assert names == ["der_per_file.png", "timeline_meeting.png", "timeline_pair.png", "wer_per_file.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)


def test_cli_eval(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    seen = []

    def runner(options):
        seen.append(options)
        return lambda recording: fake_system(recording.audio)

    monkeypatch.setattr(evaluate, "default_runner", runner)
    assert cli.main(["eval", str(dataset), "--json", "-q", "--num-speakers", "2", "--collar", "0.5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["collar_s"] == 0.5
    assert seen[0].speakers.num == 2 and seen[0].identify is False

    assert cli.main(["eval", str(dataset), "-q"]) == 0
    assert "| **pooled** |" in capsys.readouterr().out

    assert cli.main(["eval", str(tmp_path / "nowhere")]) != 0
    assert "dataset directory not found" in capsys.readouterr().err
