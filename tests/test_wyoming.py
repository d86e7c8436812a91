"""The Wyoming server over real TCP on 127.0.0.1 with the ``wyoming`` client library.

Protocol and bad-input tests need no models; the ``slow`` ones transcribe real speech
(jfk.wav from ../shared, Piper-made commands), name an enrolled voice, and speak.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import wave

import numpy as np
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from saywho.speakers.identify import embed_reference_with_speech
from saywho.speakers.library import SpeakerLibrary
from saywho.wyoming.audio import resample
from saywho.wyoming.server import WyomingOptions, WyomingServer, serve

from .conftest import DEV

JFK_TEXT = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
COMMANDS = (
    "Turn on the kitchen lights.",
    "Lock the back door, please.",
    "What is the weather like tomorrow?",
    "Play some jazz in the living room.",
)
TIMEOUT_S = 60


class RunningServer:
    """A WyomingServer on its own event loop in a thread, listening on a free port."""

    def __init__(self, options: WyomingOptions) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = WyomingServer(options)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="wyoming-test")
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        self.port = self.server.port

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def options(tmp_path, **overrides) -> WyomingOptions:
    base = {"uri": "tcp://127.0.0.1:0", "speakers_db": str(tmp_path / "speakers.db"), "zeroconf": False,
            "preload": False}
    return WyomingOptions(**{**base, **overrides})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = RunningServer(options(tmp_path_factory.mktemp("wyoming")))
    yield running
    running.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT_S))


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def word_errors(heard: str, expected: str) -> int:
    """Words substituted, inserted or deleted (Levenshtein over words)."""
    a, b = words(heard).split(), words(expected).split()
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


async def describe(port: int) -> Info:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await client.read_event()
        assert event is not None and Info.is_type(event.type), event
        return Info.from_event(event)


async def read_until(client: AsyncTcpClient, *types: str) -> list[Event]:
    """Events up to and including the first of ``types``, an ``error``, or the end of the stream."""
    events = []
    while True:
        event = await client.read_event()
        if event is None:
            return events
        events.append(event)
        if event.type in (*types, "error"):
            return events


async def transcribe(port: int, pcm: bytes, rate: int = 16000, width: int = 2, channels: int = 1,
                     chunk_ms: int = 100) -> list[Event]:
    step = rate * width * channels * chunk_ms // 1000
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for offset in range(0, len(pcm), step):
            await client.write_event(AudioChunk(rate=rate, width=width, channels=channels,
                                                audio=pcm[offset: offset + step]).event())
        await client.write_event(AudioStop().event())
        return await read_until(client, "transcript-stop")


def transcript_of(events: list[Event]) -> dict:
    final = [e for e in events if e.type == "transcript"]
    assert len(final) == 1, [e.type for e in events]
    return final[0].data


async def raw_exchange(port: int, data: bytes) -> list[Event]:
    """Send raw bytes, then read events until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    events = []
    while (event := await async_read_event(reader)) is not None:
        events.append(event)
    writer.close()
    return events


# ---------------------------------------------------------------------------- speech the tests make


