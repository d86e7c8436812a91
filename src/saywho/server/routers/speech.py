"""``POST /v1/audio/speech``: text to speech with Piper (OpenAI's JSON body)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from saywho import tts
from saywho.errors import InvalidOptionError
from saywho.server.deps import fault, inference_of, settings_of

router = APIRouter(tags=["audio"])


class SpeechRequest(BaseModel):
    model: str
    input: str
    voice: str
    response_format: str = "mp3"
    speed: float = Field(1.0)
    instructions: str | None = None  # accepted for compatibility; Piper has no style control


@router.post("/v1/audio/speech", summary="Text to speech (OpenAI-compatible)",
             response_class=Response, responses={200: {"content": {"audio/mpeg": {}}}})
async def create_speech(body: SpeechRequest, request: Request) -> Response:
    settings, inference = settings_of(request), inference_of(request)
    tts.check_model(body.model)
    voice = tts.resolve_voice(body.voice, settings.default_voice)
    if body.response_format not in tts.FORMATS:
        raise InvalidOptionError(
            f"unknown response_format '{body.response_format}': choose one of {', '.join(tts.FORMATS)}",
            param="response_format",
        )
    if not body.input.strip():
        raise InvalidOptionError("input is empty", param="input")
    if len(body.input) > settings.max_speech_chars:
        raise InvalidOptionError(f"input is {len(body.input)} characters; the limit is {settings.max_speech_chars}",
                                 param="input")
    if not tts.MIN_SPEED <= body.speed <= tts.MAX_SPEED:
        raise InvalidOptionError(f"speed must be between {tts.MIN_SPEED} and {tts.MAX_SPEED}", param="speed")
    payload = {"voice": voice, "input": body.input, "speed": body.speed, "format": body.response_format,
               "fault": fault(request)}
    # About 15 characters a second of speech: the deadline grows with the text.
    audio = await inference.run("speech", payload, deadline_s=settings.deadline_for(len(body.input) / 15),
                                model=voice)
    return Response(audio, media_type=tts.MEDIA_TYPES[body.response_format])
