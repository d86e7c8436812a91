"""The Wyoming server: one independent handler per connection, a shared engine.

Per connection: ``describe`` -> ``info``; ``transcribe`` (optional) + ``audio-start`` /
``audio-chunk``... / ``audio-stop`` -> ``transcript-start``, ``transcript-chunk``...,
``transcript`` (with the extra ``speaker`` field), ``transcript-stop``; ``synthesize``
-> ``audio-start`` / ``audio-chunk``... / ``audio-stop``; streaming synthesis
(``synthesize-start`` / ``-chunk``... / ``-stop``) speaks each finished sentence at
once and ends with ``audio-stop`` and ``synthesize-stopped``.

A request the server cannot serve (bad audio format, audio before ``audio-start``, an
utterance over the limit, bytes that are not events, too many clients) is answered
with an ``error`` event (``code`` from ``saywho.errors``) and the connection is closed;
other connections never notice. Inference runs in worker threads, at most
``slots`` at once; the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from saywho import tts
from saywho.errors import InvalidOptionError, SaywhoError, TooManyRequestsError
from saywho.wyoming.audio import PcmFormat, Utterance
from saywho.wyoming.engine import LocalEngine
from saywho.wyoming.info import build_info
from saywho.wyoming.protocol import read_event
from saywho.wyoming.zeroconf import Advertisement

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

# Piper's voices speak 22.05 kHz; 1024 samples is ~46 ms of audio per audio-chunk.
SAMPLES_PER_CHUNK = 1024
# A finished sentence in streamed text: its end mark followed by white space.
_SENTENCE_END = re.compile(r"[.!?;:\u3002\uff01\uff1f](?=[\s\"')\]]*\s)")


@dataclass(frozen=True, slots=True)
class WyomingOptions:
    """Everything ``saywho wyoming`` (and ``saywho serve --wyoming-uri``) can be told."""

    uri: str = "tcp://0.0.0.0:10300"
    model: str = "tiny.en"
    voice: str = "en_US-joe-medium"
    speakers_db: str | None = None
    max_clients: int = 8
    max_utterance_s: float = 60.0
    max_text_chars: int = 4096
    idle_timeout_s: float = 120.0
    slots: int = 1
    cpu_threads: int = 0
    stream_transcript: bool = True
    zeroconf: bool = True
    zeroconf_name: str | None = None
    preload: bool = True


def parse_uri(uri: str) -> tuple[str, str, int | None]:
    """(scheme, host or socket path, port) of ``tcp://HOST:PORT`` or ``unix://PATH``."""
    parsed = urlparse(uri)
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            port = None
        if not parsed.hostname or port is None:
            raise InvalidOptionError(f"--uri {uri}: use tcp://HOST:PORT, e.g. tcp://0.0.0.0:10300", param="uri")
        return "tcp", parsed.hostname, port
    if parsed.scheme == "unix" and parsed.path:
        return "unix", parsed.path, None
    raise InvalidOptionError(f"--uri {uri}: use tcp://HOST:PORT or unix://PATH", param="uri")