@pytest.fixture(scope="session")
def piper():
    from saywho import tts

    if "en_US-joe-medium" not in tts.installed_voices():
        pytest.skip("the bundled Piper voice is not installed")
    from piper.config import SynthesisConfig

    voice = tts.load_voice("en_US-joe-medium")
    rate = voice.config.sample_rate
    # Piper samples its noise anew on every call; without noise the speech (and the test) is repeatable.
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

    def speak(text: str) -> tuple[bytes, int]:
        speech = [np.frombuffer(c.audio_int16_bytes, np.int16) for c in voice.synthesize(text, syn_config=config)]
        padding = np.zeros(rate // 4, np.int16)  # a quarter second of silence each side
        return np.concatenate([padding, *speech, padding]).astype("<i2").tobytes(), rate

    return speak


@pytest.fixture(scope="session")
def jfk() -> bytes:
    path = DEV / "asr" / "jfk.wav"
    if not path.is_file():
        pytest.skip("../shared/data/dev/asr/jfk.wav is absent")
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (16000, 2, 1)
        return w.readframes(w.getnframes())


# ---------------------------------------------------------------------------- protocol, no models


def test_describe_lists_models_languages_and_voices(server):
    info = run(describe(server.port))
    asr = info.asr[0]
    assert asr.name == "saywho" and asr.version and asr.attribution.name == "saywho"
    assert asr.supports_transcript_streaming
    models = {m.name: m for m in asr.models}
    assert models["tiny.en"].languages == ["en"]
    assert models["tiny.en"].attribution.url
    if "base" in models:
        assert {"en", "de", "fr"} <= set(models["base"].languages)
    voices = [v for p in info.tts for v in p.voices]
    if voices:
        assert voices[0].name == "en_US-joe-medium" and voices[0].languages == ["en_US"]
        assert info.tts[0].supports_synthesize_streaming


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x00\xff\xfe garbage that is not json\n", "invalid_value"),
        (b'{"data": {"text": "no type"}}\n', "invalid_value"),
        (b'{"type": "audio-chunk", "payload_length": 99999999999}\n', "payload_too_large"),
        (b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": 4}\n'
         b"\x00\x00\x00\x00", "invalid_value"),  # audio-chunk before audio-start
        (b'{"type": "audio-stop"}\n', "invalid_value"),
        (b'{"type": "audio-start", "data": {"rate": 0, "width": 2, "channels": 1}}\n', "invalid_audio"),
        (b'{"type": "audio-start", "data": {"rate": 16000, "width": 7, "channels": 1}}\n', "invalid_audio"),
        (b'{"type": "audio-start", "data": {"rate": 16000, "width": 2, "channels": 1}}\n'
         b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": 3}\n'
         b"\x00\x00\x00", "invalid_audio"),  # not whole frames
        (b'{"type": "audio-start", "data": {"rate": 16000, "width": 2, "channels": 1}}\n'
         b'{"type": "audio-chunk", "data": {"rate": 1000000, "width": 2, "channels": 1}, "payload_length": 2}\n'
         b"\x00\x00", "invalid_audio"),  # a chunk declaring an impossible rate
    ],
    ids=["garbage", "no-type", "huge-payload", "chunk-before-start", "stop-before-start", "rate-0", "width-7",
         "partial-frame", "chunk-rate"],
)
def test_bad_input_gets_an_error_and_a_close_and_others_are_served(server, data, code):
    async def scenario():
        bad = asyncio.create_task(raw_exchange(server.port, data))
        info = await describe(server.port)  # another client, at the same time
        return await bad, info

    events, info = run(scenario())
    assert [e.type for e in events] == ["error"], events
    assert events[0].data["code"] == code and events[0].data["text"]
    assert info.asr


def test_an_utterance_over_60_s_is_refused(server):
    second = bytes(32000)  # 1 s of 16 kHz 16-bit silence

    async def scenario():
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            for _ in range(61):
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=second).event())
            await client.write_event(AudioStop().event())
            return await read_until(client, "transcript")

    events = run(scenario())
    assert events[-1].type == "error" and events[-1].data["code"] == "audio_too_long"
    assert run(describe(server.port)).asr


def test_a_client_leaving_mid_utterance_does_not_disturb_the_server(server):
    async def scenario():
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for event in (AudioStart(rate=16000, width=2, channels=1).event(),
                      AudioChunk(rate=16000, width=2, channels=1, audio=bytes(3200)).event()):
            await async_write_event(event, writer)
        writer.write(b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, '
                     b'"payload_length": 3200}\n' + bytes(100))  # cut off inside the payload
        await writer.drain()
        writer.close()
        await asyncio.sleep(0.2)
        return await describe(server.port)

    assert run(scenario()).asr
    for _ in range(50):
        if server.server.active == 0:
            break
        threading.Event().wait(0.05)
    assert server.server.active == 0


def test_clients_beyond_the_limit_get_an_error(tmp_path):
    running = RunningServer(options(tmp_path, max_clients=2))
    try:
        async def scenario():
            held = [await asyncio.open_connection("127.0.0.1", running.port) for _ in range(2)]
            await asyncio.sleep(0.1)
            refused = await raw_exchange(running.port, b"")
            for _, writer in held:
                writer.close()
            await asyncio.sleep(0.2)
            return refused, await describe(running.port)

        refused, info = run(scenario())
        assert [e.type for e in refused] == ["error"] and refused[0].data["code"] == "too_many_requests"
        assert info.asr  # a place is free again once the others leave
    finally:
        running.close()


def test_serve_runs_beside_another_server(tmp_path):
    from saywho.cli.app import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario():
        server_options = options(tmp_path, uri=f"tcp://127.0.0.1:{port}")
        described: list[Info] = []

        async def beside():  # stands in for uvicorn's Server.serve
            await asyncio.sleep(0.1)
            described.append(await describe(port))

        await serve(server_options, beside=beside)
        return described

    assert run(scenario())[0].asr
    assert main(["wyoming", "--uri", "http://nowhere"]) == 2


# ---------------------------------------------------------------------------- real models


@pytest.mark.slow
def test_transcribes_jfk_with_streaming_events_and_no_name(server, jfk):
    events = run(transcribe(server.port, jfk))
    types = [e.type for e in events]
    assert types[0] == "transcript-start" and types[-2:] == ["transcript", "transcript-stop"]
    chunks = "".join(e.data["text"] for e in events if e.type == "transcript-chunk")
    data = transcript_of(events)
    assert words(data["text"]) == JFK_TEXT
    assert chunks == data["text"] and data["language"] == "en"
    assert data["speaker"] == {"name": None, "score": None}  # the library is empty


