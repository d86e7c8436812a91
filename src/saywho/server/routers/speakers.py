"""``/v1/speakers``: the library of known voices over HTTP.

``GET /v1/speakers`` lists; ``POST /v1/speakers`` enrols, either multipart (``name``,
one or more ``file``, optional ``start``/``end`` seconds, ``merge``) or JSON
``{"name", "transcript_json", "label", "merge"}`` (a saywho JSON result and the label
to learn, e.g. after renaming a speaker in the dashboard); ``GET/PATCH/DELETE
/v1/speakers/{id}`` read, rename (``{"name": ...}``) and forget one speaker. The
library is ``settings.speakers_db`` (the CLI's default file too); with API keys each key has
its own library file (``settings.speaker_library_for``), an admin key the shared one.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from saywho.errors import InvalidOptionError
from saywho.server.deps import inference_of, owner_filter, settings_of
from saywho.server.forms import audio_payload, deadline_for, read_audio
from saywho.speakers.library import SpeakerLibrary
from saywho.speakers.service import fingerprint_from_transcript

router = APIRouter(tags=["speakers"])


def library_of(request: Request) -> SpeakerLibrary:
    return SpeakerLibrary(settings_of(request).speaker_library_for(owner_filter(request)))


def _bool(value: Any, param: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise InvalidOptionError(f"{param} must be true or false", param=param)


def _seconds(value: Any, param: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidOptionError(f"{param} must be a number of seconds", param=param) from None


@router.get("/v1/speakers", summary="Known voices")
def list_speakers(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": [s.to_dict() for s in library_of(request).list()]}


@router.post("/v1/speakers", status_code=201, summary="Enrol a voice from recordings or from a transcript")
async def create_speaker(request: Request) -> JSONResponse:
    library = library_of(request)
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidOptionError("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidOptionError("the request body must be a JSON object")
        name, label, transcript = body.get("name"), body.get("label"), body.get("transcript_json")
        if not isinstance(name, str):
            raise InvalidOptionError("name is required", param="name")
        if not isinstance(label, str) or not label:
            raise InvalidOptionError("label is required with transcript_json (e.g. Speaker_1)", param="label")
        if isinstance(transcript, str):
            try:
                transcript = json.loads(transcript)
            except json.JSONDecodeError:
                raise InvalidOptionError("transcript_json is not valid JSON", param="transcript_json") from None
        if not isinstance(transcript, dict):
            raise InvalidOptionError("transcript_json must be a saywho JSON result", param="transcript_json")
        fingerprint, speech_s = fingerprint_from_transcript(transcript, label)
        speaker = await asyncio.to_thread(
            library.add, name, fingerprint, source=f"transcript#{label}", speech_s=speech_s,
            merge=_bool(body.get("merge"), "merge"),
        )
        return JSONResponse(speaker.to_dict(), status_code=201)

    form = await request.form()
    name = form.get("name")
    if not isinstance(name, str):
        raise InvalidOptionError("name is required", param="name")
    uploads = [f for key in ("file", "file[]", "files") for f in form.getlist(key) if isinstance(f, UploadFile)]
    if not uploads:
        raise InvalidOptionError("send one or more recordings of the voice as 'file', or JSON with "
                                 "transcript_json and label", param="file")
    start, end = _seconds(form.get("start"), "start"), _seconds(form.get("end"), "end")
    settings = settings_of(request)
    vectors, total, sources = [], 0.0, []
    for i, upload in enumerate(uploads):
        param = "file" if len(uploads) == 1 else f"file[{i}]"
        audio = await read_audio(upload, settings, param=param)
        payload = {**audio_payload(audio, {}, settings), "start": start, "end": end}
        try:  # decoded and fingerprinted in the supervised worker, like every model call
            fingerprint, speech_s = await inference_of(request).run(
                "fingerprint", payload, deadline_s=deadline_for(settings, audio))
        except InvalidOptionError as exc:
            raise InvalidOptionError(f"{upload.filename or param}: {exc.message}", param=exc.param or param) from None
        vectors.append(fingerprint)
        total += speech_s
        sources.append(upload.filename or "upload")
    speaker = await asyncio.to_thread(
        library.add, name, np.stack(vectors), source=", ".join(sources), speech_s=round(total, 2),
        merge=_bool(form.get("merge"), "merge"),
    )
    return JSONResponse(speaker.to_dict(), status_code=201)


@router.get("/v1/speakers/{speaker_id}", summary="One known voice")
def get_speaker(request: Request, speaker_id: str) -> dict[str, Any]:
    return library_of(request).get(speaker_id).to_dict()


@router.patch("/v1/speakers/{speaker_id}", summary="Rename a known voice")
async def rename_speaker(request: Request, speaker_id: str) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidOptionError("send JSON: {\"name\": \"New name\"}") from None
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise InvalidOptionError("name is required: {\"name\": \"New name\"}", param="name")
    speaker = await asyncio.to_thread(library_of(request).rename, speaker_id, body["name"])
    return speaker.to_dict()


@router.delete("/v1/speakers/{speaker_id}", summary="Forget a known voice")
def delete_speaker(request: Request, speaker_id: str) -> dict[str, Any]:
    speaker = library_of(request).remove(speaker_id)
    return {"id": speaker.id, "object": "speaker.deleted", "deleted": True, "name": speaker.name}
