"""``POST /v1/audio/transcriptions`` and ``/v1/audio/translations`` (OpenAI's multipart API)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from saywho import formats
from saywho.server import forms, streams
from saywho.server.deps import fault, inference_of, owner_filter, settings_of
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
    upload = await forms.read_audio(parsed.file, settings)
    known = await forms.known_speakers(parsed, settings)
    payload = {**forms.audio_payload(upload, known, settings, owner_filter(request)), "options": parsed.options, "fault": fault(request),
               "stream": parsed.stream}
    deadline = forms.deadline_for(settings, upload, *known.values())
    ticket = inference.admit()  # 429 now, before a stream has started
    if parsed.stream:
        return streams.event_source(streams.transcription_stream(
            inference, payload, deadline_s=deadline, ticket=ticket, model=parsed.model,
            response_format=parsed.response_format))
    transcript = await inference.run("transcribe", payload, deadline_s=deadline, ticket=ticket, model=parsed.model)
    return render(transcript, parsed.response_format, parsed.granularities)


def render(transcript: Transcript, response_format: str, granularities: tuple[str, ...]) -> Response:
    writer = formats.get_writer(forms.WRITER_FOR[response_format])
    body = writer.render(transcript, granularities=granularities)
    return Response(body, media_type=writer.media_type)
