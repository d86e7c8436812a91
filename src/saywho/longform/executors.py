"""Where chunks run: in this process, on a local process pool, or on a Ray cluster.

Every executor runs the same function (``run_task``) on the same inputs, so the
results do not depend on the executor. Tasks are submitted lazily with a bounded
number in flight: the parent never holds more than a few chunks' audio (Ray ships
the samples through its object store; local workers read the chunk file).
Results come back as they complete, in any order.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from saywho.errors import BackendUnavailable, InvalidOptionError
from saywho.longform.result import ChunkResult
from saywho.runtime import LONG_FILE_MMAP_THRESHOLD, release_memory, set_torch_threads, tune_malloc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from saywho.types import TranscribeOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChunkTask:
    """One chunk to process: its samples (Ray) or the file holding them (local)."""

    index: int
    options: TranscribeOptions
    processor: Callable[..., Any]
    audio_path: str | None = None
    samples: np.ndarray | None = None

    def load(self) -> np.ndarray:
        if self.samples is not None:
            return self.samples
        if self.audio_path is None:
            raise ValueError(f"chunk {self.index} has neither samples nor a file")
        return np.load(self.audio_path)


def run_task(task: ChunkTask) -> dict[str, Any]:
    """Process one chunk; the result as its JSON dict (the same bytes whoever runs it).
    The heap is set up by the caller: ``transcribe_long`` for inline chunks, the pool's
    initializer, or ``_run_task_on_ray``."""
    result = task.processor(task.load(), task.options)
    release_memory()
    return result.to_dict()


def _run_task_on_ray(task: ChunkTask) -> dict[str, Any]:
    tune_malloc(mmap_threshold=LONG_FILE_MMAP_THRESHOLD)  # a Ray worker has no initializer
    return run_task(task)


def _init_worker(threads: int, mmap_threshold: int | None) -> None:
    tune_malloc(mmap_threshold=mmap_threshold)
    # Split the machine between workers instead of letting each take every core.
    set_torch_threads(threads)


class InlineExecutor:
    """Runs chunks one after another in this process (``workers=1``)."""

    def run(self, tasks: Iterable[ChunkTask]) -> Iterator[tuple[int, ChunkResult]]:

        for task in tasks:
            yield task.index, ChunkResult.from_dict(run_task(task))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class PoolExecutor:
    """A local pool of ``workers`` spawned processes, each loading the models once.

    With ``chunks_per_worker`` a worker is replaced by a fresh one after that many
    chunks, and runs with glibc's default heap settings (``runtime.tune_malloc``): the
    heap's growth from chunk to chunk ends with the process, so memory stays flat
    without the low mmap threshold that makes every large array cost fresh pages.
    """

    def __init__(self, workers: int, *, chunks_per_worker: int | None = None) -> None:
        self.workers = workers
        threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads, None if chunks_per_worker else LONG_FILE_MMAP_THRESHOLD),
            max_tasks_per_child=chunks_per_worker,
        )

    def run(self, tasks: Iterable[ChunkTask]) -> Iterator[tuple[int, ChunkResult]]:

        pending: dict[cf.Future, int] = {}
        queue = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * self.workers:
                task = next(queue, None)
                if task is None:
                    exhausted = True
                    break
                pending[self._pool.submit(run_task, task)] = task.index
            if not pending:
                return
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                try:
                    data = future.result()
                except cf.process.BrokenProcessPool as exc:
                    raise BackendUnavailable(f"a chunk worker died while processing chunk {index}: {exc}") from None
                yield index, ChunkResult.from_dict(data)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Runs chunks as Ray tasks (one CPU each) on the cluster at ``address``.

    ``address="local"`` starts a private local Ray; ``"auto"`` joins the running one.
    An already initialised Ray (``ray.init`` by the caller) is used as it is.
    """

    def __init__(self, address: str, max_in_flight: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise InvalidOptionError(
                "--ray needs Ray: pip install 'saywho[ray]'", param="ray_address"
            ) from None
        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            # Ray's own log records go to the root logger (the CLI writes them above its
            # progress bar); its workers' output stays in Ray's log files.
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address != "local":
                kwargs["address"] = address
            try:
                ray.init(**kwargs)
            except Exception as exc:
                hint = ""
                if not os.environ.get("RAY_AUTH_MODE"):
                    hint = (" (a cluster with token authentication, the default since Ray 2.59, needs "
                            "RAY_AUTH_MODE=token here, and RAY_AUTH_TOKEN unless ~/.ray/auth_token holds it)")
                raise BackendUnavailable(f"cannot reach the Ray cluster at {address}: {exc}{hint}") from None
            self._owns = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._max_in_flight = max_in_flight or max(2, 2 * cpus)
        self._remote = ray.remote(num_cpus=1, max_retries=2)(_run_task_on_ray)

    def run(self, tasks: Iterable[ChunkTask]) -> Iterator[tuple[int, ChunkResult]]:
        from dataclasses import replace


        ray = self._ray
        pending: dict[Any, int] = {}
        queue = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self._max_in_flight:
                task = next(queue, None)
                if task is None:
                    exhausted = True
                    break
                # Workers may run on other machines: ship the samples, not a local path.
                shipped = replace(task, samples=task.load(), audio_path=None)
                pending[self._remote.remote(shipped)] = task.index
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                yield index, ChunkResult.from_dict(ray.get(ref))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owns:
            self._ray.shutdown()


def make_executor(
    *, workers: int = 1, ray_address: str | None = None, chunks_per_worker: int | None = None
) -> InlineExecutor | PoolExecutor | RayExecutor:
    """Ray when an address is given, else a process pool for ``workers`` > 1 or when
    workers are to be replaced every ``chunks_per_worker`` chunks, else inline."""
    if workers < 1:
        raise InvalidOptionError(f"--workers must be at least 1, got {workers}", param="workers")
    if chunks_per_worker is not None and chunks_per_worker < 1:
        raise InvalidOptionError(f"chunks per worker must be at least 1, got {chunks_per_worker}",
                                 param="chunks_per_worker")
    if ray_address:
        return RayExecutor(ray_address)
    if workers > 1 or chunks_per_worker:
        return PoolExecutor(workers, chunks_per_worker=chunks_per_worker)
    return InlineExecutor()
