"""Background jobs on the supervised worker: the server's ``jobs.runner.Transcriber``.

The job runner's threads call ``transcribe``; decoding the recording into chunks
(``job_plan``) and each chunk (``job_chunk``) run in the inference worker through
``InferenceService.run``, so a job never loads a model or decodes audio in the HTTP
process, a native crash or an out-of-memory kill takes only the worker down (the job
is retried, then failed: ``JobRunner.max_attempts``), and jobs share the worker's
slots with requests. Stitching the chunks' small results stays here.
"""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from saywho.errors import TooManyRequestsError
from saywho.jobs.store import options_from_dict
from saywho.longform.plan import ChunkPlan
from saywho.longform.result import ChunkResult
from saywho.longform.run import transcribe_long
from saywho.speakers.service import library_identifier, name_speakers
from saywho.types import SAMPLE_RATE

if TYPE_CHECKING:
    from saywho.jobs.runner import JobChunkStore
    from saywho.jobs.store import Job
    from saywho.server.inference import InferenceService
    from saywho.settings import Settings
    from saywho.types import Hook, TranscribeOptions, Transcript

ADMISSION_POLL_S = 0.5
# Test-only (``settings.test_faults``): a job whose file name starts so crashes the worker.
CRASH_FILENAME = "crash-worker"


def _no_progress(step: str, *, completed: float, total: float) -> None:
    """A hook for worker calls outside a job's run (nothing to report, nothing to cancel)."""


class WorkerTranscriber:
    """Runs jobs' decoding and chunks in the inference worker. ``loop`` is the server's event
    loop (set when the app starts); the runner's threads wait on it."""

    def __init__(self, inference: InferenceService, settings: Settings) -> None:
        self.inference = inference
        self.settings = settings
        self.loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, job: Job, chunks: JobChunkStore, hook: Hook) -> Transcript:
        options = options_from_dict(job.options, cpu_threads=self.settings.cpu_threads)

        def planner(source: Any, chunk_s: float, store: Any, hook: Hook) -> ChunkPlan:
            payload = {"db_path": str(chunks.store.db_path), "uploads_dir": str(chunks.store.uploads_dir),
                       "job_id": job.id, "audio_path": str(source), "chunk_s": chunk_s}
            if self.settings.test_faults and job.filename.startswith(CRASH_FILENAME):
                payload["fault"] = "crash"  # test-only: a "poison" recording that kills the worker
            plan = ChunkPlan.from_dict(self._run("plan", payload, hook, audio_s=job.duration_s or 0.0))
            if job.duration_s is None or abs(plan.duration - job.duration_s) > 0.5:
                chunks.store.set_duration(job.id, plan.duration)  # what was decodable, not what was declared
            return plan

        transcript = transcribe_long(job.audio_path, options, chunk_s=self.settings.job_chunk_s, store=chunks,
                                     resume=True, hook=hook, planner=planner,
                                     processor=functools.partial(self._chunk, hook=hook))
        library = self.settings.speaker_library_for(job.owner)
        if not options.identify or library is None or not Path(library).exists():
            return transcript
        return name_speakers(transcript, library_identifier(library))

    def voice(self, audio_path: str | Path, spans: list[tuple[float, float]], *,
              duration_s: float) -> tuple[np.ndarray, float]:
        """(fingerprint, speech seconds) of ``spans`` of a job's recording, made in the worker:
        a corrected speaker's voice (``JobService.correct``)."""
        payload = {"audio_path": str(audio_path), "spans": [(float(a), float(b)) for a, b in spans]}
        return self._run("voice", payload, _no_progress, audio_s=duration_s)

    def _chunk(self, samples: np.ndarray, options: TranscribeOptions, *, hook: Hook) -> ChunkResult:
        payload = {"samples": samples, "options": options}
        return ChunkResult.from_dict(self._run("chunk", payload, hook, audio_s=len(samples) / SAMPLE_RATE))

    def _run(self, kind: str, payload: dict[str, Any], hook: Hook, *, audio_s: float) -> Any:
        """One worker call from a runner thread: waits for admission, forwards progress to ``hook``."""
        if self.loop is None:
            raise RuntimeError("the server's event loop is not running")
        while True:
            try:
                ticket = self.inference.admit()
                break
            except TooManyRequestsError:  # requests are ahead: a job waits its turn
                hook("queued", completed=0, total=1)  # raises JobCancelled when the job was deleted
                time.sleep(ADMISSION_POLL_S)

        def on_event(event: dict[str, Any]) -> None:
            if event.get("type") == "hook":
                hook(event["step"], completed=event["completed"], total=event["total"])

        coro = self.inference.run(kind, payload, deadline_s=self.settings.deadline_for(audio_s),
                                  ticket=ticket, on_event=on_event)
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()
