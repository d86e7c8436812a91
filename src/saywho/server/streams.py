"""The server's event streams, framed as server-sent events by ``sse-starlette``.

* a streamed transcription (``stream=true``): progress comments while the worker
  runs, ``transcript.text.delta`` as the ASR decodes, then OpenAI's closing events
  (``transcript.text.segment`` per speaker segment for ``diarized_json``, and
  ``transcript.text.done``), or one ``error`` event;
* a job's events (``/v1/jobs/{id}/events``): ``retry`` first, then numbered
  ``progress`` / ``chunk`` / ``finished`` | ``failed`` | ``cancelled`` events from
  ``JobService.follow``.

Lines end in ``\\n`` and each event in a blank line, as the dashboard, the OpenAI
client and the tests read them; a ``: keep-alive`` comment goes out every
``HEARTBEAT_S`` so that proxies keep quiet connections open.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from saywho import formats
from saywho.errors import SaywhoError
from saywho.jobs.events import JobEvent
from saywho.server.errors import error_body
from saywho.server.inference import InferenceService, Ticket
from saywho.types import Transcript

logger = logging.getLogger(__name__)

SEPARATOR = "\n"
RETRY_MS = 2000
HEARTBEAT_S = 15.0
HEADERS = {"Cache-Control": "no-cache"}  # sse-starlette adds X-Accel-Buffering: no


def sse(data: Any = None, *, event: str | None = None, id: str | None = None, comment: str | None = None,
        retry: int | None = None) -> ServerSentEvent:
    """One event; ``data`` goes out as JSON."""
    body = None if data is None else json.dumps(data, ensure_ascii=False)
    return ServerSentEvent(body, event=event, id=id, comment=comment, retry=retry, sep=SEPARATOR)


def _keep_alive() -> ServerSentEvent:
    return sse(comment="keep-alive")


def event_source(events: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    """The response that streams ``events`` (and stops them when the client goes)."""
    return EventSourceResponse(events, headers=HEADERS, sep=SEPARATOR, ping=HEARTBEAT_S,
                               ping_message_factory=_keep_alive)


# ---------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------


async def job_stream(events: AsyncIterator[JobEvent]) -> AsyncIterator[ServerSentEvent]:
    """A job's events (``JobService.follow``), numbered from 1, after the reconnect delay."""
    yield sse(retry=RETRY_MS)
    async with aclosing(events):  # a client gone closes the follower (and its subscription) now
        number = 0
        async for event in events:
            number += 1
            yield sse(event.data, event=event.name, id=str(number))


# ---------------------------------------------------------------------------
# Transcriptions
# ---------------------------------------------------------------------------


def closing_events(transcript: Transcript, response_format: str, *,
                   deltas_sent: bool = False) -> list[dict[str, Any]]:
    """OpenAI's closing events for a finished transcript: speaker segments and done.

    Text deltas are normally streamed while the ASR decodes (``deltas_sent``); when
    none were, they are sent here first so the stream always carries the whole text.
    """
    events: list[dict[str, Any]] = []
    if response_format == "diarized_json":
        body = formats.diarized_json(transcript)
        for i, segment in enumerate(body["segments"]):
            if not deltas_sent:
                text = segment["text"] if i == 0 else " " + segment["text"].lstrip()
                events.append({"type": "transcript.text.delta", "delta": text, "segment_id": segment["id"]})
            events.append(segment)  # already {"type": "transcript.text.segment", id, start, end, text, speaker}
    elif not deltas_sent:
        for i, segment in enumerate(transcript.segments):
            events.append(_delta(segment.text, first=i == 0))
    events.append({"type": "transcript.text.done", "text": transcript.text})
    return events


def _delta(text: str, first: bool) -> dict[str, Any]:
    text = text.strip()
    return {"type": "transcript.text.delta", "delta": text if first else " " + text}


async def transcription_stream(inference: InferenceService, payload: dict[str, Any], *, deadline_s: float,
                               ticket: Ticket, model: str | None,
                               response_format: str) -> AsyncIterator[ServerSentEvent]:
    """Run the transcription admitted with ``ticket``: progress comments while the worker
    runs (they keep proxies from timing out), deltas as segments decode, then the
    closing events. The ticket is released however the stream ends."""
    progress: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    task = asyncio.create_task(
        inference.run("transcribe", payload, deadline_s=deadline_s, ticket=ticket, model=model,
                      on_event=progress.put_nowait)
    )
    task.add_done_callback(lambda _: progress.put_nowait(None))
    try:
        yield sse(comment="started")
        deltas = 0
        while (item := await progress.get()) is not None:
            if item.get("type") == "text":  # an ASR segment just decoded
                if item.get("text", "").strip():
                    delta = _delta(item["text"], first=deltas == 0)
                    yield sse(delta, event=delta["type"])
                    deltas += 1
                continue
            yield sse(comment=f"progress {item.get('percent', 0)} {item.get('step', '')}")
        try:
            transcript = task.result()
        except SaywhoError as exc:
            yield sse(error_body(exc.message, exc.status_code, code=exc.code, param=exc.param), event="error")
            return
        for event in closing_events(transcript, response_format, deltas_sent=deltas > 0):
            yield sse(event, event=event["type"])
    finally:
        if not task.done():
            task.cancel()
        ticket.release()
