"""``/v1/speakers`` in-process, with fake fingerprints where a model would run."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from saywho.audio.decode import write_wav
from saywho.server.app import create_app
from saywho.server.routers import speakers as speakers_router
from saywho.server.worker import _samples as worker_samples
from saywho.settings import Settings
from saywho.speakers.library import SpeakerLibrary
from saywho.speakers.service import fingerprint_from_audio


class _NoInference:
    """The worker's fingerprint job, run in this process (decoding included)."""

    fingerprint = staticmethod(fingerprint_from_audio)

    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...

    async def run(self, kind: str, payload: dict, **_: object) -> object:
        assert kind == "fingerprint"
        return self.fingerprint(worker_samples(payload), start=payload["start"], end=payload["end"])


def voice(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(192)
    return v / np.linalg.norm(v)


def wav_bytes(samples: np.ndarray, tmp_path) -> bytes:
    path = tmp_path / "clip.wav"
    write_wav(path, samples)
    return path.read_bytes()


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path, db_path=tmp_path / "server.db")


@pytest.fixture
def client(settings):
    app = create_app(settings, routers=[speakers_router.router], inference=_NoInference())
    with TestClient(app, base_url="http://localhost") as c:
        yield c


def transcript_json(labels: dict[str, np.ndarray], speech_s: float = 10.0) -> dict:
    return {
        "duration": 20.0, "language": "en", "text": "", "segments": [],
        "speakers": [{"label": k, "name": None, "speech_s": speech_s, "score": None} for k in labels],
        "diarization": {"duration": 20.0, "speakers": list(labels), "turns": [], "exclusive_turns": [],
                        "fingerprints": {k: v.tolist() for k, v in labels.items()}},
    }


def assert_openai_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code:
        assert error["code"] == code
    return error