class WyomingServer:
    """Listens, admits up to ``max_clients`` connections, and hands each its own handler."""

    def __init__(self, options: WyomingOptions, engine: LocalEngine | None = None) -> None:
        self.options = options
        self.engine = engine or LocalEngine(model=options.model, voice=options.voice,
                                            speakers_db=options.speakers_db, cpu_threads=options.cpu_threads)
        self.slots = asyncio.Semaphore(max(1, options.slots))
        self.active = 0
        self.port: int | None = None
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._advert: Advertisement | None = None
        self._preload: asyncio.Task[None] | None = None
        self._info: Event | None = None

    def info_event(self) -> Event:
        if self._info is None:
            self._info = build_info(self.engine.asr_models(), tts.installed_voices(), stream_transcript=self.options.stream_transcript
                                    ).event()
        return self._info

    async def start(self) -> None:
        scheme, where, port = parse_uri(self.options.uri)
        if scheme == "tcp":
            self._server = await asyncio.start_server(self._accept, host=where, port=port)
            self.port = self._server.sockets[0].getsockname()[1]
        else:
            self._server = await asyncio.start_unix_server(self._accept, path=where)
        logger.info("Wyoming server listening on %s (port %s)", self.options.uri, self.port)
        if self.options.preload:
            self._preload = asyncio.create_task(asyncio.to_thread(self._warm_up))
        if self.options.zeroconf and scheme == "tcp" and self.port is not None:
            self._advert = Advertisement(self.port, host=where, name=self.options.zeroconf_name)
            await self._advert.register()

    def _warm_up(self) -> None:
        try:
            self.engine.preload()
        except SaywhoError as exc:  # a missing model is reported to the requests that need it
            logger.warning("preload failed: %s", exc.message)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._advert is not None:
            await self._advert.unregister()
            self._advert = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if self.active >= self.options.max_clients:
                logger.warning("refused a connection: %d clients already", self.active)
                busy = TooManyRequestsError(f"too many clients: this server takes {self.options.max_clients} at once")
                with contextlib.suppress(ConnectionError):
                    await async_write_event(Error(text=busy.message, code=busy.code).event(), writer)
                return
            self.active += 1
            try:
                await ConnectionHandler(reader, writer, self).run()
            finally:
                self.active -= 1
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class ConnectionHandler(AsyncEventHandler):
    """One client. State lives here, per connection; the engine and the slots are shared."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: WyomingServer) -> None:
        super().__init__(reader, writer)
        self.server = server
        self.options = server.options
        self.request = Transcribe()
        self.utterance: Utterance | None = None
        self.stream_voice: str | None = None  # set between synthesize-start and synthesize-stop
        self.stream_text = ""
        self.stream_audio_started = False

    async def run(self) -> None:
        peer = self.writer.get_extra_info("peername")
        try:
            while True:
                try:
                    event = await asyncio.wait_for(read_event(self.reader), self.options.idle_timeout_s)
                except TimeoutError:
                    logger.info("closing %s: idle for %g s", peer, self.options.idle_timeout_s)
                    return
                if event is None:
                    return
                if not await self.handle_event(event):
                    return
        except SaywhoError as exc:
            logger.info("closing %s: %s", peer, exc.message)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.write_event(Error(text=exc.message, code=exc.code).event())
        except (ConnectionError, asyncio.IncompleteReadError):
            logger.info("%s left mid-request", peer)
        except Exception:  # the last resort: this client only
            logger.exception("connection %s failed", peer)
            with contextlib.suppress(Exception):
                await self.write_event(Error(text="internal error", code="internal_error").event())

    async def handle_event(self, event: Event) -> bool:
        kind = event.type
        if Describe.is_type(kind):
            await self.write_event(self.server.info_event())
        elif Ping.is_type(kind):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(kind):
            self.request = Transcribe.from_event(event)
        elif AudioStart.is_type(kind):
            PcmFormat.from_data(event.data, "audio-start")
            self.utterance = Utterance(max_s=self.options.max_utterance_s)
        elif AudioChunk.is_type(kind):
            if self.utterance is None:
                raise InvalidOptionError("audio-chunk before audio-start")
            self.utterance.add(event.payload or b"", PcmFormat.from_data(event.data, "audio-chunk"))
        elif AudioStop.is_type(kind):
            if self.utterance is None:
                raise InvalidOptionError("audio-stop before audio-start")
            utterance, self.utterance = self.utterance, None
            await self._transcribe(utterance)
            self.request = Transcribe()
        elif SynthesizeStart.is_type(kind):
            start = SynthesizeStart.from_event(event)
            self.stream_voice = self.server.engine.resolve_voice(start.voice.name if start.voice else None)
            self.stream_text, self.stream_audio_started = "", False
        elif SynthesizeChunk.is_type(kind):
            if self.stream_voice is None:
                raise InvalidOptionError("synthesize-chunk before synthesize-start")
            self.stream_text += SynthesizeChunk.from_event(event).text
            self._check_text(self.stream_text)
            await self._speak_finished_sentences()
        elif SynthesizeStop.is_type(kind):
            if self.stream_voice is None:
                raise InvalidOptionError("synthesize-stop before synthesize-start")
            await self._finish_stream()
        elif Synthesize.is_type(kind):
            if self.stream_voice is None:  # while streaming, this is the copy for old servers
                request = Synthesize.from_event(event)
                voice = self.server.engine.resolve_voice(request.voice.name if request.voice else None)
                await self._speak(request.text, voice, start=True, stop=True)
        else:
            logger.debug("ignored a %s event", kind)
        return True

    # ------------------------------------------------------------ speech to text

    async def _transcribe(self, utterance: Utterance) -> None:
        engine = self.server.engine
        language = (self.request.language or "").replace("_", "-").split("-")[0].lower() or None
        model = engine.choose_model(self.request.name, language)
        samples = utterance.samples()  # (num_samples,) 16 kHz
        stream = self.options.stream_transcript
        if stream:
            await self.write_event(TranscriptStart(language=language).event())
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        def on_text(text: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, text)

        async with self.server.slots:
            job = asyncio.ensure_future(asyncio.to_thread(
                engine.transcribe, samples, model=model, language=language, on_text=on_text if stream else None,
            ))
            job.add_done_callback(lambda _: pieces.put_nowait(None))
            try:
                sent = 0
                while (text := await pieces.get()) is not None:
                    if text:
                        await self.write_event(TranscriptChunk(text=(" " if sent else "") + text).event())
                        sent += 1
                heard = await job
            finally:
                if not job.done():  # the client left: let the thread finish, keep its error quiet
                    job.add_done_callback(lambda t: t.cancelled() or t.exception())
        event = Transcript(text=heard.text, language=heard.language).event()
        event.data["speaker"] = heard.speaker.to_dict()
        logger.info("heard %.1f s: %r (speaker %s)", heard.duration, heard.text, heard.speaker.name)
        await self.write_event(event)
        if stream:
            await self.write_event(TranscriptStop().event())

    # ------------------------------------------------------------ text to speech

    def _check_text(self, text: str) -> None:
        if len(text) > self.options.max_text_chars:
            raise InvalidOptionError(
                f"the text is {len(text)} characters; the limit is {self.options.max_text_chars}", param="text"
            )

    async def _speak_finished_sentences(self) -> None:
        ends = [m.end() for m in _SENTENCE_END.finditer(self.stream_text)]
        if not ends:
            return
        ready, self.stream_text = self.stream_text[: ends[-1]], self.stream_text[ends[-1]:]
        if ready.strip():
            assert self.stream_voice is not None
            await self._speak(ready, self.stream_voice, start=not self.stream_audio_started, stop=False)
            self.stream_audio_started = True

    async def _finish_stream(self) -> None:
        voice, text = self.stream_voice, self.stream_text
        assert voice is not None
        if text.strip():
            await self._speak(text, voice, start=not self.stream_audio_started, stop=True)
        else:
            if not self.stream_audio_started:
                rate = await asyncio.to_thread(self.server.engine.voice_rate, voice)
                await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
            await self.write_event(AudioStop().event())
        self.stream_voice, self.stream_text, self.stream_audio_started = None, "", False
        await self.write_event(SynthesizeStopped().event())

    async def _speak(self, text: str, voice: str, *, start: bool, stop: bool) -> None:
        """Piper's audio for ``text``, sent sentence by sentence as it is made."""
        self._check_text(text)
        engine = self.server.engine
        async with self.server.slots:
            rate = await asyncio.to_thread(engine.voice_rate, voice)
            if start:
                await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
            pieces = engine.synthesize(text, voice)
            try:
                while (pcm := await asyncio.to_thread(next, pieces, None)) is not None:
                    await self._send_pcm(pcm, rate)
            finally:
                await asyncio.to_thread(pieces.close)
        if stop:
            await self.write_event(AudioStop().event())

    async def _send_pcm(self, pcm: bytes, rate: int) -> None:
        step = 2 * SAMPLES_PER_CHUNK
        for offset in range(0, len(pcm), step):
            await self.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[offset: offset + step]).event())


def serve_options(settings: Any, uri: str, *, zeroconf: bool = True) -> WyomingOptions:
    """Options for the Wyoming server beside the HTTP server (``saywho serve --wyoming-uri``):
    its default model and voice, its CPU threads, and its speaker library (the dashboard's)."""
    parse_uri(uri)
    return WyomingOptions(uri=uri, model=settings.default_model, voice=settings.default_voice,
                          speakers_db=str(settings.speakers_db), cpu_threads=settings.cpu_threads,
                          max_text_chars=settings.max_speech_chars, zeroconf=zeroconf)


async def serve(options: WyomingOptions, *, beside: Callable[[], Awaitable[Any]] | None = None) -> None:
    """Run the server until cancelled; with ``beside``, until that coroutine returns (the HTTP server)."""
    server = WyomingServer(options)
    await server.start()
    try:
        if beside is None:
            await server.serve_forever()
        else:
            await beside()
    finally:
        await server.stop()

