"""The real server on 127.0.0.1, driven by the official ``openai`` client (and httpx for bad input)."""

from __future__ import annotations

import base64
import io
import json
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openai
import pytest

from saywho.audio.decode import decode_audio

from .conftest import require_tools
from .server_harness import RunningServer, start_server

pytestmark = pytest.mark.slow

API_KEY = "test-key"
MAX_UPLOAD = 1_000_000


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-voice exchange (~8 s) and a reference clip of each voice saying something else."""
    require_tools("flite")
    from saywho.evaluation.synth import SENTENCES, conversation

    tmp = tmp_path_factory.mktemp("speech")
    conv = conversation([("flite:slt", SENTENCES[0]), ("flite:rms", SENTENCES[1])])
    return {
        "conversation": conv.write(tmp / "conversation.wav"),
        "slt": conversation([("flite:slt", SENTENCES[4])]).write(tmp / "slt.wav"),
        "rms": conversation([("flite:rms", SENTENCES[5])]).write(tmp / "rms.wav"),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(
        tmp_path_factory.mktemp("server"), api_key=API_KEY,
        preload=["tiny.en", "diarization", "en_US-joe-medium"], model_ttl_s=-1,
        max_upload_bytes=MAX_UPLOAD, inference_slots=1, queue_size=1,
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return server.client()


def _file(path: Path) -> tuple[str, bytes]:
    return (path.name, path.read_bytes())


def _data_url(path: Path) -> str:
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


def _assert_healthy(server: RunningServer) -> None:
    ready = server.ready()
    assert ready["status"] == "ready", ready


# ---------------------------------------------------------------------------
# Speech to text
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json", "diarized_json"])
def test_transcription_every_format(client: openai.OpenAI, speech: dict[str, Path], fmt: str) -> None:
    kwargs = {"timestamp_granularities": ["word", "segment"]} if fmt == "verbose_json" else {}
    result = client.audio.transcriptions.create(file=_file(speech["conversation"]), model="whisper-1",
                                                response_format=fmt, **kwargs)
    if fmt == "json":
        assert "budget" in result.text.lower()
    elif fmt == "text":
        assert isinstance(result, str) and "budget" in result.lower()
    elif fmt == "srt":
        assert result.startswith("1\n00:00:") and " --> " in result and "budget" in result.lower()
    elif fmt == "vtt":
        assert result.startswith("WEBVTT") and "<v " in result
    elif fmt == "verbose_json":
        assert result.language == "english" and result.duration > 5
        assert result.segments and result.words and result.words[0].word.strip()
        assert all(w.end >= w.start for w in result.words)
    else:
        assert result.segments and {s.speaker for s in result.segments} <= {"A", "B", "C"}
        assert result.segments[0].speaker == "A" and result.segments[0].type == "transcript.text.segment"


def test_diarized_json_with_known_speakers(client: openai.OpenAI, speech: dict[str, Path]) -> None:
    result = client.audio.transcriptions.create(
        file=_file(speech["conversation"]), model="gpt-4o-transcribe-diarize", response_format="diarized_json",
        known_speaker_names=["alice", "bob"],
        known_speaker_references=[_data_url(speech["slt"]), _data_url(speech["rms"])],
        chunking_strategy="auto",
    )
    speakers = [s.speaker for s in result.segments]
    assert speakers and set(speakers) <= {"alice", "bob", "A", "B"}
    # The opening line is the slt voice: whoever is named, it is alice, never bob.
    assert speakers[0] in ("alice", "A")
    assert {"alice", "bob"} & set(speakers), speakers


def test_stream_diarized_events(client: openai.OpenAI, speech: dict[str, Path]) -> None:
    events = list(client.audio.transcriptions.create(
        file=_file(speech["conversation"]), model="whisper-1", response_format="diarized_json", stream=True,
    ))
    types = [e.type for e in events]
    assert types[-1] == "transcript.text.done"
    assert "transcript.text.delta" in types and "transcript.text.segment" in types
    segments = [e for e in events if e.type == "transcript.text.segment"]
    assert all(s.speaker for s in segments)
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert deltas.split() == events[-1].text.split()
    # Text streams while the ASR decodes, before speakers are known.
    assert types.index("transcript.text.delta") < types.index("transcript.text.segment")


def test_stream_plain_events(client: openai.OpenAI, speech: dict[str, Path]) -> None:
    events = list(client.audio.transcriptions.create(
        file=_file(speech["conversation"]), model="whisper-1", stream=True,
    ))
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert "budget" in events[-1].text.lower()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # openai marks translations deprecated
def test_translation(client: openai.OpenAI, speech: dict[str, Path]) -> None:
    text = client.audio.translations.create(file=_file(speech["slt"]), model="whisper-1", response_format="text")
    assert "design" in text.lower() or "thursday" in text.lower()


def test_chunk_endpoints(server: RunningServer, speech: dict[str, Path]) -> None:
    with server.http() as http:
        files = {"file": ("c.wav", speech["conversation"].read_bytes())}
        chunk = http.post("/v1/audio/diarize-chunk", files=files, data={"model": "tiny.en"})
        merged = http.post("/v1/audio/transcribe-with-speakers", files=files, data={"model": "tiny.en"})
    assert chunk.status_code == 200, chunk.text
    body = chunk.json()
    assert {"duration", "segments", "speakers_detected", "fingerprints", "words", "models"} <= set(body)
    assert set(body["fingerprints"]) == set(body["speakers_detected"])
    assert all(len(v) == 192 for v in body["fingerprints"].values())
    assert {s["speaker"] for s in body["segments"]} <= set(body["speakers_detected"])
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert set(body) == {"duration", "language", "speakers_detected", "segments", "models"}
    assert body["segments"][0]["end_ms"] > body["segments"][0]["start_ms"] >= 0
    assert "budget" in " ".join(s["text"] for s in body["segments"]).lower()


# ---------------------------------------------------------------------------
# Text to speech, models, health
# ---------------------------------------------------------------------------

SENTENCE = "Speech synthesis for the saywho server, checked by decoding it back."


def _duration(fmt: str, data: bytes) -> float:
    if fmt == "pcm":
        return len(data) / 2 / 24_000
    return decode_audio(data).duration


def test_speech_every_format(client: openai.OpenAI) -> None:
    wav = client.audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE, response_format="wav").content
    with wave.open(io.BytesIO(wav)) as w:
        reference = w.getnframes() / w.getframerate()
    assert 2.0 < reference < 10.0
    for fmt in ("mp3", "opus", "aac", "flac", "pcm"):
        data = client.audio.speech.create(model="tts-1", voice="nova", input=SENTENCE, response_format=fmt).content
        # Piper samples its phoneme durations (noise_w), so two syntheses differ slightly.
        assert abs(_duration(fmt, data) - reference) < 0.4, fmt
    fast = client.audio.speech.create(model="tts-1", voice="en_US-joe-medium", input=SENTENCE,
                                      response_format="pcm", speed=2.0).content
    assert _duration("pcm", fast) < 0.8 * reference
    samples = np.frombuffer(fast, "<i2")
    assert np.abs(samples).max() > 1000  # not silence


def test_speech_rejections(server: RunningServer) -> None:
    with server.http() as http:
        r = http.post("/v1/audio/speech", json={"model": "tts-1", "input": "hi", "voice": "darth"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "voice"
        assert "alloy" in r.json()["error"]["message"] and "en_US-joe-medium" in r.json()["error"]["message"]
        r = http.post("/v1/audio/speech", json={"model": "tts-9", "input": "hi", "voice": "alloy"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        r = http.post("/v1/audio/speech", json={"model": "tts-1", "input": "hi", "voice": "alloy",
                                                "response_format": "ogg"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
        r = http.post("/v1/audio/speech", json={"model": "tts-1", "input": "hi", "voice": "alloy", "speed": 9})
        assert r.status_code == 400 and r.json()["error"]["param"] == "speed"
        r = http.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    _assert_healthy(server)


def test_models_list(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert "tiny.en" in models and "en_US-joe-medium" in models
    assert models["tiny.en"].owned_by == "saywho"


def test_health(server: RunningServer) -> None:
    with server.http() as http:
        assert http.get("/health").json()["status"] == "ok"
        ready = http.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["worker"]["state"] == "ready"
        deep = http.get("/health/deep")
    assert deep.status_code == 200, deep.text
    body = deep.json()
    assert body["status"] == "ok" and body["latency_ms"] > 0 and body["word_recall"] >= 0.5


# ---------------------------------------------------------------------------
# Bad input through HTTP: the right 4xx, and the server stays healthy
# ---------------------------------------------------------------------------


def _post(server: RunningServer, *, files=None, data=None, headers=None):
    with server.http() as http:
        return http.post("/v1/audio/transcriptions", files=files, data=data or {"model": "whisper-1"},
                         headers=headers)


@pytest.mark.parametrize(
    ("case", "status", "code", "param"),
    [
        ("missing file", 400, "invalid_value", "file"),
        ("empty file", 400, "invalid_audio", "file"),
        ("not audio", 400, "invalid_audio", "file"),
        ("oversized", 413, "payload_too_large", None),
        ("unknown model", 404, "model_not_found", "model"),
        ("unknown response_format", 400, "invalid_value", "response_format"),
        ("malformed data URL", 400, "invalid_value", "known_speaker_references[0]"),
        ("wrong API key", 401, "invalid_api_key", None),
    ],
)
def test_bad_input(server: RunningServer, speech: dict[str, Path], case: str, status: int, code: str,
                   param: str | None) -> None:
    audio = speech["conversation"].read_bytes()
    data: dict = {"model": "whisper-1"}
    files: dict | None = {"file": ("a.wav", audio)}
    headers = None
    if case == "missing file":
        files = None
    elif case == "empty file":
        files = {"file": ("a.wav", b"")}
    elif case == "not audio":
        files = {"file": ("a.wav", b"this is not audio at all " * 100)}
    elif case == "oversized":
        files = {"file": ("a.wav", b"\0" * (MAX_UPLOAD + (2 << 20)))}
    elif case == "unknown model":
        data["model"] = "whisper-9000"
    elif case == "unknown response_format":
        data["response_format"] = "docx"
    elif case == "malformed data URL":
        data.update({"response_format": "diarized_json", "known_speaker_names[]": "alice",
                     "known_speaker_references[]": "data:audio/wav;base64,@@not-base64@@"})
    elif case == "wrong API key":
        headers = {"Authorization": "Bearer wrong"}
    r = _post(server, files=files, data=data, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["param"] == param and error["message"]
    _assert_healthy(server)


def test_bad_input_through_openai_client(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.audio.transcriptions.create(file=("a.wav", b"RIFF"), model="whisper-9000")
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.transcriptions.create(file=("a.wav", b"not audio"), model="whisper-1")
    assert info.value.body["code"] == "invalid_audio"


def test_too_many_concurrent_requests(server: RunningServer, speech: dict[str, Path]) -> None:
    """One slot and one queue place: of six simultaneous requests, some get 429 at once."""
    audio = speech["slt"].read_bytes()

    def one(_: int) -> int:
        return _post(server, files={"file": ("a.wav", audio)}, data={"model": "whisper-1"}).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(one, range(6)))
    assert set(codes) <= {200, 429} and codes.count(429) >= 1 and codes.count(200) >= 2, codes
    _assert_healthy(server)
    r = _post(server, files={"file": ("a.wav", audio)})
    assert r.status_code == 200 and json.loads(r.text)["text"]
