"""``saywho speakers ...`` with fake fingerprints (transcript enrolment) and real bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from saywho.audio.decode import write_wav
from saywho.cli.app import main
from saywho.speakers.library import SpeakerLibrary


def voice(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(192)
    return v / np.linalg.norm(v)


@pytest.fixture
def result_json(tmp_path):
    """A saywho JSON result with two speakers and their fingerprints."""
    data = {
        "duration": 20.0, "language": "en", "text": "", "segments": [],
        "speakers": [{"label": "Speaker_0", "name": None, "speech_s": 9.0, "score": None},
                     {"label": "Speaker_1", "name": None, "speech_s": 1.0, "score": None}],
        "diarization": {"duration": 20.0, "speakers": ["Speaker_0", "Speaker_1"], "turns": [],
                        "exclusive_turns": [],
                        "fingerprints": {"Speaker_0": voice(1).tolist(), "Speaker_1": voice(2).tolist()}},
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_enrol_from_transcript_list_rename_remove(tmp_path, result_json, capsys):
    db = str(tmp_path / "lib.db")
    code, out, _ = run(capsys, "speakers", "add", "Ada", "--from-transcript", str(result_json),
                       "--label", "Speaker_0", "--speakers-db", db)
    assert code == 0 and "enrolled Ada" in out
    np.testing.assert_allclose(SpeakerLibrary(db).known()["Ada"][0], voice(1), atol=1e-6)

    code, out, _ = run(capsys, "speakers", "list", "--speakers-db", db)
    assert code == 0 and out.startswith("Ada")
    code, out, _ = run(capsys, "speakers", "list", "--json", "--speakers-db", db)
    assert json.loads(out)["speakers"][0]["enrolments"][0]["source"] == "transcript:result.json#Speaker_0"

    assert run(capsys, "speakers", "rename", "Ada", "Ada Lovelace", "--speakers-db", db)[0] == 0
    code, _, err = run(capsys, "speakers", "remove", "Ada", "--speakers-db", db)
    assert code == 1 and "no speaker 'Ada'" in err
    assert run(capsys, "speakers", "remove", "ada lovelace", "--speakers-db", db)[0] == 0
    assert SpeakerLibrary(db).list() == []


def test_duplicates_and_too_little_speech(tmp_path, result_json, capsys):
    db = str(tmp_path / "lib.db")
    args = ["speakers", "add", "Ada", "--from-transcript", str(result_json), "--label", "Speaker_0",
            "--speakers-db", db]
    assert run(capsys, *args)[0] == 0
    code, _, err = run(capsys, *args)
    assert code == 1 and "already in the library" in err and "--merge" in err
    assert run(capsys, *args, "--merge")[0] == 0
    assert len(SpeakerLibrary(db).get("Ada").enrolments) == 2
    code, _, err = run(capsys, "speakers", "add", "Bob", "--from-transcript", str(result_json),
                       "--label", "Speaker_1", "--speakers-db", db)
    assert code == 2 and "only 1.0 s" in err
    code, _, err = run(capsys, "speakers", "add", "Bob", "--from-transcript", str(result_json), "--speakers-db", db)
    assert code == 2 and "--label" in err


def test_export_import_round_trip(tmp_path, result_json, capsys):
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    for name, label in (("Ada", "Speaker_0"), ("Bob", "Speaker_0")):
        run(capsys, "speakers", "add", name, "--from-transcript", str(result_json), "--label", label,
            "--speakers-db", a)
    export = tmp_path / "voices.json"
    assert run(capsys, "speakers", "export", "-o", str(export), "--speakers-db", a)[0] == 0
    code, out, _ = run(capsys, "speakers", "import", str(export), "--speakers-db", b)
    assert code == 0 and "imported 2" in out
    assert SpeakerLibrary(b).export()["speakers"] == SpeakerLibrary(a).export()["speakers"]
    code, _, err = run(capsys, "speakers", "import", str(export), "--speakers-db", b)
    assert code == 1 and "nothing was imported" in err
    (tmp_path / "bad.json").write_text("{nope")
    code, _, err = run(capsys, "speakers", "import", str(tmp_path / "bad.json"), "--speakers-db", b)
    assert code == 2 and "not a JSON speaker export" in err


def test_silence_and_short_clips_are_refused_clearly(tmp_path, capsys):
    db = str(tmp_path / "lib.db")
    silence = tmp_path / "silence.wav"
    write_wav(silence, np.zeros(16_000 * 5, np.float32))
    code, _, err = run(capsys, "speakers", "add", "Ada", str(silence), "--speakers-db", db)
    assert code == 2 and "silence.wav" in err and "silent" in err
    # A 1 s hum is not 2 s of speech.
    hum = tmp_path / "hum.wav"
    write_wav(hum, (0.3 * np.sin(2 * np.pi * 150 * np.arange(16_000) / 16_000)).astype(np.float32))
    code, _, err = run(capsys, "speakers", "add", "Ada", str(hum), "--speakers-db", db)
    assert code == 2 and "too short" in err and "at least 2 s" in err
    code, _, err = run(capsys, "speakers", "add", "Ada", str(hum), "--start", "3", "--end", "1", "--speakers-db", db)
    assert code == 2 and "start" in err
    assert not SpeakerLibrary(db).exists()


def test_corrupt_library_is_reported(tmp_path, capsys):
    db = tmp_path / "lib.db"
    db.write_bytes(b"\x00garbage" * 300)
    code, _, err = run(capsys, "speakers", "list", "--speakers-db", str(db))
    assert code == 1 and "cannot be read" in err and "left as it is" in err
    assert db.read_bytes() == b"\x00garbage" * 300


def _fake_transcribe(monkeypatch) -> list:
    """Replace the pipeline with one that records the identifier it was given."""
    from saywho import pipeline
    from saywho.types import Transcript

    calls = []

    def fake(path, options, *, hook=None, identifier=None, **_):
        calls.append((options.identify, identifier))
        return Transcript(duration=1.0, language="en", text="", segments=(), words=())

    monkeypatch.setattr(pipeline, "transcribe", fake)
    return calls


def test_transcribe_uses_the_library_unless_no_identify(tmp_path, result_json, capsys, monkeypatch):
    db = str(tmp_path / "lib.db")
    audio = tmp_path / "a.wav"
    write_wav(audio, np.zeros(16_000, np.float32))
    calls = _fake_transcribe(monkeypatch)
    # No library yet at an explicit path: a clear error.
    code, _, err = run(capsys, "transcribe", str(audio), "--speakers-db", db)
    assert code == 2 and "no speaker library" in err
    run(capsys, "speakers", "add", "Ada", "--from-transcript", str(result_json), "--label", "Speaker_0",
        "--speakers-db", db)
    assert run(capsys, "transcribe", str(audio), "-q", "--speakers-db", db)[0] == 0
    assert calls[-1][0] is True and callable(calls[-1][1])
    assert run(capsys, "transcribe", str(audio), "-q", "--speakers-db", db, "--no-identify")[0] == 0
    assert calls[-1] == (False, None)


def test_transcribe_with_a_corrupt_default_library_warns(tmp_path, capsys, monkeypatch):
    db = tmp_path / "speakers.db"
    db.write_bytes(b"garbage" * 300)
    monkeypatch.setenv("SAYWHO_SPEAKERS_DB", str(db))
    audio = tmp_path / "a.wav"
    write_wav(audio, np.zeros(16_000, np.float32))
    calls = _fake_transcribe(monkeypatch)
    code, _, err = run(capsys, "transcribe", str(audio), "-q")
    assert code == 0 and "cannot be read" in err and "anonymous" in err
    assert calls[-1] == (True, None) and db.read_bytes() == b"garbage" * 300
