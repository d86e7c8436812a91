"""The jobs service the server calls: accept an upload (validated first), follow a
job's events, cancel, delete, name speakers (and enrol their voices). Nothing here
touches HTTP: ``server/routers/jobs.py`` is a thin layer on top.
"""

from __future__ import annotations

import errno
import logging
import shutil
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from saywho.audio.decode import probe_duration, remux, stream_audio
from saywho.errors import (
    AudioDecodeError,
    AudioTooLongError,
    InsufficientStorageError,
    PayloadTooLargeError,
    TooManyRequestsError,
)
from saywho.jobs import corrections
from saywho.jobs.events import JobDeleted, JobEvent, follow_job
from saywho.jobs.runner import JobRunner, Transcriber, default_transcriber
from saywho.jobs.store import Job, JobStore, new_job_id, options_to_dict
from saywho.speakers.service import enrol_from_transcript
from saywho.types import SAMPLE_RATE, TranscribeOptions

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator

    from saywho.speakers.library import Speaker

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Accepting an upload: validate first, so bad input leaves no job and no file
# ---------------------------------------------------------------------------


def probe_upload(path: Path, *, max_duration_s: float) -> float:
    """The audio's duration in seconds; raises ``AudioDecodeError`` / ``AudioTooLongError``.

    The container's duration when it declares one (and its first block decodes), else
    the file is decoded as a stream (MediaRecorder's WebM declares none).
    """
    declared = probe_duration(path)
    if declared is not None and declared > max_duration_s:  # refused on the header alone
        raise AudioTooLongError(f"the audio lasts {declared:.0f} s; the limit is {max_duration_s:.0f} s",
                                param="file")
    # A short first block proves the stream decodes; with no declared duration, decoding
    # (bounded memory) stops as soon as the limit is passed.
    blocks = stream_audio(path, block_s=5.0 if declared is not None else 30.0, max_s=max_duration_s)
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


COPY_BLOCK = 1 << 20


def save_upload(source: BinaryIO, target: Path, *, max_bytes: int) -> int:
    """Copy ``source`` (from its start) to ``target``; returns the size. Over ``max_bytes``
    raises ``PayloadTooLargeError`` and leaves no file."""
    size = 0
    try:
        source.seek(0)
        with open(target, "wb") as out:
            while block := source.read(COPY_BLOCK):
                size += len(block)
                if size > max_bytes:
                    raise PayloadTooLargeError(f"the upload is over the limit of {max_bytes} bytes", param="file")
                out.write(block)
    except OSError as exc:
        target.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise InsufficientStorageError("the disk is full: the upload could not be saved") from None
        raise
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return size


