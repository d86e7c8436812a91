"""End to end with the real models on speech the test makes itself (4 synthetic voices)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from saywho.audio.decode import write_wav

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(three_voices):
    from saywho import transcribe

    conv, path = three_voices
    return conv, transcribe(path)


def test_speaker_count_is_right(result) -> None:
    conv, t = result
    assert len(t.speakers) == len({turn.speaker for turn in conv.turns}) == 4


def test_der_under_ten_percent(result) -> None:
    from saywho.evaluation.metrics import der

    conv, t = result
    score = der(conv.turns, t.diarization.turns)
    assert score.der < 0.10, score.as_dict()


def test_words_go_to_the_right_speaker(result) -> None:
    from saywho.evaluation.metrics import der

    conv, t = result
    mapping = der(conv.turns, t.diarization.turns).mapping  # hypothesis label -> voice
    right = total = 0
    for turn in conv.turns:
        inside = [w for w in t.words if turn.start <= (w.start + w.end) / 2 <= turn.end]
        total += len(inside)
        right += sum(1 for w in inside if mapping.get(w.speaker) == turn.speaker)
    assert total > 100
    assert right / total >= 0.95, f"{right}/{total} words attributed correctly"


def test_each_block_is_one_speakers_sentence(result) -> None:
    _, t = result
    # Every synthetic line is one sentence of one voice: most blocks hold exactly one line.
    labels = Counter(s.speaker for s in t.segments)
    assert set(labels) == {s.label for s in t.speakers}
    assert "budget" in t.text and "spreadsheet" in t.text.lower()


def test_num_speakers_hint_is_honoured(three_voices) -> None:
    from saywho.pipeline import diarize
    from saywho.types import DiarizeOptions, SpeakerCount

    _, path = three_voices
    assert len(diarize(path, DiarizeOptions(speakers=SpeakerCount(num=2))).speakers) == 2
    assert len(diarize(path, DiarizeOptions(speakers=SpeakerCount(min=5))).speakers) >= 5


def test_silence_only_is_an_empty_transcript(tmp_path: Path) -> None:
    from saywho import transcribe

    path = tmp_path / "silence.wav"
    write_wav(path, np.zeros(16000 * 5, np.float32))
    t = transcribe(path)
    assert t.text == "" and t.segments == () and t.speakers == () and t.duration == 5.0


def test_a_fifth_of_a_second(tmp_path: Path) -> None:
    from saywho import transcribe

    path = tmp_path / "short.wav"
    write_wav(path, (0.3 * np.sin(np.arange(3200) / 16000 * 2 * np.pi * 220)).astype(np.float32))
    t = transcribe(path)
    assert t.duration == 0.2


def test_cli_json_and_diarized_json(three_voices, tmp_path: Path) -> None:
    _, path = three_voices
    out = tmp_path / "out.json"
    r = subprocess.run([sys.executable, "-m", "saywho", "transcribe", str(path), "-f", "json", "-o", str(out)],
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr
    body = json.loads(out.read_text())
    assert len(body["speakers"]) == 4
    assert all(w["speaker"] for s in body["segments"] for w in s["words"])
    assert body["models"]["asr"] == "faster-whisper:tiny.en"
    r = subprocess.run([sys.executable, "-m", "saywho", "transcribe", str(path), "-f", "diarized_json", "-q"],
                       capture_output=True, text=True, timeout=600, check=False)
    segments = json.loads(r.stdout)["segments"]
    assert {s["speaker"] for s in segments} == {"A", "B", "C", "D"}
