"""``/v1/speakers``: the library of known voices over HTTP.

``GET /v1/speakers`` lists; ``POST /v1/speakers`` enrols, either multipart (``name``,
one or more ``file``, optional ``start``/``end`` seconds, ``merge``) or JSON
``{"name", "transcript_json", "label", "merge"}`` (a saywho JSON result and the label
to learn, e.g. after renaming a speaker in the dashboard); ``GET/PATCH/DELETE
/v1/speakers/{id}`` read, rename (``{"name": ...}``) and forget one speaker. The
library is ``settings.speakers_db`` (the CLI's default file too, owner ``shared``); with
API keys each key owns its own library file (``settings.speaker_library_for``), and
``?owner=`` must be absent or its own id. Whoever sees every key's jobs (an admin key,
or anyone when no key is set) sees every library: listing shows each speaker with its
``owner``, an id is found in whichever library holds it, ``?owner=`` picks one library
(``POST`` enrols into the shared one unless it names another). The libraries:
``speakers.owners.SpeakerLibraries``.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from saywho.errors import InvalidOptionError, NotFoundError
from saywho.server.deps import inference_of, key_owner, owner_filter, settings_of
from saywho.server.forms import audio_payload, deadline_for, read_audio
from saywho.speakers.owners import SHARED, SpeakerLibraries
from saywho.speakers.service import fingerprint_from_transcript

if TYPE_CHECKING:
    from saywho.speakers.library import SpeakerLibrary

router = APIRouter(tags=["speakers"])

OWNER = Query(None, max_length=200, description="whose library: 'shared' or a key's owner id (the 'owner' of a "
              "listed speaker); a plain key may name only its own. Default: a plain key's own; for an admin "
              "key, every library (POST: the shared one)")


def libraries_of(request: Request) -> SpeakerLibraries:
    settings = settings_of(request)
    return SpeakerLibraries(settings, (key_owner(k.encode()) for k in settings.api_keys))


def owners_in_scope(request: Request, owner: str | None) -> list[str]:
    """The owner ids of the libraries this request may act on (``owner``: the one it names)."""
    mine = owner_filter(request)  # None: this request sees every key's jobs, and every library
    if mine is not None:
        if owner not in (None, mine):  # as for another key's job: as if it did not exist
            raise NotFoundError(f"no speaker library '{owner[:100]}'", param="owner")
        return [mine]
    if owner is None:
        return libraries_of(request).owners()
    libraries_of(request).library(owner)  # 404 for an unknown owner
    return [owner]


def target_of(request: Request, owner: str | None) -> tuple[str, SpeakerLibrary]:
    """Where a new speaker goes: the key's own library; for an admin, ``owner`` or the shared one."""
    if owner is None and owner_filter(request) is None:
        owner = SHARED
    name = owners_in_scope(request, owner)[0]
    return name, libraries_of(request).library(name)


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


@router.get("/v1/speakers", summary="Known voices, each with its owner")
def list_speakers(request: Request, owner: str | None = OWNER) -> dict[str, Any]:
    owners = owners_in_scope(request, owner)
    return {"object": "list", "data": [s.to_dict() for s in libraries_of(request).list(owners)]}


@router.post("/v1/speakers", status_code=201, summary="Enrol a voice from recordings or from a transcript")
async def create_speaker(request: Request, owner: str | None = OWNER) -> JSONResponse:
    owner, library = target_of(request, owner)
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
        return JSONResponse({**speaker.to_dict(), "owner": owner}, status_code=201)

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
    return JSONResponse({**speaker.to_dict(), "owner": owner}, status_code=201)


def find(request: Request, speaker_id: str, owner: str | None) -> tuple[str, SpeakerLibrary]:
    return libraries_of(request).find(speaker_id, owners_in_scope(request, owner))


@router.get("/v1/speakers/{speaker_id}", summary="One known voice")
def get_speaker(request: Request, speaker_id: str, owner: str | None = OWNER) -> dict[str, Any]:
    owner, library = find(request, speaker_id, owner)
    return {**library.get(speaker_id).to_dict(), "owner": owner}


@router.patch("/v1/speakers/{speaker_id}", summary="Rename a known voice")
async def rename_speaker(request: Request, speaker_id: str, owner: str | None = OWNER) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidOptionError("send JSON: {\"name\": \"New name\"}") from None
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise InvalidOptionError("name is required: {\"name\": \"New name\"}", param="name")
    owner, library = await asyncio.to_thread(find, request, speaker_id, owner)
    speaker = await asyncio.to_thread(library.rename, speaker_id, body["name"])
    return {**speaker.to_dict(), "owner": owner}


@router.delete("/v1/speakers/{speaker_id}", summary="Forget a known voice")
def delete_speaker(request: Request, speaker_id: str, owner: str | None = OWNER) -> dict[str, Any]:
    owner, library = find(request, speaker_id, owner)
    speaker = library.remove(speaker_id)
    return {"id": speaker.id, "object": "speaker.deleted", "deleted": True, "name": speaker.name, "owner": owner}
