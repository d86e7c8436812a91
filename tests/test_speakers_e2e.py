"""End to end with the real models: enrol voices from one recording, transcribe another."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from saywho.cli.app import main
from saywho.speakers.library import SpeakerLibrary

from .conftest import require_tools

pytestmark = pytest.mark.slow


def majority_voice(turns, reference) -> dict[str, str]:
    """Diarized label -> the reference voice it overlaps most."""
    overlap: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for t in turns:
        for r in reference:
            overlap[t["speaker"]][r.speaker] += max(0.0, min(t["end"], r.end) - max(t["start"], r.start))
    return {label: max(v, key=v.get) for label, v in overlap.items()}


def test_enrolled_voices_are_named_in_a_new_recording(tmp_path, capsys):
    require_tools("flite")
    from saywho.evaluation.synth import SENTENCES, conversation
    from saywho.pipeline import diarize

    db = str(tmp_path / "speakers.db")
    # Enrolment recording: Sally alone, with sentences the later recordings do not use.
    enrolment = conversation([("flite:slt", s) for s in SENTENCES[:3]], seed=1).write(tmp_path / "sally.wav")
    assert main(["speakers", "add", "Sally", str(enrolment), "--speakers-db", db]) == 0

    # A different recording: Sally and a voice the library does not know.
    lines = [(("flite:slt", "flite:awb")[i % 2], SENTENCES[4 + i]) for i in range(6)]
    conv = conversation(lines, seed=2)
    recording = conv.write(tmp_path / "meeting.wav")
    capsys.readouterr()
    out = tmp_path / "meeting.json"
    assert main(["transcribe", str(recording), "-f", "json", "-o", str(out), "-q", "--speakers-db", db]) == 0
    result = json.loads(out.read_text())
    truth = majority_voice(result["diarization"]["exclusive_turns"], conv.turns)
    assert sorted(truth.values()) == ["flite:awb", "flite:slt"], truth
    names = {s["label"]: s["name"] for s in result["speakers"]}
    scores = {s["label"]: s["score"] for s in result["speakers"]}
    sally = next(label for label, voice in truth.items() if voice == "flite:slt")
    unknown = next(label for label, voice in truth.items() if voice == "flite:awb")
    assert names == {sally: "Sally", unknown: None}, result["speakers"]
    assert scores[sally] >= 0.5 and scores[unknown] is None
    assert {seg["name"] for seg in result["segments"]} == {"Sally", unknown}

    # Learning from a correction: the unknown speaker is named in this result, which
    # enrols the voice; a third recording of that voice alone is then recognised.
    assert main(["speakers", "add", "Alan", "--from-transcript", str(out), "--label", unknown,
                 "--speakers-db", db]) == 0
    alone = conversation([("flite:awb", SENTENCES[11]), ("flite:awb", SENTENCES[3])], seed=3)
    library = SpeakerLibrary(db)
    identities = library.identifier()(diarize(alone.samples))
    assert [name for name, _ in identities.values()] == ["Alan"]

    # Two enrolled voices in one recording get two different names.
    from saywho.formats import transcript_from_dict

    both = library.identifier()(transcript_from_dict(result).diarization)
    assert {label: name for label, (name, _) in both.items()} == {sally: "Sally", unknown: "Alan"}
