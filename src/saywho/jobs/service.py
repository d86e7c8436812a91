"""The jobs service the server calls: accept an upload (validated first), list, cancel,
delete, name speakers. Nothing here touches HTTP: ``server/routers/jobs.py`` is a thin
layer on top.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

from saywho.audio.decode import probe_duration, stream_audio
from saywho.errors import AudioDecodeError, AudioTooLongError
from saywho.jobs.runner import JobRunner, Transcriber, default_transcriber
from saywho.jobs.store import Job, JobStore, new_job_id, options_to_dict
from saywho.types import SAMPLE_RATE, TranscribeOptions

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Accepting an upload: validate first, so bad input leaves no job and no file
# ---------------------------------------------------------------------------


def probe_upload(path: Path, *, max_duration_s: float) -> float:
    """The audio's duration in seconds; raises ``AudioDecodeError`` / ``AudioTooLongError``.

    The container's duration when it declares one (and its first block decodes), else
    the file is decoded as a stream (MediaRecorder's WebM declares none).
    """
    from saywho.errors import AudioDecodeError

    declared = probe_duration(path)
    blocks = stream_audio(path, block_s=30.0)
    try:
        first = next(blocks, None)
        if first is None or not len(first):
            raise AudioDecodeError("the upload holds no audio samples", param="file")
        if declared is None:
            declared = (len(first) + sum(len(b) for b in blocks)) / SAMPLE_RATE
    finally:
        blocks.close()
    if declared > max_duration_s:
        raise AudioTooLongError(f"the audio lasts {declared:.0f} s; the limit is {max_duration_s:.0f} s",
                                param="file")
    return round(declared, 3)


class JobService:
    """The store and the runner together: what the HTTP layer talks to."""

    def __init__(self, store: JobStore, runner: JobRunner, *, max_duration_s: float = 3 * 3600.0) -> None:
        self.store = store
        self.runner = runner
        self.max_duration_s = max_duration_s

    @classmethod
    def from_settings(cls, settings: Any, transcriber: Transcriber | None = None) -> JobService:
        store = JobStore(settings.db_path, Path(settings.data_dir) / "uploads")
        transcriber = transcriber or default_transcriber(
            chunk_s=settings.job_chunk_s, cpu_threads=settings.cpu_threads, library_path=settings.db_path)
        return cls(store, JobRunner(store, transcriber), max_duration_s=settings.max_duration_s)

    def start(self) -> list[str]:
        return self.runner.start()

    def stop(self) -> None:
        self.runner.stop()

    def incoming_path(self, filename: str) -> Path:
        """Where an upload is written while it is checked (not yet a job)."""
        incoming = self.store.uploads_dir / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        return incoming / f"{uuid.uuid4().hex}{safe_suffix(filename)}"

    def submit(self, upload: Path, *, filename: str, options: TranscribeOptions) -> Job:
        """Check ``upload`` is audio, then move it under a new job and queue the job.

        On any error the upload is deleted and no job exists.
        """

        try:
            try:
                duration = probe_upload(upload, max_duration_s=self.max_duration_s)
            except AudioDecodeError as exc:  # name the user's file, not our temporary path
                raise AudioDecodeError(exc.message.replace(str(upload), clean_filename(filename)),
                                       param="file") from None
            job_id = new_job_id()
            folder = self.store.job_dir(job_id)
            folder.mkdir(parents=True)
            audio_path = folder / f"audio{safe_suffix(filename)}"
            size = upload.stat().st_size
            upload.replace(audio_path)
        except BaseException:
            upload.unlink(missing_ok=True)
            raise
        try:
            job = self.store.create(job_id, filename=clean_filename(filename), audio_path=audio_path,
                                    size_bytes=size, options=options_to_dict(options), duration_s=duration)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.runner.submit(job_id)
        return job

    def delete(self, job_id: str) -> None:
        """Cancel the job if it runs, then remove it and its files."""
        self.store.get(job_id)  # 404 first
        self.runner.cancel(job_id)
        self.runner.wait_idle(job_id, timeout=30.0)
        self.store.delete(job_id)


def safe_suffix(filename: str) -> str:
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 8 else ""


def clean_filename(filename: str) -> str:
    name = Path((filename or "").replace("\\", "/")).name.strip()
    return "".join(c for c in name if c.isprintable())[:200] or "audio"