@pytest.mark.slow
def test_any_rate_width_and_channels_are_converted(server, jfk):
    # 16 kHz mono 16-bit -> 44.1 kHz stereo 32-bit, sent in 30 ms chunks
    mono = np.frombuffer(jfk, "<i2").astype(np.float32) / 32768.0
    upsampled = resample(mono, 16000, 44100)
    stereo = np.stack([upsampled, upsampled], axis=1)  # (frames, 2)
    pcm = (np.clip(stereo, -1, 1) * (2**31 - 1)).astype("<i4").tobytes()
    data = transcript_of(run(transcribe(server.port, pcm, rate=44100, width=4, channels=2, chunk_ms=30)))
    assert words(data["text"]) == JFK_TEXT


@pytest.mark.slow
def test_an_enrolled_voice_is_named_and_an_unknown_one_is_not(server, piper, jfk):
    library = SpeakerLibrary(server.server.options.speakers_db)
    pcm, rate = piper("My name is Joe and this is how my voice sounds when I read a sentence aloud.")
    samples = resample(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0, rate)
    fingerprint, speech_s = embed_reference_with_speech(samples)
    library.add("Joe", fingerprint, source="test", speech_s=speech_s)
    try:
        command, rate = piper(COMMANDS[0])
        known = transcript_of(run(transcribe(server.port, command, rate=rate)))
        assert words(known["text"]) == words(COMMANDS[0])
        assert known["speaker"]["name"] == "Joe" and known["speaker"]["score"] >= 0.6
        unknown = transcript_of(run(transcribe(server.port, jfk)))
        assert unknown["speaker"]["name"] is None and unknown["speaker"]["score"] < 0.6
    finally:
        library.remove("Joe")


async def collect_audio(client: AsyncTcpClient, last: str, start: dict | None = None
                        ) -> tuple[dict, bytes, list[str]]:
    start = start or {}
    pcm = bytearray()
    types = []
    for event in await read_until(client, last):
        types.append(event.type)
        if event.type == "audio-start":
            start = event.data
        elif event.type == "audio-chunk":
            assert (event.data["rate"], event.data["width"], event.data["channels"]) == (
                start["rate"], start["width"], start["channels"])
            pcm += event.payload or b""
    return start, bytes(pcm), types


@pytest.mark.slow
def test_synthesis_gives_pcm_that_transcribes_back(server):
    text = "Good morning. The front door is locked."

    async def scenario():
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(Synthesize(text=text).event())
            return await collect_audio(client, "audio-stop")

    start, pcm, types = run(scenario())
    assert types[0] == "audio-start" and types[-1] == "audio-stop" and "audio-chunk" in types
    assert (start["width"], start["channels"]) == (2, 1) and 16000 <= start["rate"] <= 48000
    samples = np.frombuffer(pcm, "<i2")
    assert len(pcm) % 2 == 0 and 1.0 < len(samples) / start["rate"] < 6.0
    assert np.abs(samples).max() > 3000  # speech, not silence
    heard = transcript_of(run(transcribe(server.port, pcm, rate=start["rate"])))
    assert word_errors(heard["text"], text) <= 1  # the server's Piper speech varies from call to call


@pytest.mark.slow
def test_streaming_synthesis_speaks_sentences_as_they_arrive(server):
    async def scenario():
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(SynthesizeStart().event())
            for piece in ("The garage door ", "is open. Shall I ", "close it?"):
                await client.write_event(SynthesizeChunk(text=piece).event())
            # The first sentence is spoken before the stream ends.
            first = await client.read_event()
            assert first is not None and first.type == "audio-start"
            await client.write_event(Synthesize(text="The garage door is open. Shall I close it?").event())
            await client.write_event(SynthesizeStop().event())
            _, pcm, types = await collect_audio(client, "synthesize-stopped", first.data)
            return first.data, pcm, types

    start, pcm, types = run(scenario())
    assert types[-2:] == ["audio-stop", "synthesize-stopped"] and "audio-start" not in types
    heard = transcript_of(run(transcribe(server.port, pcm, rate=start["rate"])))
    assert word_errors(heard["text"], "the garage door is open shall i close it") <= 1


@pytest.mark.slow
def test_four_clients_at_once(server, piper):
    spoken = [piper(text) for text in COMMANDS]

    async def scenario():
        return await asyncio.gather(*(transcribe(server.port, pcm, rate=rate) for pcm, rate in spoken))

    results = run(scenario())
    assert [words(transcript_of(events)["text"]) for events in results] == [words(t) for t in COMMANDS]
