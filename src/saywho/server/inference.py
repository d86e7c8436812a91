"""The service layer: a supervised inference worker process, with slots, a queue and restarts.

``InferenceService.run(kind, payload)`` sends a job to the worker (``worker.py``) and
awaits its answer without blocking the event loop. The worker is supervised:

* it crashes (the pipe closes), hangs past the job's deadline (the service kills it),
  or its backend reports a device error -> every job in flight fails with
  ``BackendUnavailable`` (503 + Retry-After) and a new worker is started in the
  background; requests that arrive meanwhile wait for it (``ready_wait_s``);
* ``restart_budget`` restarts per ``restart_window_s`` happen at once; past that the
  service reports itself degraded and restarts with exponential backoff
  (``restart_backoff_s`` doubling up to ``restart_backoff_max_s``), never giving up.
  The degraded reason is built afresh from the last failure (bounded, never nested)
  and says when the next restart happens; 503s carry that as ``Retry-After``.

Admission: ``inference_slots`` jobs run at once, ``queue_size`` more wait; beyond that
``TooManyRequestsError`` (429) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from saywho import errors
from saywho.errors import BackendUnavailable, SaywhoError, TooManyRequestsError
from saywho.server import worker as worker_module
from saywho.settings import Settings

logger = logging.getLogger(__name__)

STARTING, READY, RESTARTING, DEGRADED, STOPPED = "starting", "ready", "restarting", "degraded", "stopped"


def _rebuild_error(info: dict[str, Any]) -> SaywhoError:
    """The SaywhoError a worker reported, as its own class when saywho has it."""
    cls = getattr(errors, info.get("class", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, SaywhoError)) or cls is BackendUnavailable:
        cls = SaywhoError
    exc = cls.__new__(cls)
    SaywhoError.__init__(exc, info["message"], param=info.get("param"))
    if cls is SaywhoError:  # keep the worker's status and code
        exc.status_code = info.get("status_code", 500)
        exc.code = info.get("code", "internal_error")
    return exc


MAX_REASON_CHARS = 300


def _bounded(text: object) -> str:
    """A failure reason cut to a readable length (reasons are never nested)."""
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS - 3] + "..."


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[tuple[str, Any]]
    generation: int

    def put(self, kind: str, data: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, data))


@dataclass
class _WorkerHandle:
    process: Any
    conn: Any
    generation: int
    started: float
    pid: int | None = None
    ready: bool = False
    kill_reason: str | None = None
    send_lock: threading.Lock = field(default_factory=threading.Lock)


class Ticket:
    """An admitted request: holds its place in slots + queue until released."""

    def __init__(self, service: InferenceService) -> None:
        self._service = service
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._service._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class InferenceService:
    """Supervises the worker process and runs jobs in it."""

    def __init__(self, settings: Settings, *, target: Callable[..., None] = worker_module.main) -> None:
        self.settings = settings
        self._target = target
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._state = STOPPED
        self._reason: str | None = None
        self._worker: _WorkerHandle | None = None
        self._generation = 0
        self._jobs: dict[int, _Job] = {}
        self._job_ids = itertools.count(1)
        self._ready = threading.Event()
        self._restarts: deque[float] = deque()
        self._last_failure: str | None = None
        self._backoff_level = 0  # restarts delayed in a row; reset by a successful job
        self._next_restart_at: float | None = None
        self._restart_total = 0
        self._failures: deque[dict[str, Any]] = deque(maxlen=10)
        self._admitted = 0
        self._slots: asyncio.Semaphore | None = None
        self._used_models: set[str] = set()
        self._models_status: dict[str, Any] | None = None  # what the worker last said it holds

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the first worker (in the background; ``/health/ready`` says when it is up)."""
        with self._lock:
            if self._state != STOPPED:
                return
            self._state = STARTING
        threading.Thread(target=self._spawn, args=(list(self.settings.preload),), daemon=True,
                         name="worker-start").start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._state = STOPPED
            handle, self._worker = self._worker, None
            self._ready.clear()
        if handle is None:
            return
        with contextlib.suppress(Exception), handle.send_lock:
            handle.conn.send(("stop",))
        handle.process.join(timeout)
        if handle.process.is_alive():
            handle.process.kill()
            handle.process.join(timeout)
        self._fail_jobs(handle.generation, "the server is shutting down")

    def _spawn(self, preload: list[str]) -> None:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=self._target, args=(child_conn, self.settings, preload),
                                    name="saywho-worker", daemon=True)
        with self._lock:
            if self._state == STOPPED:
                return
            self._generation += 1
            handle = _WorkerHandle(process, parent_conn, self._generation, time.monotonic())
            self._worker = handle
            self._models_status = None
        process.start()
        child_conn.close()  # so that the child's death closes the pipe for us
        handle.pid = process.pid
        logger.info("inference worker %s starting (generation %d, preload %s)", process.pid,
                    handle.generation, preload or "nothing")
        threading.Thread(target=self._read, args=(handle,), daemon=True,
                         name=f"worker-reader-{handle.generation}").start()

    def _read(self, handle: _WorkerHandle) -> None:
        """Route the worker's messages to waiting jobs; notice its death."""
        reason = "the inference worker exited"
        while True:
            try:
                message = handle.conn.recv()
            except (EOFError, OSError):
                break
            except Exception as exc:
                logger.error("cannot read a message from the worker: %s", exc)
                continue
            kind = message[0]
            if kind == "models":
                with self._lock:
                    if handle is self._worker:
                        self._models_status = message[1]
                continue
            if kind == "ready":
                with self._lock:
                    if handle is self._worker and self._state != STOPPED:
                        handle.ready = True
                        self._state = READY
                        self._reason = None
                        self._ready.set()
                logger.info("inference worker %s ready (%.1f s, loaded %s)", handle.pid,
                            time.monotonic() - handle.started, message[1].get("loaded"))
                continue
            _, job_id, data = message
            if kind == "device_error":
                reason = f"the inference backend reported a device error: {data}"
                self._kill(handle, reason)
                break
            with self._lock:
                job = self._jobs.get(job_id)
            if job is not None:
                job.put(kind, data)
        handle.process.join(1.0)
        exitcode = handle.process.exitcode
        if exitcode is not None and exitcode != 0 and reason == "the inference worker exited":
            reason = f"the inference worker died (exit code {exitcode})"
        self._on_death(handle, reason)

    def _kill(self, handle: _WorkerHandle, reason: str) -> None:
        logger.error("killing inference worker %s: %s", handle.pid, reason)
        with self._lock:
            handle.kill_reason = handle.kill_reason or reason
            handle.ready = False  # no new job goes to it while it dies
            if handle is self._worker and self._state == READY:
                self._state = RESTARTING
                self._reason = f"restarting after: {reason}"
                self._ready.clear()
        with contextlib.suppress(Exception):
            handle.process.kill()

    def _on_death(self, handle: _WorkerHandle, reason: str) -> None:
        reason = handle.kill_reason or reason
        with self._lock:
            if handle is not self._worker or self._state == STOPPED:
                return
            self._worker = None
            self._ready.clear()
            self._failures.append({"at": time.time(), "pid": handle.pid, "reason": reason})
            logger.error("inference worker %s is gone: %s", handle.pid, reason)
        self._restart(reason)  # first, so that failed requests already see restarting / degraded
        self._fail_jobs(handle.generation, reason)

    def _fail_jobs(self, generation: int, reason: str) -> None:
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.generation == generation]
        for job in jobs:
            job.put("dead", reason)

    def _restart(self, reason: str) -> bool:
        """Start a new worker now if the budget allows; else degrade and restart after a backoff.

        Returns whether a worker starts now."""
        now = time.monotonic()
        with self._lock:
            if self._state == STOPPED or self._worker is not None:
                return self._worker is not None
            self._last_failure = _bounded(reason)
            window = self.settings.restart_window_s
            while self._restarts and now - self._restarts[0] >= window:
                self._restarts.popleft()
            if len(self._restarts) >= self.settings.restart_budget:
                if self._state == DEGRADED and self._next_restart_at is not None:
                    return False  # a restart is already scheduled
                delay = min(self.settings.restart_backoff_max_s,
                            self.settings.restart_backoff_s * 2 ** self._backoff_level)
                self._backoff_level += 1
                self._state = DEGRADED
                self._next_restart_at = now + delay
                self._reason = self._degraded_reason(now)
                logger.error("inference degraded: %s", self._reason)
                timer = threading.Timer(delay, self._delayed_restart)
                timer.daemon = True
                timer.start()
                return False
            self._start_restart(now)
        return True

    def _start_restart(self, now: float) -> None:
        """(lock held) Record a restart and spawn a worker in the background."""
        self._restarts.append(now)
        self._restart_total += 1
        self._state = RESTARTING
        self._next_restart_at = None
        self._reason = f"restarting after: {self._last_failure}"
        preload = sorted(set(self.settings.preload) | self._used_models)
        threading.Thread(target=self._spawn, args=(preload,), daemon=True, name="worker-restart").start()

    def _delayed_restart(self) -> None:
        with self._lock:
            if self._state != DEGRADED or self._worker is not None:
                return
            self._start_restart(time.monotonic())

    def _degraded_reason(self, now: float) -> str:
        """(lock held) Why inference is down and when it comes back: bounded, built afresh."""
        wait = max(0.0, (self._next_restart_at or now) - now)
        return (f"restart budget exhausted ({self.settings.restart_budget} restarts in "
                f"{self.settings.restart_window_s:.0f} s); next restart in {wait:.0f} s; "
                f"last failure: {self._last_failure}")

    def _retry_after(self) -> float:
        """Seconds until a degraded service restarts its worker."""
        with self._lock:
            if self._state != DEGRADED or self._next_restart_at is None:
                return float(self.settings.retry_after_s)
            return max(1.0, self._next_restart_at - time.monotonic() + 1.0)

    # ----------------------------------------------------------------- status

    @property
    def state(self) -> str:
        return self._state

    def status(self) -> dict[str, Any]:
        with self._lock:
            handle = self._worker
            reason = self._degraded_reason(time.monotonic()) if self._state == DEGRADED else self._reason
            return {
                "state": self._state,
                "reason": reason,
                "worker_pid": handle.pid if handle else None,
                "restarts_in_window": len(self._restarts),
                "restart_budget": self.settings.restart_budget,
                "restart_window_s": self.settings.restart_window_s,
                "restarts_total": self._restart_total,
                "next_restart_in_s": (round(max(0.0, self._next_restart_at - time.monotonic()), 1)
                                      if self._next_restart_at is not None else None),
                "recent_failures": list(self._failures),
                "running_or_queued": self._admitted,
                "slots": self.settings.inference_slots,
                "queue_size": self.settings.queue_size,
            }

    # ----------------------------------------------------------------- admission

    def admit(self) -> Ticket:
        """A place among slots + queue, or 429 at once."""
        with self._lock:
            capacity = self.settings.inference_slots + self.settings.queue_size
            if self._admitted >= capacity:
                raise TooManyRequestsError(
                    f"too many requests: {self.settings.inference_slots} running and "
                    f"{self.settings.queue_size} queued; try again shortly",
                    retry_after=self.settings.retry_after_s,
                )
            self._admitted += 1
        return Ticket(self)

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    # ----------------------------------------------------------------- jobs

    async def run(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        deadline_s: float,
        ticket: Ticket | None = None,
        on_event: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
        model: str | None = None,
    ) -> Any:
        """Run one job in the worker; raises its SaywhoError, or BackendUnavailable."""
        ticket = ticket or self.admit()
        try:
            if self._slots is None:
                self._slots = asyncio.Semaphore(self.settings.inference_slots)
            async with self._slots:
                handle = await self._ready_worker()
                if model:
                    with self._lock:
                        self._used_models.add(model)
                return await self._dispatch(handle, kind, payload, deadline_s, on_event)
        finally:
            ticket.release()

    async def control(self, kind: str, payload: dict[str, Any], *, deadline_s: float = 10.0) -> Any:
        """A job about the models (``worker.CONTROL_KINDS``): no slot, no queue; the worker answers
        it on its own thread, so it never waits behind a long transcription."""
        if kind not in worker_module.CONTROL_KINDS:
            raise ValueError(f"{kind!r} is not a control job")
        return await self._dispatch(await self._ready_worker(), kind, payload, deadline_s, None)

    def models_status(self) -> dict[str, Any] | None:
        """What the worker last reported holding (``Worker.models``), ``None`` before it did.
        Idle times are brought up to now."""
        with self._lock:
            status = self._models_status
        if status is None:
            return None
        age = max(0.0, time.time() - status.get("at", time.time()))
        rows = []
        for row in status["loaded"]:
            row = dict(row)
            if not row["in_use"]:
                row["idle_s"] = round(row["idle_s"] + age, 1)
                if row["unload_in_s"] is not None:
                    row["unload_in_s"] = round(max(0.0, row["unload_in_s"] - age), 1)
            rows.append(row)
        return {**status, "loaded": rows}

    async def _ready_worker(self) -> _WorkerHandle:
        if self._state == DEGRADED:
            with self._lock:
                reason = self._degraded_reason(time.monotonic())
            raise BackendUnavailable(f"inference is unavailable: {reason}", retry_after=self._retry_after())
        if self._state == STOPPED:
            raise BackendUnavailable("the inference service is not running",
                                     retry_after=self.settings.retry_after_s)
        deadline = time.monotonic() + self.settings.ready_wait_s
        while True:
            with self._lock:
                handle = self._worker
                if handle is not None and handle.ready and self._state == READY:
                    return handle
                state, reason = self._state, self._reason
            if state == DEGRADED or time.monotonic() >= deadline:
                raise BackendUnavailable(
                    f"inference is unavailable ({state}): {reason or 'the worker is starting'}",
                    retry_after=self._retry_after(),
                )
            await asyncio.sleep(0.05)

    async def _dispatch(
        self, handle: _WorkerHandle, kind: str, payload: dict[str, Any], deadline_s: float,
        on_event: Callable[[dict[str, Any]], Awaitable[None] | None] | None,
    ) -> Any:
        loop = asyncio.get_running_loop()
        job_id = next(self._job_ids)
        job = _Job(loop, asyncio.Queue(), handle.generation)
        with self._lock:
            if handle is not self._worker:
                raise BackendUnavailable("the inference worker is restarting", retry_after=self.settings.retry_after_s)
            self._jobs[job_id] = job
        try:
            try:
                await asyncio.to_thread(self._send, handle, ("job", job_id, kind, payload))
            except (OSError, ValueError) as exc:
                raise BackendUnavailable(f"the inference worker is gone ({exc})",
                                         retry_after=self.settings.retry_after_s) from None
            until = loop.time() + deadline_s
            while True:
                try:
                    what, data = await asyncio.wait_for(job.queue.get(), max(0.0, until - loop.time()))
                except TimeoutError:
                    self._kill(handle, f"a {kind} job passed its deadline of {deadline_s:.0f} s")
                    raise BackendUnavailable(
                        f"inference did not finish within {deadline_s:.0f} s; the worker is being restarted",
                        retry_after=self.settings.retry_after_s,
                    ) from None
                if what == "event":
                    if on_event is not None:
                        maybe = on_event(data)
                        if asyncio.iscoroutine(maybe):
                            await maybe
                    continue
                if what == "result":
                    with self._lock:
                        self._backoff_level = 0
                    return data
                if what == "error":
                    raise _rebuild_error(data)
                then = ("the worker is being restarted" if self._state != DEGRADED
                        else f"the worker restarts in {self._retry_after():.0f} s")
                raise BackendUnavailable(f"inference failed: {_bounded(data)}; {then}",
                                         retry_after=self._retry_after())
        finally:
            with self._lock:
                self._jobs.pop(job_id, None)

    @staticmethod
    def _send(handle: _WorkerHandle, message: tuple[Any, ...]) -> None:
        with handle.send_lock:
            handle.conn.send(message)

    def wait_ready(self, timeout: float) -> bool:
        """Block until the worker is ready (for the CLI's start-up and tests)."""
        return self._ready.wait(timeout)
