"""``/v1/jobs``: background transcription of long recordings, resumable across restarts.

``POST /v1/jobs`` (multipart, the transcription options) answers a job at once;
``GET /v1/jobs`` lists (newest first, ``limit``/``after``); ``GET /v1/jobs/{id}`` is
the state; ``/events`` streams progress as server-sent events; ``/result?format=``
renders the transcript with the job's speaker names; ``/audio`` serves the upload
(range requests); ``PUT /speakers/{label}`` names a speaker (optionally enrolling the
voice in the library); ``/corrections`` merges speakers, moves a line or words to
another speaker, splits a line (``DELETE /corrections/last`` undoes the last of these or
a rename); ``DELETE``
cancels and removes. The work is in ``saywho.jobs``;
the event stream's framing in ``saywho.server.streams``.
"""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from sse_starlette import EventSourceResponse
from starlette.datastructures import FormData

from saywho import formats
from saywho.errors import InvalidOptionError
from saywho.jobs import corrections
from saywho.jobs.service import JobService
from saywho.jobs.store import Job
from saywho.server import streams
from saywho.server.deps import creator_of, owner_filter, settings_of
from saywho.server.forms import TRANSCRIPTION_FORMATS, form_bool, parse_audio_request

router = APIRouter(tags=["jobs"])

RESULT_FORMATS = ("json", "txt", "srt", "vtt", "rttm", "diarized_json", "verbose_json", "text")


def jobs_of(request: Request) -> JobService:
    return request.app.state.jobs


def _form_with_defaults(form: FormData, defaults: dict[str, str]) -> FormData:
    items = list(form.multi_items())
    present = {k for k, _ in items}
    return FormData(items + [(k, v) for k, v in defaults.items() if k not in present])


@router.post("/v1/jobs", status_code=202, summary="Start a background transcription (returns a job at once)")
async def create_job(request: Request) -> dict[str, Any]:
    settings, jobs = settings_of(request), jobs_of(request)
    form = await request.form()
    try:
        # Jobs are about who said what: diarize unless told not to; the default model unless named.
        diarize = form_bool(form, "diarize", default=True)
        parsed = parse_audio_request(
            _form_with_defaults(form, {"model": settings.default_model}), settings,
            formats=TRANSCRIPTION_FORMATS, diarize=diarize,
        )
        job = await asyncio.to_thread(jobs.accept, parsed.file.file, filename=parsed.file.filename or "audio",
                                      options=parsed.options, owner=creator_of(request))
    finally:
        await form.close()
    return job.to_dict()


@router.get("/v1/jobs", summary="Jobs, newest first")
def list_jobs(request: Request, limit: int = Query(20, ge=1, le=100), after: str | None = None) -> dict[str, Any]:
    page, has_more = jobs_of(request).store.list(limit=limit, after=after or None, owner=owner_filter(request))
    data = [job.to_dict() for job in page]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}


def _job_body(jobs: JobService, job: Job) -> dict[str, Any]:
    body = job.to_dict()
    body["speaker_names"] = jobs.store.names(job.id)
    return body


@router.get("/v1/jobs/{job_id}", summary="A job's state, progress and error")
def get_job(request: Request, job_id: str) -> dict[str, Any]:
    jobs = jobs_of(request)
    return _job_body(jobs, jobs.store.get(job_id, owner=owner_filter(request)))


@router.delete("/v1/jobs/{job_id}", summary="Cancel a job and remove it and its files")
async def delete_job(request: Request, job_id: str) -> dict[str, Any]:
    await asyncio.to_thread(jobs_of(request).delete, job_id, owner=owner_filter(request))
    return {"id": job_id, "object": "job.deleted", "deleted": True}


@router.get("/v1/jobs/{job_id}/events", summary="Progress as server-sent events")
def stream_job_events(request: Request, job_id: str) -> EventSourceResponse:
    jobs = jobs_of(request)
    jobs.store.get(job_id, owner=owner_filter(request))  # 404 before the stream starts
    return streams.event_source(streams.job_stream(jobs.follow(job_id)))


