"""Server pieces without models: settings, form parsing, error shapes, worker supervision."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
from starlette.datastructures import FormData, UploadFile

from saywho.errors import BackendUnavailable, InvalidOptionError, ModelNotFoundError, TooManyRequestsError
from saywho.server import forms
from saywho.server.inference import InferenceService
from saywho.settings import Settings


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("SAYWHO_PORT", "9123")
    monkeypatch.setenv("SAYWHO_API_KEYS", '["k1", "k2"]')
    monkeypatch.setenv("SAYWHO_DATA_DIR", str(tmp_path))
    s = Settings()
    assert s.port == 9123 and s.api_keys == ["k1", "k2"]
    assert s.db_path == tmp_path / "saywho.db"
    assert s.restart_budget == 3 and s.restart_window_s == 1800
    assert s.deadline_for(10) == s.request_deadline_s + 10 * s.deadline_per_audio_s


def _form(**fields) -> FormData:
    items = []
    for key, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            items.append((key.replace("__", "[]") if key.endswith("__") else key, v))
    return FormData(items)


def _upload() -> UploadFile:
    import io

    return UploadFile(io.BytesIO(b"RIFF"), filename="a.wav")


def test_form_parsing_openai_fields() -> None:
    settings = Settings()
    form = FormData([
        ("file", _upload()), ("model", "whisper-1"), ("response_format", "diarized_json"),
        ("known_speaker_names[]", "alice"), ("known_speaker_names[]", "bob"),
        ("known_speaker_references[]", "data:audio/wav;base64,AAAA"),
        ("known_speaker_references[]", "data:audio/wav;base64,AAAA"),
        ("chunking_strategy[type]", "server_vad"), ("chunking_strategy[threshold]", "0.4"),
        ("timestamp_granularities[]", "word"), ("min_speakers", "2"), ("temperature", "0.3"),
        ("prompt", "Glossary: saywho, diarization"),
    ])
    parsed = forms.parse_audio_request(form, settings)
    assert parsed.model == settings.default_model
    assert parsed.known_speaker_names == ("alice", "bob")
    assert parsed.chunking_strategy == {"type": "server_vad", "threshold": 0.4}
    assert parsed.granularities == ("word",)
    assert parsed.options.diarize and parsed.options.speakers.min == 2
    assert parsed.options.temperature == 0.3
    assert parsed.options.initial_prompt == "Glossary: saywho, diarization"


@pytest.mark.parametrize(
    ("fields", "error", "param"),
    [
        ({}, InvalidOptionError, "file"),
        ({"model": "no-such-model"}, ModelNotFoundError, "model"),
        ({"model": "campplus"}, ModelNotFoundError, "model"),
        ({"response_format": "xml"}, InvalidOptionError, "response_format"),
        ({"temperature": "7"}, InvalidOptionError, "temperature"),
        ({"num_speakers": "0"}, InvalidOptionError, "num_speakers"),
        ({"num_speakers": "2", "max_speakers": "3"}, InvalidOptionError, "num_speakers"),
        ({"known_speaker_names[]": "a"}, InvalidOptionError, "known_speaker_references"),
        ({"chunking_strategy": "sometimes"}, InvalidOptionError, "chunking_strategy"),
        ({"timestamp_granularities[]": "char"}, InvalidOptionError, "timestamp_granularities"),
    ],
)
def test_form_rejections(fields: dict, error: type, param: str) -> None:
    base = {"model": "whisper-1"} | fields
    items = [(k, v) for k, v in base.items()]
    if fields != {}:
        items.append(("file", _upload()))
    with pytest.raises(error) as info:
        forms.parse_audio_request(FormData(items), Settings())
    assert info.value.param == param


def test_data_urls() -> None:
    assert forms.decode_data_url("data:audio/wav;base64," + base64.b64encode(b"abc").decode()) == b"abc"
    for bad in ("http://x/a.wav", "data:audio/wav;base64,!!!", "data:audio/wav,abc", "data:audio/wav;base64,"):
        with pytest.raises(InvalidOptionError):
            forms.decode_data_url(bad)


# ---------------------------------------------------------------------------
# Supervision with the real worker process, on jobs that need no model
# ---------------------------------------------------------------------------


def _service(**overrides) -> InferenceService:
    settings = Settings(request_deadline_s=3, deadline_per_audio_s=0, retry_after_s=2, restart_budget=2,
                        ready_wait_s=60, **overrides)
    service = InferenceService(settings)
    service.start()
    assert service.wait_ready(60), service.status()
    return service


def test_worker_crash_hang_device_error_and_budget() -> None:
    service = _service()
    try:
        async def scenario() -> None:
            assert await service.run("loaded", {}, deadline_s=30) == []
            first_pid = service.status()["worker_pid"]

            # 1. Crash mid-job: 503 at once, the next job waits for the new worker and succeeds.
            with pytest.raises(BackendUnavailable) as crash:
                await service.run("loaded", {"fault": "crash"}, deadline_s=30)
            assert crash.value.retry_after == 2
            started = time.monotonic()
            assert await service.run("loaded", {}, deadline_s=30) == []
            assert time.monotonic() - started < 30
            assert service.status()["worker_pid"] != first_pid

            # 2. Hang past the deadline: killed, 503, and the next job succeeds.
            started = time.monotonic()
            with pytest.raises(BackendUnavailable, match="did not finish"):
                await service.run("loaded", {"fault": "hang"}, deadline_s=2)
            assert time.monotonic() - started < 10
            assert await service.run("loaded", {}, deadline_s=30) == []
            assert service.status()["restarts_in_window"] == 2

            # 3. A device error with the budget (2) spent: degraded, and it says why.
            with pytest.raises(BackendUnavailable):
                await service.run("loaded", {"fault": "device"}, deadline_s=30)
            status = service.status()
            assert status["state"] == "degraded"
            assert "restart budget exhausted" in status["reason"] and "device error" in status["reason"]
            assert len(status["reason"]) < 600
            with pytest.raises(BackendUnavailable) as degraded:
                await service.run("loaded", {}, deadline_s=30)
            assert 1 <= degraded.value.retry_after <= 4  # the first backoff (2 s), not the window
            for _ in range(5):  # the reason never nests, however many requests meet it
                with pytest.raises(BackendUnavailable) as again:
                    await service.run("loaded", {}, deadline_s=30)
                assert again.value.message.count("restart budget") == 1 and len(again.value.message) < 700

            # 4. Past the budget the worker still comes back, after the backoff.
            started = time.monotonic()
            while service.status()["state"] != "ready" and time.monotonic() - started < 60:
                await asyncio.sleep(0.1)
            assert await service.run("loaded", {}, deadline_s=30) == []

        asyncio.run(scenario())
    finally:
        service.stop()


def test_admission_slots_and_queue() -> None:
    service = _service(inference_slots=1, queue_size=1)
    try:
        held = [service.admit(), service.admit()]
        with pytest.raises(TooManyRequestsError):
            service.admit()
        held[0].release()
        held[0].release()  # idempotent
        service.admit().release()
        held[1].release()
        assert service.status()["running_or_queued"] == 0
    finally:
        service.stop()


def test_api_keys_cors_and_error_shape(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from saywho.server.app import create_app

    app = create_app(Settings(api_keys=["k1"], cors_origins=["http://dashboard.test"], data_dir=tmp_path))
    client = TestClient(app)  # no lifespan: no worker is started
    assert client.get("/health").status_code == 200
    r = client.get("/v1/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert client.get("/v1/models", headers={"Authorization": "Bearer k1"}).status_code == 200
    preflight = client.options("/v1/audio/transcriptions", headers={
        "Origin": "http://dashboard.test", "Access-Control-Request-Method": "POST"})
    assert preflight.headers["access-control-allow-origin"] == "http://dashboard.test"
    r = client.post("/v1/audio/speech", json={"model": "tts-1"}, headers={"Authorization": "Bearer k1"})
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = client.get("/v1/nothing-here", headers={"Authorization": "Bearer k1"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_worker_memory_limit_turns_oom_into_a_503_and_a_restart() -> None:
    service = _service(worker_memory_mb=3072)
    try:
        async def scenario() -> None:
            pid = service.status()["worker_pid"]
            with pytest.raises(BackendUnavailable, match="out of memory"):
                await service.run("loaded", {"fault": "oom"}, deadline_s=30)
            assert await service.run("loaded", {}, deadline_s=30) == []  # a fresh worker
            assert service.status()["worker_pid"] != pid

        asyncio.run(scenario())
    finally:
        service.stop()
