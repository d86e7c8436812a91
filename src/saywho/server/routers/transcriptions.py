"""``POST /v1/audio/transcriptions`` and ``/v1/audio/translations`` (OpenAI's multipart API)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from saywho import formats
from saywho.errors import SaywhoError
from saywho.server import forms
from saywho.server.deps import fault, inference_of, settings_of
from saywho.server.errors import error_body
from saywho.types import Transcript

logger = logging.getLogger(__name__)

router = APIRouter(tags=["audio"])


@router.post("/v1/audio/transcriptions", summary="Speech to text, with speakers (OpenAI-compatible)")
async def create_transcription(request: Request) -> Response:
    return await _handle(request, task="transcribe", allowed=forms.TRANSCRIPTION_FORMATS)


@router.post("/v1/audio/translations", summary="Speech in any language to English text (OpenAI-compatible)")
async def create_translation(request: Request) -> Response:
    return await _handle(request, task="translate", allowed=forms.TRANSLATION_FORMATS)


async def _handle(request: Request, *, task: str, allowed: tuple[str, ...]) -> Response:
    settings, inference = settings_of(request), inference_of(request)
    form = await request.form()
    parsed = forms.parse_audio_request(form, settings, task=task, formats=allowed,
                                       diarize=False if task == "translate" else None)
    samples = await forms.read_audio(parsed.file, settings)
    known = await forms.known_speakers(parsed, settings)
    payload = {"samples": samples, "options": parsed.options, "known": known, "fault": fault(request),
               "stream": parsed.stream}
    deadline = settings.deadline_for(len(samples) / 16_000)
    ticket = inference.admit()  # 429 now, before a stream has started
    if parsed.stream:
        return StreamingResponse(_events(inference, payload, deadline, ticket, parsed),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    transcript = await inference.run("transcribe", payload, deadline_s=deadline, ticket=ticket, model=parsed.model)
    return render(transcript, parsed.response_format, parsed.granularities)


def render(transcript: Transcript, response_format: str, granularities: tuple[str, ...]) -> Response:
    writer = formats.get_writer(forms.WRITER_FOR[response_format])
    body = writer.render(transcript, granularities=granularities)
    return Response(body, media_type=writer.media_type)


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


def stream_events(transcript: Transcript, response_format: str, *, deltas_sent: bool = False) -> list[dict[str, Any]]:
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
            text = segment.text.strip()
            events.append({"type": "transcript.text.delta", "delta": text if i == 0 else " " + text})
    events.append({"type": "transcript.text.done", "text": transcript.text})
    return events


def _delta(text: str, first: bool) -> dict[str, Any]:
    text = text.strip()
    return {"type": "transcript.text.delta", "delta": text if first else " " + text}


async def _events(inference: Any, payload: dict[str, Any], deadline: float, ticket: Any,
                  parsed: forms.AudioRequest) -> AsyncIterator[str]:
    """Progress comments while the worker runs (they keep proxies from timing out), then events."""
    import asyncio

    progress: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    task = asyncio.create_task(
        inference.run("transcribe", payload, deadline_s=deadline, ticket=ticket, model=parsed.model,
                      on_event=progress.put_nowait)
    )
    task.add_done_callback(lambda _: progress.put_nowait(None))
    try:
        yield ": started\n\n"
        deltas = 0
        while (item := await progress.get()) is not None:
            if item.get("type") == "text":  # an ASR segment just decoded
                if item.get("text", "").strip():
                    yield _sse(_delta(item["text"], first=deltas == 0))
                    deltas += 1
                continue
            yield f": progress {item.get('percent', 0)} {item.get('step', '')}\n\n"
        try:
            transcript = task.result()
        except SaywhoError as exc:
            yield f"event: error\ndata: {json.dumps(error_body(exc.message, exc.status_code, code=exc.code, param=exc.param))}\n\n"
            return
        for event in stream_events(transcript, parsed.response_format, deltas_sent=deltas > 0):
            yield _sse(event)
    finally:
        if not task.done():
            task.cancel()
        ticket.release()