@router.get("/v1/jobs/{job_id}/result", summary="The transcript, in any format, with the job's speaker names")
def get_result(request: Request, job_id: str, format: str = "json", download: bool = False) -> Response:
    if format not in RESULT_FORMATS:
        raise InvalidOptionError(f"unknown format '{format}': choose one of {', '.join(RESULT_FORMATS)}",
                                 param="format")
    jobs = jobs_of(request)
    job = jobs.store.get(job_id, owner=owner_filter(request))
    transcript = jobs.store.result(job_id)
    writer = formats.get_writer(format)
    body = writer.render(transcript, uri=Path(job.filename).stem or job_id)
    headers = {}
    if download:
        stem = Path(job.filename).stem or job_id
        name = f"{stem}.{format}.{writer.extension}" if format.endswith("json") and format != "json" \
            else f"{stem}.{writer.extension}"
        headers["Content-Disposition"] = f"attachment; filename=\"{_ascii(name)}\""
    return Response(body, media_type=writer.media_type, headers=headers)


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


@router.get("/v1/jobs/{job_id}/audio", summary="The uploaded audio (supports range requests)")
def get_audio(request: Request, job_id: str) -> FileResponse:
    job = jobs_of(request).store.get(job_id, owner=owner_filter(request))
    path = Path(job.audio_path)
    if not path.exists():
        raise InvalidOptionError(f"job '{job_id}' has no audio any more", param="job_id")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".webm":
        media_type = "audio/webm"
    return FileResponse(path, media_type=media_type)


@router.put("/v1/jobs/{job_id}/speakers/{label}", summary="Name a speaker of this job (every export shows it)")
async def rename_speaker(request: Request, job_id: str, label: str) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidOptionError('send JSON: {"name": "...", "enrol": false}', param="name") from None
    if not isinstance(body, dict) or not isinstance(body.get("name", ""), (str, type(None))):
        raise InvalidOptionError("name must be a string (empty to forget the name)", param="name")
    name = (body.get("name") or "").strip()
    job = jobs_of(request).store.get(job_id, owner=owner_filter(request))  # 404 for another key's job
    # A voice enrolled from a job goes to the library of the key that owns the job (an admin's too).
    enrolled = await asyncio.to_thread(jobs_of(request).name_speaker, job_id, label, name or None,
                                       enrol=bool(body.get("enrol")),
                                       library_path=settings_of(request).speaker_library_for(job.owner))
    return {"job_id": job_id, "label": label, "name": name or None,
            "enrolled": None if enrolled is None else enrolled.to_dict()}


@router.get("/v1/jobs/{job_id}/corrections", summary="The corrections made to this job's speakers, oldest first")
def list_corrections(request: Request, job_id: str) -> dict[str, Any]:
    jobs = jobs_of(request)
    jobs.store.get(job_id, owner=owner_filter(request))  # 404 for another key's job
    return {"object": "list", "data": [corrections.public(e) for e in jobs.store.corrections(job_id)]}


@router.post("/v1/jobs/{job_id}/corrections", summary="Merge two speakers, move a line (or words), split a line")
async def add_correction(request: Request, job_id: str) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidOptionError('send JSON, e.g. {"op": "merge", "source": "Speaker_1", "target": "Speaker_0"}',
                                 param="op") from None
    if not isinstance(body, dict):
        raise InvalidOptionError("a correction is a JSON object with an 'op'", param="op")
    jobs = jobs_of(request)
    jobs.store.get(job_id, owner=owner_filter(request))  # 404 for another key's job
    edit = await asyncio.to_thread(jobs.correct, job_id, body)
    return {"job_id": job_id, "correction": corrections.public(edit),
            "corrections": len(jobs.store.corrections(job_id))}


@router.delete("/v1/jobs/{job_id}/corrections/last", summary="Undo the last correction or rename")
async def undo_correction(request: Request, job_id: str) -> dict[str, Any]:
    jobs = jobs_of(request)
    jobs.store.get(job_id, owner=owner_filter(request))  # 404 for another key's job
    undone = await asyncio.to_thread(jobs.undo, job_id)
    return {"job_id": job_id, "undone": None if undone is None else corrections.public(undone),
            "corrections": len(jobs.store.corrections(job_id))}
