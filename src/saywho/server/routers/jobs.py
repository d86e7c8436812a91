"""``/v1/jobs``: background transcription of long recordings, resumable across restarts.

``POST /v1/jobs`` (multipart, the transcription options) answers a job at once;
``GET /v1/jobs`` lists (newest first, ``limit``/``after``); ``GET /v1/jobs/{id}`` is
the state; ``/events`` streams progress as server-sent events; ``/result?format=``
renders the transcript with the job's speaker names; ``/audio`` serves the upload
(range requests); ``PUT /speakers/{label}`` names a speaker (optionally enrolling the
voice in the library); ``DELETE`` cancels and removes. The work is in ``saywho.jobs``.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.datastructures import FormData, UploadFile

from saywho import formats
from saywho.errors import InvalidOptionError, NotFoundError, PayloadTooLargeError
from saywho.jobs.service import JobService
from saywho.jobs.store import CANCELLED, FAILED, FINISHED, Job
from saywho.server.deps import settings_of
from saywho.server.forms import TRANSCRIPTION_FORMATS, parse_audio_request

router = APIRouter(tags=["jobs"])

RESULT_FORMATS = ("json", "txt", "srt", "vtt", "rttm", "diarized_json", "verbose_json", "text")
EVENT_POLL_S = 0.25
HEARTBEAT_S = 15.0
COPY_BLOCK = 1 << 20


def jobs_of(request: Request) -> JobService:
    return request.app.state.jobs


def _form_with_defaults(form: FormData, defaults: dict[str, str]) -> FormData:
    items = list(form.multi_items())
    present = {k for k, _ in items}
    return FormData(items + [(k, v) for k, v in defaults.items() if k not in present])


def _save_upload(upload: UploadFile, target: Path, limit: int) -> int:
    size = 0
    try:
        upload.file.seek(0)
        with open(target, "wb") as out:
            while block := upload.file.read(COPY_BLOCK):
                size += len(block)
                if size > limit:
                    raise PayloadTooLargeError(f"the upload is over the limit of {limit} bytes", param="file")
                out.write(block)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return size


@router.post("/v1/jobs", status_code=202, summary="Start a background transcription (returns a job at once)")
async def create_job(request: Request) -> dict[str, Any]:
    settings, jobs = settings_of(request), jobs_of(request)
    form = await request.form()
    try:
        # Jobs are about who said what: diarize unless told not to; the default model unless named.
        diarize = (form.get("diarize") or "true").strip().lower() not in ("false", "0", "no", "off")
        parsed = parse_audio_request(
            _form_with_defaults(form, {"model": settings.default_model}), settings,
            formats=TRANSCRIPTION_FORMATS, diarize=diarize,
        )
        filename = parsed.file.filename or "audio"
        incoming = jobs.incoming_path(filename)
        size = await asyncio.to_thread(_save_upload, parsed.file, incoming, settings.max_upload_bytes)
        if size == 0:
            incoming.unlink(missing_ok=True)
            raise InvalidOptionError("the uploaded file is empty", param="file")
        job = await asyncio.to_thread(jobs.submit, incoming, filename=filename, options=parsed.options)
    finally:
        await form.close()
    return job.to_dict()


@router.get("/v1/jobs", summary="Jobs, newest first")
def list_jobs(request: Request, limit: int = Query(20, ge=1, le=100), after: str | None = None) -> dict[str, Any]:
    page, has_more = jobs_of(request).store.list(limit=limit, after=after)
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
    return _job_body(jobs, jobs.store.get(job_id))


@router.delete("/v1/jobs/{job_id}", summary="Cancel a job and remove it and its files")
async def delete_job(request: Request, job_id: str) -> dict[str, Any]:
    await asyncio.to_thread(jobs_of(request).delete, job_id)
    return {"id": job_id, "object": "job.deleted", "deleted": True}


def _sse(event: str, data: dict[str, Any], event_id: int) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def job_events(request: Request, jobs: JobService, job_id: str) -> AsyncIterator[str]:
    """progress (monotonic), chunk (each finished chunk), then finished | failed | cancelled."""
    sent_percent = -1.0
    sent_chunks = -1
    counter = 0
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    yield "retry: 2000\n\n"
    while True:
        try:
            job = await asyncio.to_thread(jobs.store.get, job_id)
        except NotFoundError:  # deleted meanwhile
            counter += 1
            yield _sse("cancelled", {"id": job_id, "status": CANCELLED, "deleted": True}, counter)
            return
        chunks = {"completed": job.chunks_done, "total": job.chunks_total}
        if job.chunks_total and job.chunks_done > sent_chunks:
            first = job.chunks_done if sent_chunks < 0 else sent_chunks + 1
            for done in range(max(1, first), job.chunks_done + 1):
                counter += 1
                yield _sse("chunk", {"id": job_id, "completed": done, "total": job.chunks_total}, counter)
            sent_chunks = job.chunks_done
            quiet_since = loop.time()
        percent = 100.0 if job.state == FINISHED else round(job.progress, 1)
        if percent > sent_percent:
            sent_percent = percent
            counter += 1
            yield _sse("progress", {"id": job_id, "status": job.state, "progress": percent, "step": job.step,
                                    "chunks": chunks}, counter)
            quiet_since = loop.time()
        if job.state == FINISHED:
            counter += 1
            yield _sse("finished", {"id": job_id, "status": FINISHED, "progress": 100.0, "chunks": chunks}, counter)
            return
        if job.state == FAILED:
            counter += 1
            yield _sse("failed", {"id": job_id, "status": FAILED, "error": job.error}, counter)
            return
        if job.state == CANCELLED:
            counter += 1
            yield _sse("cancelled", {"id": job_id, "status": CANCELLED}, counter)
            return
        if await request.is_disconnected():
            return
        if loop.time() - quiet_since >= HEARTBEAT_S:
            quiet_since = loop.time()
            yield ": keep-alive\n\n"
        await asyncio.sleep(EVENT_POLL_S)


@router.get("/v1/jobs/{job_id}/events", summary="Progress as server-sent events")
def stream_job_events(request: Request, job_id: str) -> StreamingResponse:
    jobs = jobs_of(request)
    jobs.store.get(job_id)  # 404 before the stream starts
    return StreamingResponse(job_events(request, jobs, job_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/v1/jobs/{job_id}/result", summary="The transcript, in any format, with the job's speaker names")
def get_result(request: Request, job_id: str, format: str = "json", download: bool = False) -> Response:
    if format not in RESULT_FORMATS:
        raise InvalidOptionError(f"unknown format '{format}': choose one of {', '.join(RESULT_FORMATS)}",
                                 param="format")
    jobs = jobs_of(request)
    job = jobs.store.get(job_id)
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
    job = jobs_of(request).store.get(job_id)
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
    jobs = jobs_of(request)
    name = (body.get("name") or "").strip()
    await asyncio.to_thread(jobs.store.rename, job_id, label, name or None)
    answer: dict[str, Any] = {"job_id": job_id, "label": label, "name": name or None, "enrolled": None}
    if body.get("enrol") and name:
        answer["enrolled"] = await asyncio.to_thread(_enrol, request, jobs, job_id, label, name)
    return answer


def _enrol(request: Request, jobs: JobService, job_id: str, label: str, name: str) -> dict[str, Any]:
    from saywho.speakers.library import SpeakerLibrary
    from saywho.speakers.service import fingerprint_from_transcript

    data = formats.transcript_to_dict(jobs.store.raw_result(job_id))
    fingerprint, speech_s = fingerprint_from_transcript(data, label)
    speaker = SpeakerLibrary(settings_of(request).db_path).add(
        name, fingerprint, source=f"job {job_id}#{label}", speech_s=speech_s, merge=True)
    return speaker.to_dict()

