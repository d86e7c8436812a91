"""A job's live events, pushed by the runner instead of read back from the database.

The runner publishes a snapshot of the job (a ``Job``) each time it writes the job's
row, and ``JobDeleted`` when the job is removed, to a ``JobBroadcaster``: one in each
process, keyed by job id, safe to publish to from any thread. Each client following
a job holds a ``Subscription``, a bounded queue on its event loop. ``follow_job``
reads the job from the store once, then turns the snapshots it is sent into the
events the API streams: ``progress`` (monotonic), one ``chunk`` per finished chunk,
then one of ``finished``, ``failed`` or ``cancelled``.

Snapshots are whole states, so a queue that overflows drops its oldest snapshots and
loses nothing the next one does not carry (chunk events are counted from
``chunks_done``, not from the snapshots that arrived).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saywho.errors import NotFoundError
from saywho.jobs.partial import partial_chunks
from saywho.jobs.store import CANCELLED, FAILED, FINISHED, Job, JobStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

logger = logging.getLogger(__name__)

# A follower that heard nothing for this long reads the job from the store once (a job
# that another process runs publishes nothing here).
RESYNC_S = 15.0
QUEUE_SIZE = 64


@dataclass(frozen=True, slots=True)
class JobDeleted:
    """The job and its rows are gone (``DELETE /v1/jobs/{id}``)."""

    job_id: str


JobUpdate = Job | JobDeleted


def _job_id(update: JobUpdate) -> str:
    return update.job_id if isinstance(update, JobDeleted) else update.id


# ---------------------------------------------------------------------------
# The broadcaster: runner threads -> subscribers on event loops
# ---------------------------------------------------------------------------


class Subscription:
    """One follower's queue of a job's updates, read on the event loop that opened it.

    ``offer`` is called from any thread and never blocks: a full queue drops its oldest
    update (counted in ``dropped``). The loop is woken with ``call_soon_threadsafe``,
    at most one wake-up pending at a time. Use it as a context manager; leaving it
    unsubscribes.
    """

    def __init__(self, broadcaster: JobBroadcaster, job_id: str, *, maxsize: int = QUEUE_SIZE) -> None:
        self.job_id = job_id
        self.dropped = 0
        self._broadcaster = broadcaster
        self._loop = asyncio.get_running_loop()
        self._items: deque[JobUpdate] = deque(maxlen=max(1, maxsize))
        self._lock = threading.Lock()
        self._wakeup = asyncio.Event()
        self._wake_pending = False

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._broadcaster.unsubscribe(self)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._items)

    def offer(self, update: JobUpdate) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(update)
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: nobody reads this queue any more
            self.close()

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        self._wakeup.set()

    async def get(self, timeout: float | None = None) -> JobUpdate | None:
        """The next update; None when ``timeout`` seconds pass without one."""
        deadline = None if timeout is None else self._loop.time() + timeout
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                self._wakeup.clear()
            remaining = None if deadline is None else deadline - self._loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return None


class JobBroadcaster:
    """Job id -> the subscriptions following it. Thread-safe; in-process only.

    ``maxsize`` bounds each subscriber's queue, so a slow client costs a fixed amount
    of memory and never holds up the runner or the other clients.
    """

    def __init__(self, maxsize: int = QUEUE_SIZE) -> None:
        self.maxsize = maxsize
        self._subscribers: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()

    def subscribe(self, job_id: str) -> Subscription:
        """A new queue of ``job_id``'s updates on the running event loop."""
        subscription = Subscription(self, job_id, maxsize=self.maxsize)
        with self._lock:
            self._subscribers.setdefault(job_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            followers = self._subscribers.get(subscription.job_id)
            if followers is not None:
                followers.discard(subscription)
                if not followers:
                    del self._subscribers[subscription.job_id]

    def subscribers(self, job_id: str) -> int:
        with self._lock:
            return len(self._subscribers.get(job_id, ()))

    def publish(self, update: JobUpdate) -> None:
        """Hand ``update`` to every follower of its job (from any thread, never blocks)."""
        with self._lock:
            followers = tuple(self._subscribers.get(_job_id(update), ()))
        for subscription in followers:
            subscription.offer(update)


# ---------------------------------------------------------------------------
# Snapshots -> the events of the API
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One event of a job's stream: ``name`` (progress, chunk, finished, failed,
    cancelled) and its JSON ``data``."""

    name: str
    data: dict[str, Any]


class JobEventSequence:
    """Successive states of one job -> its events: progress only upwards, one ``chunk``
    per finished chunk (from the count first seen), then exactly one terminal event."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.done = False
        self._sent_percent = -1.0
        self._sent_chunks = -1

    def advance(self, job: Job) -> list[JobEvent]:
        if self.done:
            return []
        events: list[JobEvent] = []
        job_id = self.job_id
        chunks = {"completed": job.chunks_done, "total": job.chunks_total}
        if job.chunks_total and job.chunks_done > self._sent_chunks:
            first = job.chunks_done if self._sent_chunks < 0 else self._sent_chunks + 1
            events += [JobEvent("chunk", {"id": job_id, "completed": done, "total": job.chunks_total})
                       for done in range(max(1, first), job.chunks_done + 1)]
            self._sent_chunks = job.chunks_done
        percent = 100.0 if job.state == FINISHED else round(job.progress, 1)
        if percent > self._sent_percent:
            self._sent_percent = percent
            events.append(JobEvent("progress", {"id": job_id, "status": job.state, "progress": percent,
                                                "step": job.step, "chunks": chunks}))
        if job.state == FINISHED:
            events.append(JobEvent("finished", {"id": job_id, "status": FINISHED, "progress": 100.0,
                                                "chunks": chunks}))
        elif job.state == FAILED:
            events.append(JobEvent("failed", {"id": job_id, "status": FAILED, "error": job.error}))
        elif job.state == CANCELLED:
            events.append(JobEvent("cancelled", {"id": job_id, "status": CANCELLED}))
        self.done = job.done
        return events

    def deleted(self) -> list[JobEvent]:
        if self.done:
            return []
        self.done = True
        return [JobEvent("cancelled", {"id": self.job_id, "status": CANCELLED, "deleted": True})]