def test_enrol_from_transcript_then_read_rename_delete(client, settings):
    body = {"name": "Ada", "transcript_json": transcript_json({"Speaker_0": voice(1), "Speaker_1": voice(2)}),
            "label": "Speaker_1"}
    r = client.post("/v1/speakers", json=body)
    assert r.status_code == 201, r.text
    ada = r.json()
    assert ada["name"] == "Ada" and ada["object"] == "speaker" and ada["enrolments"][0]["source"] == "transcript#Speaker_1"
    # It lives in the server's database.
    np.testing.assert_allclose(SpeakerLibrary(settings.speakers_db).known()["Ada"][0], voice(2), atol=1e-6)

    listing = client.get("/v1/speakers").json()
    assert listing["object"] == "list" and [s["name"] for s in listing["data"]] == ["Ada"]
    assert client.get(f"/v1/speakers/{ada['id']}").json()["name"] == "Ada"

    renamed = client.patch(f"/v1/speakers/{ada['id']}", json={"name": "Ada Lovelace"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Ada Lovelace"

    gone = client.delete(f"/v1/speakers/{ada['id']}")
    assert gone.json() == {"id": ada["id"], "object": "speaker.deleted", "deleted": True, "name": "Ada Lovelace",
                           "owner": "shared"}
    assert_openai_error(client.get(f"/v1/speakers/{ada['id']}"), 404, "speaker_not_found")
    assert_openai_error(client.delete(f"/v1/speakers/{ada['id']}"), 404, "speaker_not_found")


def test_duplicate_name_is_409_unless_merge(client):
    body = {"name": "Ada", "transcript_json": transcript_json({"Speaker_0": voice(1)}), "label": "Speaker_0"}
    assert client.post("/v1/speakers", json=body).status_code == 201
    assert_openai_error(client.post("/v1/speakers", json=body), 409, "speaker_exists")
    merged = client.post("/v1/speakers", json={**body, "merge": True})
    assert merged.status_code == 201 and len(merged.json()["enrolments"]) == 2
    other = client.post("/v1/speakers", json={**body, "name": "Bob"}).json()
    assert_openai_error(client.patch(f"/v1/speakers/{other['id']}", json={"name": "ada"}), 409, "speaker_exists")


def test_bad_requests_are_openai_shaped(client):
    fp = transcript_json({"Speaker_0": voice(1)})
    assert_openai_error(client.post("/v1/speakers", json={"name": "A", "transcript_json": fp, "label": "Speaker_9"}),
                        400, "invalid_value")
    assert_openai_error(client.post("/v1/speakers", json={"transcript_json": fp, "label": "Speaker_0"}), 400)
    short = transcript_json({"Speaker_0": voice(1)}, speech_s=0.5)
    err = assert_openai_error(client.post("/v1/speakers", json={"name": "A", "transcript_json": short,
                                                                 "label": "Speaker_0"}), 400)
    assert "at least" in err["message"]
    assert_openai_error(client.post("/v1/speakers", data={"name": "A"}), 400)
    assert_openai_error(client.patch("/v1/speakers/nobody", json={"name": "B"}), 404, "speaker_not_found")
    assert_openai_error(client.patch("/v1/speakers/nobody", json={}), 400)


def test_multipart_enrolment_uses_the_file(client, tmp_path, monkeypatch):
    seen = []

    def fake(samples, *, start=None, end=None):
        seen.append((len(samples), start, end))
        return voice(len(seen)).astype(np.float32), 3.0

    monkeypatch.setattr(_NoInference, "fingerprint", staticmethod(fake))
    clip = wav_bytes(np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1, tmp_path)
    r = client.post("/v1/speakers", data={"name": "Ada", "start": "0.5", "end": "1"},
                    files=[("file", ("a.wav", io.BytesIO(clip), "audio/wav")),
                           ("file", ("b.wav", io.BytesIO(clip), "audio/wav"))])
    assert r.status_code == 201, r.text
    assert [e["source"] for e in r.json()["enrolments"]] == ["a.wav, b.wav"] * 2
    assert seen == [(16_000, 0.5, 1.0)] * 2


def test_silent_or_short_upload_is_a_clear_400(client, tmp_path):
    silent = wav_bytes(np.zeros(16_000 * 3, np.float32), tmp_path)
    err = assert_openai_error(client.post("/v1/speakers", data={"name": "Ada"},
                                          files={"file": ("silence.wav", silent, "audio/wav")}), 400)
    assert "silent" in err["message"] and err["param"] == "file"
    garbage = assert_openai_error(client.post("/v1/speakers", data={"name": "Ada"},
                                              files={"file": ("x.wav", b"not audio", "audio/wav")}), 400)
    assert garbage["code"] == "invalid_audio"
    assert client.get("/v1/speakers").json()["data"] == []


def test_corrupt_database_is_reported(client, settings):
    settings.speakers_db.write_bytes(b"garbage" * 500)
    err = assert_openai_error(client.get("/v1/speakers"), 400, "speaker_library_error")
    assert "cannot be read" in err["message"]
    assert settings.speakers_db.read_bytes() == b"garbage" * 500


def test_router_is_in_the_default_app(settings):
    app = create_app(settings, inference=_NoInference())
    assert {"/v1/speakers", "/v1/speakers/{speaker_id}"} <= set(app.openapi()["paths"])


def test_server_transcriptions_use_the_library_of_its_settings(settings, caplog):
    from saywho.speakers.service import library_identifier

    assert library_identifier(settings.speakers_db) is None  # no library yet
    SpeakerLibrary(settings.speakers_db).add("Ada", voice(1), source="x")
    identify = library_identifier(settings.speakers_db)
    from saywho.types import Diarization

    d = Diarization(duration=1, turns=(), exclusive=(), speakers=("Speaker_0",),
                    fingerprints={"Speaker_0": tuple(voice(1))})
    assert identify(d) == {"Speaker_0": ("Ada", pytest.approx(1.0))}
    settings.speakers_db.unlink()
    settings.speakers_db.write_bytes(b"garbage" * 500)
    assert library_identifier(settings.speakers_db) is None
    assert "anonymous" in caplog.text