class JobService:
    """The store and the runner together: what the HTTP layer talks to.

    ``events`` is the runner's broadcaster: followers of a job (``follow``) hear its
    progress from there. ``library_path`` is the speaker library voices are enrolled in.
    """

    def __init__(self, store: JobStore, runner: JobRunner, *, max_duration_s: float = 3 * 3600.0,
                 max_upload_bytes: int = 1 << 30, library_path: str | os.PathLike[str] | None = None,
                 max_unfinished: int = 0, min_free_bytes: int = 0, retry_after_s: float = 30.0) -> None:
        self.store = store
        self.runner = runner
        self.events = runner.events
        self.max_duration_s = max_duration_s
        self.max_upload_bytes = max_upload_bytes
        self.library_path = library_path
        self.max_unfinished = max_unfinished  # 0: no limit
        self.min_free_bytes = min_free_bytes
        self.retry_after_s = retry_after_s
        self._correcting: dict[str, threading.Lock] = {}  # job id -> its corrections' lock
        self._locks = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, transcriber: Transcriber | None = None) -> JobService:
        store = JobStore(settings.db_path, Path(settings.data_dir) / "uploads")
        transcriber = transcriber or default_transcriber(
            chunk_s=settings.job_chunk_s, cpu_threads=settings.cpu_threads, library_path=settings.speakers_db)
        runner = JobRunner(store, transcriber, max_attempts=settings.job_max_attempts)
        return cls(store, runner, max_duration_s=settings.max_duration_s,
                   max_upload_bytes=settings.max_upload_bytes, library_path=settings.speakers_db,
                   max_unfinished=settings.max_queued_jobs, min_free_bytes=settings.min_free_bytes,
                   retry_after_s=settings.retry_after_s)

    def start(self) -> list[str]:
        return self.runner.start()

    def stop(self) -> None:
        self.runner.stop()

    def incoming_path(self, filename: str) -> Path:
        """Where an upload is written while it is checked (not yet a job)."""
        incoming = self.store.uploads_dir / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        return incoming / f"{uuid.uuid4().hex}{safe_suffix(filename)}"

    def admit(self) -> None:
        """429 (with a time to come back) when ``max_unfinished`` jobs are queued or running."""
        if self.max_unfinished and self.store.count_unfinished() >= self.max_unfinished:
            raise TooManyRequestsError(f"{self.max_unfinished} jobs are already queued or running; "
                                       "try again when one has finished", retry_after=self.retry_after_s)

    def check_space(self, needed: int) -> None:
        """507 unless ``needed`` bytes fit on the uploads' disk with ``min_free_bytes`` to spare."""
        free = shutil.disk_usage(self.store.uploads_dir).free
        if free < needed + self.min_free_bytes:
            raise InsufficientStorageError(
                f"not enough disk space for this job: {needed / 1e6:.0f} MB needed, "
                f"{max(0, free - self.min_free_bytes) / 1e6:.0f} MB available")

    def accept(self, source: BinaryIO, *, filename: str, options: TranscribeOptions,
               owner: str | None = None) -> Job:
        """Save an uploaded file (within ``max_upload_bytes``), then ``submit`` it. Blocking."""
        self.admit()
        source.seek(0, 2)
        self.check_space(source.tell())
        incoming = self.incoming_path(filename)
        size = save_upload(source, incoming, max_bytes=self.max_upload_bytes)
        if size == 0:
            incoming.unlink(missing_ok=True)
            raise AudioDecodeError("the uploaded file is empty", param="file")
        return self.submit(incoming, filename=filename, options=options, owner=owner)

    def submit(self, upload: Path, *, filename: str, options: TranscribeOptions, owner: str | None = None) -> Job:
        """Check ``upload`` is audio, then move it under a new job and queue the job.

        On any error the upload is deleted and no job exists.
        """

        try:
            try:
                duration = probe_upload(upload, max_duration_s=self.max_duration_s)
            except (AudioDecodeError, AudioTooLongError) as exc:  # name the user's file, not our temporary path
                raise type(exc)(exc.message.replace(str(upload), clean_filename(filename)), param="file") from None
            # Planning writes the decoded chunks (float32, 16 kHz) next to the upload.
            self.check_space(int(duration * SAMPLE_RATE * 4))
            job_id = new_job_id()
            folder = self.store.job_dir(job_id)
            folder.mkdir(parents=True)
            audio_path = folder / f"audio{safe_suffix(filename)}"
            if probe_duration(upload) is None:
                upload = with_declared_duration(upload)
            size = upload.stat().st_size
            upload.replace(audio_path)
        except BaseException:
            upload.unlink(missing_ok=True)
            raise
        try:
            job = self.store.create(job_id, filename=clean_filename(filename), audio_path=audio_path,
                                    size_bytes=size, options=options_to_dict(options), duration_s=duration,
                                    owner=owner)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.runner.submit(job_id)
        return job

    def delete(self, job_id: str, *, owner: str | None = None) -> None:
        """Cancel the job if it runs, then remove it and its files."""
        self.store.get(job_id, owner=owner)  # 404 first
        self.runner.cancel(job_id)
        self.runner.wait_idle(job_id, timeout=30.0)
        self.store.delete(job_id)
        self.events.publish(JobDeleted(job_id))

    def follow(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's events, live (``jobs.events.follow_job``); consume on the event loop."""
        return follow_job(self.store, self.events, job_id)

    def correct(self, job_id: str, edit: dict[str, Any]) -> dict[str, Any]:
        """Merge speakers, move a line or words, split a line (``jobs.corrections``);
        every export, rename and enrolment of the job then sees the corrected speakers.

        After a merge or a move, the voices of the speakers it changed are made again from
        the job's audio of the lines each now holds (by the transcriber's ``voice``, in the
        inference worker), and kept with the correction."""
        with self._history(job_id):  # each correction is checked against the one before
            canonical, current = self.store.check_correction(job_id, edit)
            voices = self._voices(self.store.get(job_id), current, canonical)
            if voices:
                canonical["fingerprints"] = voices
            return self.store.add_correction(job_id, canonical)

    def _voices(self, job: Job, current: Any, edit: dict[str, Any]) -> dict[str, list[float]]:
        """label -> the fingerprint of its lines after ``edit``; a voice that cannot be made
        (no model runner, too little speech, the audio gone) keeps the machine's."""
        voice = getattr(self.runner.transcriber, "voice", None)
        labels = corrections.speakers_changed(current, edit)
        if voice is None or not labels:
            return {}
        after = corrections.apply(current, edit)
        voices = {}
        for label in labels:
            lines = corrections.lines_of(after, label)
            if not lines:
                continue
            try:
                fingerprint, _speech_s = voice(job.audio_path, lines, duration_s=job.duration_s or after.duration)
            except Exception as exc:  # the correction stands; only this voice stays the machine's
                logger.info("job %s: %s keeps its voice (%s)", job.id, label, getattr(exc, "message", exc))
                continue
            voices[label] = [round(float(x), 6) for x in fingerprint]
        return voices

    def _history(self, job_id: str) -> threading.Lock:
        """The lock of a job's corrections: one change to its history at a time."""
        with self._locks:
            return self._correcting.setdefault(job_id, threading.Lock())

    def undo(self, job_id: str) -> dict[str, Any] | None:
        """Forget the job's last correction or rename; returns it (None when there was none)."""
        with self._history(job_id):
            return self.store.undo_correction(job_id)

    def name_speaker(self, job_id: str, label: str, name: str | None, *, enrol: bool = False,
                     library_path: str | os.PathLike[str] | None = None) -> Speaker | None:
        """Show ``label`` as ``name`` in every export of the job (None forgets the name).
        With ``enrol``, the voice also joins the speaker library; returns that speaker."""
        with self._history(job_id):
            self.store.rename(job_id, label, name or None)
        if not (enrol and name):
            return None
        return enrol_from_transcript(library_path or self.library_path, self.store.corrected_result(job_id), label, name,
                                     source=f"job {job_id}#{label}")


def with_declared_duration(upload: Path) -> Path:
    """A copy of ``upload`` that declares its duration (the same audio, remuxed), so a
    player shows its length and can seek; ``upload`` itself when that fails. A
    recording made in the browser (MediaRecorder's WebM) needs this."""
    fixed = upload.with_name(f"{upload.stem}.remuxed{upload.suffix}")
    try:
        remux(upload, fixed)
        if probe_duration(fixed) is None:
            raise AudioDecodeError("still no duration")
    except Exception as exc:  # best effort: the original still transcribes
        logger.info("could not give %s a duration (%s); keeping it as it came", upload.name, exc)
        fixed.unlink(missing_ok=True)
        return upload
    upload.unlink(missing_ok=True)
    return fixed


def safe_suffix(filename: str) -> str:
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 8 else ""


def clean_filename(filename: str) -> str:
    name = Path((filename or "").replace("\\", "/")).name.strip()
    return "".join(c for c in name if c.isprintable())[:200] or "audio"