async def _read(store: JobStore, job_id: str) -> JobUpdate:
    try:
        return await asyncio.to_thread(store.get, job_id)
    except NotFoundError:
        return JobDeleted(job_id)


async def _with_partial(store: JobStore, job_id: str, events: list[JobEvent], shown: set[int]) -> list[JobEvent]:
    fresh = set(await asyncio.to_thread(store.chunk_indices, job_id)) - shown
    if not fresh:
        return events
    parts = await asyncio.to_thread(partial_chunks, store, job_id, fresh)
    shown |= fresh
    last = max(i for i, e in enumerate(events) if e.name == "chunk")
    events = list(events)
    events[last] = JobEvent("chunk", {**events[last].data, "partial": parts})
    return events


async def follow_job(store: JobStore, broadcaster: JobBroadcaster, job_id: str, *,
                     resync_s: float = RESYNC_S) -> AsyncIterator[JobEvent]:
    """The events of ``job_id`` until it ends: its state from ``store`` once, then what
    the runner publishes. Leaving the iteration (a client gone) unsubscribes.

    The last ``chunk`` event of a batch carries ``partial``: the lines of the chunks
    finished since the previous one (``jobs.partial``), so a client shows the
    transcript growing while the job runs."""
    sequence = JobEventSequence(job_id)
    shown: set[int] = set()
    with broadcaster.subscribe(job_id) as updates:  # before reading: nothing published falls in between
        update: JobUpdate | None = await _read(store, job_id)
        while True:
            if update is None:  # quiet for resync_s
                update = await _read(store, job_id)
            events = sequence.deleted() if isinstance(update, JobDeleted) else sequence.advance(update)
            if events and events[-1].name != "finished" and any(e.name == "chunk" for e in events):
                events = await _with_partial(store, job_id, events, shown)
            for event in events:
                yield event
            if sequence.done:
                return
            update = await updates.get(timeout=resync_s)
