"""One speaker library for the CLI and the server: the same default file, and one way
(``SAYWHO_DATA_DIR`` or ``SAYWHO_SPEAKERS_DB``) to point both elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from saywho.formats import get_writer
from saywho.settings import Settings
from saywho.speakers.library import default_path

from .conftest import require_tools
from .jobs_fakes import DEFAULT_LINES, transcript_from_lines


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A user with no saywho settings at all: only HOME and XDG_DATA_HOME point into tmp."""
    for name in ("SAYWHO_DATA_DIR", "SAYWHO_SPEAKERS_DB", "SAYWHO_DB_PATH", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / ".local" / "share"))
    return tmp_path / "home"


def test_the_cli_and_the_server_default_to_the_same_library(home, monkeypatch, tmp_path) -> None:
    expected = home / ".local" / "share" / "saywho" / "speakers.db"
    assert default_path() == expected == Settings().speakers_db
    monkeypatch.setenv("SAYWHO_DATA_DIR", str(tmp_path / "elsewhere"))
    assert default_path() == tmp_path / "elsewhere" / "speakers.db" == Settings().speakers_db
    monkeypatch.setenv("SAYWHO_SPEAKERS_DB", str(tmp_path / "voices.db"))
    assert default_path() == tmp_path / "voices.db" == Settings().speakers_db


def saywho(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "saywho", *args], capture_output=True, text=True, timeout=300)


def test_a_voice_enrolled_with_the_cli_is_known_to_the_server(home, tmp_path) -> None:
    fastapi_testclient = pytest.importorskip("fastapi.testclient")
    from saywho.server.app import create_app

    result = tmp_path / "standup.json"
    result.write_text(get_writer("json").render(transcript_from_lines(DEFAULT_LINES, 20.0), uri="standup"))
    done = saywho("speakers", "add", "Ada", "--from-transcript", str(result), "--label", "Speaker_0")
    assert done.returncode == 0, done.stderr

    class NoInference:
        def start(self) -> None: ...

        def stop(self, timeout: float = 5.0) -> None: ...

    with fastapi_testclient.TestClient(create_app(Settings(), inference=NoInference()),
                                       base_url="http://localhost") as client:
        speakers = client.get("/v1/speakers").json()["data"]
    assert [s["name"] for s in speakers] == ["Ada"]


@pytest.mark.slow
def test_a_voice_enrolled_with_the_cli_is_named_by_the_server_with_default_settings(home, tmp_path) -> None:
    """The real models: enrol Sally with ``saywho speakers add``; a server started with
    default settings names her in a new recording sent with the official client."""
    require_tools("flite")
    openai = pytest.importorskip("openai")
    from saywho.evaluation.synth import SENTENCES, conversation

    from .test_dashboard_browser import serving

    enrolment = conversation([("flite:slt", s) for s in SENTENCES[:3]], seed=1).write(tmp_path / "sally.wav")
    done = saywho("speakers", "add", "Sally", str(enrolment))
    assert done.returncode == 0, done.stderr
    lines = [(("flite:slt", "flite:awb")[i % 2], SENTENCES[4 + i]) for i in range(4)]
    recording = Path(conversation(lines, seed=2).write(tmp_path / "meeting.wav"))

    from saywho.server.app import create_app

    with serving(create_app(Settings())) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none")
        with open(recording, "rb") as f:
            answer = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="diarized_json",
                                                        extra_body={"chunking_strategy": "auto"})
    body = answer.model_dump() if hasattr(answer, "model_dump") else json.loads(answer)
    assert "Sally" in {s["speaker"] for s in body["segments"]}, body["segments"]
