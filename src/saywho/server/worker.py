"""The inference worker: a spawned child process that holds the models and runs jobs.

The parent (``inference.InferenceService``) sends ``("job", job_id, kind, payload)``
over a pipe; the child answers ``("event" | "result" | "error" | "device_error", job_id,
data)``. Jobs run on a small thread pool (one thread per inference slot) sharing one
``ModelManager``. Nothing here touches HTTP.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from saywho.audio.decode import decode_audio
from saywho.errors import AudioDecodeError, AudioTooLongError, InsufficientStorageError, SaywhoError
from saywho.runtime import configure_openmp, release_memory, set_torch_threads, tune_malloc
from saywho.speakers.service import library_identifier
from saywho.types import SAMPLE_RATE

logger = logging.getLogger(__name__)

# Messages of backends that have lost their device: the process must be replaced.
DEVICE_ERROR_MARKERS = (
    "cuda error", "cuda out of memory", "cudnn", "cublas", "device-side assert", "hip error",
    "mps backend", "illegal memory access", "out of memory", "device lost",
)
PROGRESS_INTERVAL_S = 0.5
# Jobs about the models themselves: answered on their own thread, never queued behind inference.
CONTROL_KINDS = frozenset({"models", "unload", "ttl", "loaded"})


def is_device_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(marker in text for marker in DEVICE_ERROR_MARKERS)


def error_info(exc: SaywhoError) -> dict[str, Any]:
    """A SaywhoError as plain data (its class may not survive pickling)."""
    return {"class": type(exc).__name__, "message": exc.message, "param": exc.param,
            "status_code": exc.status_code, "code": exc.code}


# ---------------------------------------------------------------------------
# Job handlers (run in the child)
# ---------------------------------------------------------------------------


class Worker:
    """The child's state: one model manager, the job handlers."""

    def __init__(self, settings: Any, publish: Callable[[dict[str, Any]], None] | None = None) -> None:
        from saywho.models.manager import (
            ModelManager,  # lazy: the HTTP process imports this module; models load in the worker child only
        )

        self.settings = settings
        self._publish = publish
        self.manager = ModelManager(self._load, ttl_s=settings.model_ttl_s,
                                    ttls=getattr(settings, "model_ttls", {}), name_of=model_name,
                                    on_change=self._models_changed)

    def models(self) -> dict[str, Any]:
        """Loaded models (``ModelManager.status``), per-model TTLs and this process's resident memory."""
        return {"loaded": self.manager.status(), "ttls": self.manager.ttls(), "rss_bytes": _rss_bytes(),
                "at": time.time()}

    def _models_changed(self) -> None:
        """After a load or an unload: hand freed memory back first, so the report shows the drop."""
        release_memory()
        self.publish_models()

    def publish_models(self) -> None:
        """Send the parent what is loaded now (after each load, unload and job), so that it can
        answer ``/v1/models`` and ``/health/ready`` without waiting for a busy worker."""
        if self._publish is not None:
            self._publish(self.models())

    @staticmethod
    def _load(key: str) -> Any:
        kind, _, name = key.partition("|")
        if kind == "asr":
            from saywho.asr import (
                whisper as asr,  # lazy: the HTTP process imports this module; models load in the worker child only
            )

            return asr.load_model(key)
        if kind == "tts":
            from saywho import (
                tts,  # lazy: the HTTP process imports this module; models load in the worker child only
            )

            return tts.load_voice(name)
        raise KeyError(key)

    def preload(self, names: list[str]) -> None:
        """Load the named ASR models / voices and warm the diarization models."""
        from saywho import (
            tts,  # lazy: the HTTP process imports this module; models load in the worker child only
        )
        from saywho.asr import (
            whisper as asr,  # lazy: the HTTP process imports this module; models load in the worker child only
        )
        from saywho.types import (
            TranscribeOptions,  # lazy: the HTTP process imports this module; models load in the worker child only
        )

        for name in names:
            if name in tts.installed_voices():
                self.manager.preload(f"tts|{name}")
            elif name in ("diarization", "segmentation", "embedding"):
                _warm_diarization()
            else:
                self.manager.preload(asr.model_key(TranscribeOptions(model=name,
                                                                     cpu_threads=self.settings.cpu_threads)))

    def handle(self, kind: str, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> Any:
        _inject_fault(payload.get("fault"))
        handler = getattr(self, f"job_{kind}", None)
        if handler is None:
            raise KeyError(f"unknown job kind {kind!r}")
        return handler(payload, emit)

    def _transcript(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> Any:
        from saywho.pipeline import (
            transcribe,  # lazy: the HTTP process imports this module; models load in the worker child only
        )
        from saywho.progress import (
            ProgressScale,  # lazy: the HTTP process imports this module; models load in the worker child only
        )

        last = [0.0]

        def on_progress(percent: float, step: str) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S:
                last[0] = now
                emit({"type": "progress", "percent": round(percent, 1), "step": step})

        def on_segment(segment: Any) -> None:  # streaming: text as soon as it is decoded
            emit({"type": "text", "text": segment.text})


        # The request's key's own library (its owner's file), else the server's.
        library = payload.get("library_path") or getattr(self.settings, "speakers_db", None)
        known = {name: _samples({"audio": data, "max_duration_s": payload.get("max_duration_s")})
                 for name, data in (payload.get("known") or {}).items()}
        return transcribe(
            _samples(payload),
            payload["options"],
            hook=ProgressScale(on_progress),
            manager=self.manager,
            identifier=_identifier(known) if known else library_identifier(library) if library else None,
            on_segment=on_segment if payload.get("stream") else None,
        )

    def job_transcribe(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> Any:
        """-> Transcript"""
        return self._transcript(payload, emit)

    def job_diarize_chunk(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> Any:
        """-> the per-chunk worker's dict (``process_chunk(...).to_dict()``), on this worker's models."""
        from saywho.longform.chunk import (
            process_chunk,  # lazy: the HTTP process imports this module, runs no model
        )

        return process_chunk(_samples(payload), payload["options"], manager=self.manager).to_dict()

    def job_plan(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """A background job's chunk plan: the recording decoded here, each chunk's audio saved to
        the job's folder (``jobs.runner.JobChunkStore``) -> ``ChunkPlan.to_dict()``."""
        from saywho.jobs.runner import (
            JobChunkStore,  # lazy: the HTTP process imports this module; jobs' storage is needed here only
        )
        from saywho.jobs.store import (
            JobStore,  # lazy: the HTTP process imports this module; jobs' storage is needed here only
        )
        from saywho.longform.run import (
            plan_recording,  # lazy: the HTTP process imports this module; decoding happens in the child only
        )

        chunks = JobChunkStore(JobStore(payload["db_path"], payload["uploads_dir"]), payload["job_id"])
        return plan_recording(payload["audio_path"], payload["chunk_s"], chunks, _forward_hook(emit)).to_dict()

    def job_chunk(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """One chunk of a background job -> ``ChunkResult.to_dict()``, with progress."""
        from saywho.longform.chunk import (
            process_chunk,  # lazy: the HTTP process imports this module, runs no model
        )

        return process_chunk(payload["samples"], payload["options"], hook=_forward_hook(emit), manager=self.manager).to_dict()

    def job_fingerprint(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> Any:
        """(fingerprint, speech seconds) of one voice in an uploaded recording (speaker enrolment)."""
        from saywho.speakers.service import (
            fingerprint_from_audio,  # lazy: the HTTP process imports this module; models load in the worker child only
        )

        return fingerprint_from_audio(_samples(payload), start=payload.get("start"), end=payload.get("end"))

    def job_voice(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> Any:
        """(fingerprint, speech seconds) of the lines a corrected speaker of a job holds
        (``payload``: the job's ``audio_path`` and the lines' ``spans`` in seconds)."""
        from saywho.speakers.service import (
            fingerprint_of_spans,  # lazy: the HTTP process imports this module; models load in the worker child only
        )

        return fingerprint_of_spans(payload["audio_path"], payload["spans"])

    def job_speech(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> bytes:
        from saywho import (
            tts,  # lazy: the HTTP process imports this module; models load in the worker child only
        )

        with self.manager.acquire(f"tts|{payload['voice']}") as voice:
            speech = tts.synthesize(voice, payload["input"], speed=payload.get("speed", 1.0))
        return tts.encode(speech, payload["format"])

    def job_deep(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Speak a sentence with Piper, then transcribe and diarize it: every stage once."""
        from saywho import (
            tts,  # lazy: the HTTP process imports this module; models load in the worker child only
        )
        from saywho.pipeline import (
            transcribe,  # lazy: the HTTP process imports this module; models load in the worker child only
        )

        started = time.perf_counter()
        with self.manager.acquire(f"tts|{payload['voice']}") as voice:
            speech = tts.synthesize(voice, payload["input"])
        samples = speech.float_samples(SAMPLE_RATE)
        pad = np.zeros(SAMPLE_RATE // 2, np.float32)  # half a second of silence each side
        samples = np.concatenate([pad, samples, pad])
        transcript = transcribe(samples, payload["options"], manager=self.manager)
        return {"text": transcript.text, "speakers": [s.label for s in transcript.speakers],
                "audio_s": round(len(samples) / SAMPLE_RATE, 3),
                "latency_ms": round(1000 * (time.perf_counter() - started), 1)}

    def job_loaded(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> list[str]:
        return self.manager.loaded()

    def job_models(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        return self.models()

    def job_check_model(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """A freshly pulled speech model loads and decodes a second of silence (then is let go:
        it loads again on first use, under the manager)."""
        from saywho.asr import (
            whisper as asr,  # lazy: the HTTP process imports this module; models load in the worker child only
        )
        from saywho.types import (
            TranscribeOptions,  # lazy: the HTTP process imports this module; models load in the worker child only
        )

        options = TranscribeOptions(model=payload["model"], diarize=False, cpu_threads=self.settings.cpu_threads)
        started = time.perf_counter()
        model = asr.load_model(asr.model_key(options))
        loaded = time.perf_counter()
        asr.transcribe(model, np.zeros(SAMPLE_RATE, np.float32), options)
        multilingual = bool(model.model.is_multilingual)
        del model
        return {"load_ms": round(1000 * (loaded - started), 1),
                "decode_ms": round(1000 * (time.perf_counter() - loaded), 1), "multilingual": multilingual}

    def job_ttl(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Give the model ``payload["model"]`` its own TTL (``None``: the default); applied at once."""
        self.manager.set_ttl(payload["model"], payload.get("ttl_s"))
        if not self.manager.collect():  # a drop reports itself
            self.publish_models()
        return self.models()

    def job_unload(self, payload: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> list[str]:
        """Unload every idle model whose name is ``payload["model"]``; returns the keys dropped."""
        name = payload["model"]
        return [key for key in self.manager.loaded() if model_name(key) == name and self.manager.unload(key)]


def _rss_bytes() -> int:
    from saywho.models.manager import (
        resident_bytes,  # lazy: the HTTP process imports this module; models load in the worker child only
    )

    return resident_bytes()


def model_name(key: str) -> str:
    """The model a manager key names: ``asr|tiny.en|cpu|int8|2`` -> ``tiny.en``."""
    return key.split("|")[1] if "|" in key else key


def _forward_hook(emit: Callable[[dict[str, Any]], None]) -> Callable[..., None]:
    """A progress hook whose calls go to the parent as events (each step at most every 0.25 s,
    and always its last call)."""
    last: dict[str, float] = {}

    def hook(step: str, *, completed: float | None = None, total: float | None = None) -> None:
        now = time.monotonic()
        final = completed is not None and total is not None and completed >= total
        if final or now - last.get(step, 0.0) >= 0.25:
            last[step] = now
            emit({"type": "hook", "step": step, "completed": completed, "total": total})

    return hook


def _samples(payload: Mapping[str, Any]) -> np.ndarray:
    """A request's audio, decoded here (never in the HTTP process) and within the duration limit."""
    if "samples" in payload:
        return payload["samples"]
    try:
        decoded = decode_audio(payload["audio"], max_s=payload.get("max_duration_s"))
    except (AudioDecodeError, AudioTooLongError) as exc:
        exc.message = exc.message.replace("<upload>", "the upload")
        exc.param = exc.param or "file"
        raise
    return decoded.samples


def _identifier(known: Mapping[str, np.ndarray]) -> Callable[[Any], Mapping[str, tuple[str, float]]]:
    """Names for a recording's speakers from per-request reference clips."""
    from saywho.speakers import (
        identify,  # lazy: the HTTP process imports this module; models load in the worker child only
    )

    references = {name: identify.embed_reference(samples) for name, samples in known.items()}

    def identifier(diarization: Any) -> Mapping[str, tuple[str, float]]:
        return identify.assign_names(diarization.fingerprints, references)

    return identifier


def _warm_diarization() -> None:
    from saywho.diarization import (  # lazy: the HTTP process imports this module; models load in the worker child only
        embedding,
        segmentation,
    )

    segmentation.get_model()
    embedding.get_model()


def _limit_memory(megabytes: int) -> None:
    """Cap the worker's heap and anonymous mappings (``RLIMIT_DATA``): a request that needs
    more fails with MemoryError in the worker instead of the kernel's OOM killer choosing."""
    if megabytes > 0:
        import resource

        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _inject_fault(fault: str | None) -> None:
    """Test-only faults (the parent forwards them only with ``settings.test_faults``)."""
    if fault == "crash":
        os._exit(70)
    if fault == "hang":
        while True:
            time.sleep(3600)
    if fault == "oom":
        np.empty(4 << 30, np.uint8)  # 4 GiB, untouched: fails only under worker_memory_mb
    if fault == "device":
        raise RuntimeError("CUDA error: an illegal memory access was encountered (injected)")


# ---------------------------------------------------------------------------
# The child's main loop
# ---------------------------------------------------------------------------


def main(conn: Any, settings: Any, preload: list[str]) -> None:
    """Entry point of the spawned process."""
    logging.basicConfig(level=getattr(logging, str(settings.log_level).upper(), logging.INFO),
                        format="%(asctime)s worker[%(process)d] %(levelname)s %(name)s: %(message)s")
    tune_malloc()  # before any model loads
    configure_openmp()
    # Read by saywho.diarization.onnx_runtime when the models load (this process only).
    os.environ["SAYWHO_DIARIZATION_BACKEND"] = getattr(settings, "diarization_backend", "auto")
    if settings.cpu_threads:
        set_torch_threads(settings.cpu_threads)
    _limit_memory(getattr(settings, "worker_memory_mb", 0))
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    worker = Worker(settings, publish=lambda status: send(("models", status)))
    try:
        worker.preload(preload)
    except Exception as exc:
        logger.warning("preload failed: %s", exc)
    release_memory()
    worker.publish_models()
    send(("ready", {"pid": os.getpid(), "loaded": worker.manager.loaded()}))

    stop = threading.Event()
    threading.Thread(target=_collector, args=(worker, stop), daemon=True, name="ttl-collector").start()
    pool = ThreadPoolExecutor(max_workers=settings.inference_slots, thread_name_prefix="job")
    control = ThreadPoolExecutor(max_workers=1, thread_name_prefix="control")  # never behind a long job

    def run(job_id: int, kind: str, payload: Mapping[str, Any]) -> None:
        def emit(event: dict[str, Any]) -> None:
            send(("event", job_id, event))

        answer = outcome(job_id, kind, payload, emit)
        if kind not in CONTROL_KINDS:
            release_memory()
            worker.publish_models()  # before the answer: whoever waits on it then sees the new state
        send(answer)

    def outcome(job_id: int, kind: str, payload: Mapping[str, Any],
                emit: Callable[[dict[str, Any]], None]) -> tuple[Any, ...]:
        try:
            return ("result", job_id, worker.handle(kind, payload, emit))
        except SaywhoError as exc:
            return ("error", job_id, error_info(exc))
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                return ("error", job_id, error_info(InsufficientStorageError(
                    f"the disk is full: {exc.strerror or exc}; free some space and try again")))
            if isinstance(exc, MemoryError):  # over worker_memory_mb: replace the process, answer 503
                limit = getattr(settings, "worker_memory_mb", 0)
                return ("device_error", job_id, f"the worker ran out of memory (limit {limit} MB)")
            if is_device_error(exc):
                logger.error("device error in job %s: %s", job_id, exc)
                return ("device_error", job_id, f"{type(exc).__name__}: {exc}")
            logger.exception("job %s (%s) failed", job_id, kind)
            return ("error", job_id, {"class": "SaywhoError", "message": f"{type(exc).__name__}: {exc}",
                                      "param": None, "status_code": 500, "code": "internal_error"})

    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the parent went away
            if message[0] == "stop":
                break
            _, job_id, kind, payload = message
            (control if kind in CONTROL_KINDS else pool).submit(run, job_id, kind, payload)
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        control.shutdown(wait=False, cancel_futures=True)
        os._exit(0)  # do not wait for running jobs: the parent is gone or asked us to stop


def _collector(worker: Worker, stop: threading.Event) -> None:
    while not stop.wait(worker.manager.collect_interval(longest=5.0)):  # a TTL changed at run time applies soon
        worker.manager.collect()  # a drop hands the memory back and reports itself
