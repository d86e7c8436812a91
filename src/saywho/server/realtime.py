"""The OpenAI Realtime transcription protocol over one WebSocket, on a ``LiveSession``.

Client events: ``session.update``, ``input_audio_buffer.append`` / ``commit`` / ``clear``.
Server events: ``session.created`` / ``session.updated``,
``input_audio_buffer.speech_started`` / ``speech_stopped`` / ``committed`` / ``cleared``,
``conversation.item.input_audio_transcription.delta`` / ``segment`` / ``completed``, and
``error`` (OpenAI's shape) for every message it cannot use; one bad message never ends
the session.

The engine runs in this (the HTTP) process on a model manager of its own, one thread
per session, not in the supervised inference worker: live audio cannot wait in the
worker's queue behind a long upload (as for the Wyoming server). Audio waits in a
queue between the socket and the engine; how much is waiting is the reported lag, and
past ``realtime_max_backlog_s`` appends are refused with an error event rather than
buffered without end.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import uuid
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from saywho.errors import InvalidOptionError, SaywhoError, TooManyRequestsError
from saywho.jobs.service import JobService
from saywho.jobs.store import TERMINAL
from saywho.models.manager import ModelManager
from saywho.server.errors import error_type
from saywho.server.forms import stt_model
from saywho.settings import Settings
from saywho.streaming import (
    Committed,
    Completed,
    Delta,
    LiveEvent,
    LiveOptions,
    LiveSession,
    SpeakerSegment,
    SpeechStarted,
    SpeechStopped,
)
from saywho.streaming.handoff import carried_names
from saywho.streaming.resample import StreamResampler, pcm16_to_float
from saywho.types import SAMPLE_RATE, SpeakerTurn, TranscribeOptions

logger = logging.getLogger(__name__)

RATES = (24_000, 16_000)  # OpenAI's audio/pcm is 24 kHz; 16 kHz is a saywho option
DEFAULT_RATE = 24_000
TRANSCRIPTION = "conversation.item.input_audio_transcription"


# Tasks that outlive their socket (names carried to a job); held here so they are not collected.
_BACKGROUND: set[asyncio.Task[None]] = set()
# A recording shorter than this is not worth a job.
MIN_JOB_S = 1.0


class Recording:
    """16 kHz PCM16 WAV written as audio arrives (never held in memory)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed by close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self.samples = 0

    def write(self, samples: np.ndarray) -> None:
        self._wav.writeframes((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())
        self.samples += len(samples)

    def close(self) -> tuple[Path, float]:
        self._wav.close()
        return self.path, self.samples / SAMPLE_RATE


async def carry_names(jobs: JobService, job_id: str, live: list[SpeakerTurn], names: dict[str, str],
                      *, poll_s: float = 1.0, timeout_s: float = 6 * 3600.0) -> None:
    """When the job has finished, give its speakers the names their live speakers had."""
    waited = 0.0
    while waited < timeout_s:
        try:
            job = await asyncio.to_thread(jobs.store.get, job_id)
        except SaywhoError:  # deleted meanwhile
            return
        if job.state in TERMINAL:
            break
        await asyncio.sleep(poll_s)
        waited += poll_s
    try:
        transcript = await asyncio.to_thread(jobs.store.result, job_id)
        if transcript.diarization is None:
            return
        for label, name in carried_names(live, transcript.diarization.turns, names).items():
            await asyncio.to_thread(jobs.name_speaker, job_id, label, name)
    except SaywhoError as exc:
        logger.info("live names not carried to job %s: %s", job_id, exc.message)


def _event_id() -> str:
    return f"event_{uuid.uuid4().hex[:20]}"


def error_event(message: str, *, code: str, param: str | None = None, event_id: str | None = None,
                status: int = 400) -> dict[str, Any]:
    return {"type": "error", "event_id": _event_id(),
            "error": {"type": error_type(status), "code": code, "message": message, "param": param,
                      "event_id": event_id}}


def to_wire(event: LiveEvent, rate: int) -> dict[str, Any]:
    """An engine event as the OpenAI Realtime server event (saywho extras: partial, lag_s, name)."""
    del rate  # times are reported in ms / s of session audio whatever the input rate
    if isinstance(event, SpeechStarted):
        body: dict[str, Any] = {"type": "input_audio_buffer.speech_started",
                                "audio_start_ms": round(event.start * 1000), "item_id": event.item_id}
    elif isinstance(event, SpeechStopped):
        body = {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": round(event.end * 1000),
                "item_id": event.item_id}
    elif isinstance(event, Committed):
        body = {"type": "input_audio_buffer.committed", "item_id": event.item_id,
                "previous_item_id": event.previous_item_id}
    elif isinstance(event, Delta):
        body = {"type": f"{TRANSCRIPTION}.delta", "item_id": event.item_id, "content_index": 0,
                "delta": event.delta, "partial": event.partial, "lag_s": event.lag_s}
    elif isinstance(event, SpeakerSegment):
        body = {"type": f"{TRANSCRIPTION}.segment", "item_id": event.item_id, "content_index": 0,
                "id": event.id, "text": event.text, "speaker": event.name or event.speaker,
                "speaker_label": event.speaker, "name": event.name, "start": event.start, "end": event.end}
    else:
        assert isinstance(event, Completed)
        body = {"type": f"{TRANSCRIPTION}.completed", "item_id": event.item_id, "content_index": 0,
                "transcript": event.transcript, "start": event.start, "end": event.end, "lag_s": event.lag_s,
                "usage": {"type": "duration", "seconds": round(event.end - event.start, 3)}}
    return {"event_id": _event_id(), **body}


class RealtimeConnection:
    """One accepted socket: its session settings, the engine, and the queue between them."""

    def __init__(self, ws: WebSocket, settings: Settings, manager: ModelManager, known: Any,
                 jobs: JobService | None = None, owner: str | None = None) -> None:
        self.owner = owner
        self.ws = ws
        self.jobs = jobs
        self.recording: Recording | None = None  # the session's audio, kept for a job at the end
        self.keep_audio = jobs is not None
        self.live_turns: list[SpeakerTurn] = []  # who spoke when, live (mapped onto the job's speakers)
        self.settings = settings
        self.manager = manager
        self.known = known
        self.id = f"sess_{uuid.uuid4().hex[:20]}"
        self.rate = DEFAULT_RATE
        self.options = LiveOptions(model=settings.default_model, cpu_threads=settings.cpu_threads)
        self.model_name = "whisper-1"
        self.engine = LiveSession(self.options, manager=manager, known=known)
        self.resampler = StreamResampler(self.rate)
        self.odd = b""  # a PCM16 byte waiting for its other half
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.backlog_s = 0.0  # audio queued for the engine, in seconds
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="realtime")
        self.send_lock = asyncio.Lock()

    # ---------------------------------------------------------------- wire

    def session_object(self) -> dict[str, Any]:
        o = self.options
        vad = {"type": "server_vad", "threshold": o.threshold, "prefix_padding_ms": o.prefix_padding_ms,
               "silence_duration_ms": o.silence_duration_ms} if o.turn_detection else None
        return {"type": "transcription", "id": self.id, "object": "realtime.transcription_session",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": self.rate},
                                    "transcription": {"model": self.model_name, "language": o.language,
                                                      "prompt": o.prompt or ""},
                                    "turn_detection": vad, "noise_reduction": None}},
                "include": []}

    async def send(self, event: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(event))

    async def error(self, message: str, *, code: str, param: str | None = None, event_id: str | None = None,
                    status: int = 400) -> None:
        await self.send(error_event(message, code=code, param=param, event_id=event_id, status=status))

    # ---------------------------------------------------------------- run

    async def run(self) -> None:
        await self.send({"type": "session.created", "event_id": _event_id(), "session": self.session_object()})
        worker = asyncio.create_task(self._process())
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self._handle(message)
                if worker.done():
                    break
        except WebSocketDisconnect:
            pass
        finally:
            worker.cancel()
            self.executor.shutdown(wait=False, cancel_futures=True)
            await self._hand_off(notify=False)

    async def _handle(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        if text is None:
            await self.error("binary frames are not supported: send JSON client events as text frames",
                             code="invalid_event")
            return
        if len(text) > self.settings.realtime_max_event_bytes:
            await self.error(f"the event is {len(text)} bytes; the limit is "
                             f"{self.settings.realtime_max_event_bytes} bytes (send audio in smaller appends)",
                             code="payload_too_large", status=413)
            return
        try:
            event = json.loads(text)
        except ValueError:
            await self.error("the message is not valid JSON", code="invalid_json")
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            await self.error("a client event is a JSON object with a string 'type'", code="invalid_event",
                             param="type")
            return
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        kind = event["type"]
        try:
            if kind == "input_audio_buffer.append":
                await self._append(event)
            elif kind == "input_audio_buffer.commit":
                await self.queue.put(("commit", event_id))
            elif kind == "input_audio_buffer.clear":
                await self.queue.put(("clear", event_id))
            elif kind == "saywho.speaker.update":  # name a live speaker while the session runs
                label, name = event.get("label"), event.get("name")
                if not isinstance(label, str) or not (name is None or isinstance(name, str)):
                    raise InvalidOptionError("saywho.speaker.update needs 'label' (Speaker_N) and 'name' "
                                             "(a string, or null to forget it)", param="label")
                await self.queue.put(("rename", (label, (name or "").strip() or None, event_id)))
            elif kind == "saywho.session.finish":  # end the recording here: it becomes a job
                await self.queue.put(("finish", event_id))
            elif kind in ("session.update", "transcription_session.update"):
                await self._update(event.get("session"))
            else:
                raise InvalidOptionError(f"unknown or unsupported client event type '{kind}' in a transcription "
                                         "session", param="type")
        except SaywhoError as exc:
            await self.error(exc.message, code=exc.code if exc.code != "invalid_value" else "invalid_value",
                             param=exc.param, event_id=event_id, status=exc.status_code)

    async def _append(self, event: dict[str, Any]) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            raise InvalidOptionError("input_audio_buffer.append needs 'audio': base64 PCM16", param="audio")
        try:
            raw = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidOptionError("'audio' is not valid base64", param="audio") from None
        if self.backlog_s > self.settings.realtime_max_backlog_s:
            raise TooManyRequestsError(f"the server is {self.backlog_s:.1f} s behind this stream; audio was dropped "
                              "(send at most real-time speed)")
        raw = self.odd + raw
        self.odd = raw[-1:] if len(raw) % 2 else b""
        samples = self.resampler(pcm16_to_float(raw[: len(raw) - len(self.odd)]))
        if len(samples):
            if self.keep_audio:
                if self.recording is None and self.jobs is not None:
                    self.recording = Recording(self.jobs.incoming_path("live.wav"))
                if self.recording is not None:
                    self.recording.write(samples)
            self.backlog_s += len(samples) / SAMPLE_RATE
            await self.queue.put(("audio", samples))

    async def _update(self, session: Any) -> None:
        if not isinstance(session, dict):
            raise InvalidOptionError("session.update needs a 'session' object", param="session")
        kind = session.get("type", "transcription")
        if kind != "transcription":
            raise InvalidOptionError(f"saywho serves transcription sessions only (session.type "
                                     f"'transcription'), not '{kind}'", param="session.type")
        options, rate, model_name = self.options, self.rate, self.model_name
        audio_in = ((session.get("audio") or {}).get("input") or {})
        fmt = audio_in.get("format")
        if fmt is not None:
            if not isinstance(fmt, dict) or fmt.get("type", "audio/pcm") != "audio/pcm":
                raise InvalidOptionError("input audio format must be {'type': 'audio/pcm', 'rate': 24000 or 16000}",
                                         param="session.audio.input.format")
            rate = fmt.get("rate", DEFAULT_RATE)
            if rate not in RATES:
                raise InvalidOptionError(f"unsupported input rate {rate!r}: audio/pcm at 24000 Hz (or 16000, a "
                                         "saywho option)", param="session.audio.input.format.rate")
        tr = audio_in.get("transcription")
        if isinstance(tr, dict):
            if tr.get("model"):
                model_name = str(tr["model"])
                options = replace(options, model=stt_model(model_name, self.settings))
            if "language" in tr:
                options = replace(options, language=tr.get("language") or None)
            if "prompt" in tr:
                options = replace(options, prompt=tr.get("prompt") or None)
        if "turn_detection" in audio_in:
            td = audio_in["turn_detection"]
            if td is None:
                options = replace(options, turn_detection=False)
            elif isinstance(td, dict) and td.get("type", "server_vad") == "server_vad":
                # Fields left out take saywho's defaults (those session.created reported): a
                # prefix of 300 ms (OpenAI's) cut "Ask" off "Ask not" when a client named no prefix.
                default = LiveOptions()
                options = replace(options, turn_detection=True,
                                  threshold=float(td.get("threshold", default.threshold)),
                                  prefix_padding_ms=int(td.get("prefix_padding_ms", default.prefix_padding_ms)),
                                  silence_duration_ms=int(td.get("silence_duration_ms", default.silence_duration_ms)))
                if not 0.0 < options.threshold < 1.0 or options.silence_duration_ms < 100:
                    raise InvalidOptionError("turn_detection: threshold must lie in (0, 1) and "
                                             "silence_duration_ms be at least 100", param="turn_detection")
            else:
                raise InvalidOptionError("turn_detection must be {'type': 'server_vad', ...} or null",
                                         param="session.audio.input.turn_detection")
        extra = session.get("saywho")
        if isinstance(extra, dict) and "keep_audio" in extra:
            self.keep_audio = bool(extra["keep_audio"]) and self.jobs is not None
        if rate != self.rate:  # appends after this event are read at the new rate
            self.rate, self.resampler, self.odd = rate, StreamResampler(rate), b""
        await self.queue.put(("update", (options, model_name)))

    async def _emit(self, events: list[LiveEvent]) -> None:
        for event in events:
            if isinstance(event, SpeakerSegment):
                self.live_turns.append(SpeakerTurn(start=event.start, end=event.end, speaker=event.speaker))
            await self.send(to_wire(event, self.rate))

    async def _hand_off(self, *, notify: bool) -> None:
        """The recording so far becomes a normal job (the offline pipeline re-diarizes it)."""
        recording, self.recording = self.recording, None
        if recording is None or self.jobs is None:
            return
        path, seconds = recording.close()
        if seconds < MIN_JOB_S:
            path.unlink(missing_ok=True)
            return
        filename = f"live-{time.strftime('%Y%m%d-%H%M%S')}.wav"
        try:
            job = await asyncio.to_thread(self.jobs.submit, path, filename=filename,
                                          options=TranscribeOptions(model=self.options.model), owner=self.owner)
        except SaywhoError as exc:
            logger.warning("live session %s: recording not kept: %s", self.id, exc.message)
            if notify:
                await self.error(f"the recording could not become a job: {exc.message}", code=exc.code)
            return
        logger.info("live session %s -> job %s (%.1f s)", self.id, job.id, seconds)
        names = {row["label"]: row["name"] for row in self.engine.speakers.summary() if row["name"]}
        if names:  # runs on after the socket closes; ends with the job
            task = asyncio.create_task(carry_names(self.jobs, job.id, list(self.live_turns), names))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
        self.live_turns = []
        if notify:
            await self.send({"type": "saywho.job.created", "event_id": _event_id(), "job_id": job.id,
                             "duration_s": round(seconds, 3)})

    async def _process(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            kind, value = await self.queue.get()
            events: list[LiveEvent] = []
            if kind == "audio":
                pieces = [value]
                while not self.queue.empty() and self.queue._queue[0][0] == "audio":  # type: ignore[attr-defined]
                    pieces.append(self.queue.get_nowait()[1])
                audio = np.concatenate(pieces)
                lag = self.backlog_s
                try:
                    events = await loop.run_in_executor(self.executor, partial(self.engine.feed, audio, lag_s=lag))
                except SaywhoError as exc:
                    await self.error(exc.message, code=exc.code, param=exc.param, status=exc.status_code)
                except Exception as exc:  # the session goes on with the next audio
                    logger.exception("realtime session %s: engine failed", self.id)
                    await self.error(f"internal error: {type(exc).__name__}", code="internal_error", status=500)
                finally:
                    self.backlog_s = max(0.0, self.backlog_s - len(audio) / SAMPLE_RATE)
            elif kind == "commit":
                events = await loop.run_in_executor(self.executor, lambda: self.engine.commit(lag_s=self.backlog_s))
                if not events:
                    await self.error("the input audio buffer is empty: nothing to commit",
                                     code="input_audio_buffer_commit_empty", event_id=value)
            elif kind == "finish":
                await self._emit(await loop.run_in_executor(self.executor, self.engine.finish))
                await self._emit(await loop.run_in_executor(self.executor, self.engine.flush))
                await self._hand_off(notify=True)
            elif kind == "rename":
                label, name, event_id = value
                if label not in {row["label"] for row in self.engine.speakers.summary()}:
                    await self.error(f"no speaker '{label}' in this session", code="speaker_not_found",
                                     param="label", event_id=event_id, status=404)
                else:
                    self.engine.speakers.rename(label, name)
                    await self.send({"type": "saywho.speakers.updated", "event_id": _event_id(),
                                     "speakers": self.engine.speakers.summary()})
            elif kind == "clear":
                await loop.run_in_executor(self.executor, self.engine.clear)
                await self.send({"type": "input_audio_buffer.cleared", "event_id": _event_id()})
            elif kind == "update":
                options, model_name = value
                if options != self.options:  # a new engine; the speakers heard so far stay
                    events = await loop.run_in_executor(self.executor, self.engine.finish)
                    events += await loop.run_in_executor(self.executor, self.engine.flush)
                    speakers = self.engine.speakers
                    self.engine = LiveSession(options, manager=self.manager, known=self.known)
                    self.engine.speakers = speakers
                self.options, self.model_name = options, model_name
                await self._emit(events)
                events = []
                await self.send({"type": "session.updated", "event_id": _event_id(),
                                 "session": self.session_object()})
            await self._emit(events)
            if self.engine.speakers_due:  # `completed` has gone out: now its utterance's speakers
                await self._emit(await loop.run_in_executor(self.executor, self.engine.flush))
