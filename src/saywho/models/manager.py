"""Models held in memory: process-wide lazy values and the manager with an idle TTL."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

logger = logging.getLogger(__name__)

T = TypeVar("T")


def process_wide(load: Callable[[], T]) -> Callable[[], T]:
    """``load`` called once, on first use, under a lock; the same value ever after."""
    lock = threading.Lock()
    loaded: list[T] = []

    def get() -> T:
        with lock:
            if not loaded:
                loaded.append(load())
                logger.info("loaded %s", getattr(load, "__name__", "model"))
            return loaded[0]

    get.__doc__ = f"The process-wide value of ``{getattr(load, '__name__', 'load')}()``, loaded on first use."
    return get


class ModelManager:
    """Loads models lazily, shares them while in use, unloads after an idle TTL.

    ``with manager.acquire(key) as model:`` loads on first use (``loader(key)``),
    keeps a reference count, and a model idle for ``ttl_s`` is dropped by
    ``collect()`` (called on every acquire, and by servers periodically).
    ``ttl_s < 0`` keeps models forever; ``ttl_s == 0`` unloads as soon as unused.
    The clock is injectable so that tests need no real sleeps.
    """

    def __init__(
        self,
        loader: Callable[[str], Any],
        *,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {}
        self._refs: dict[str, int] = {}
        self._last_used: dict[str, float] = {}
        self._load_locks: dict[str, threading.Lock] = {}

    @contextlib.contextmanager
    def acquire(self, key: str) -> Iterator[Any]:
        model = self._get(key)
        try:
            yield model
        finally:
            with self._lock:
                self._refs[key] -= 1
                self._last_used[key] = self._clock()
            self.collect()

    def _get(self, key: str) -> Any:
        self.collect()
        with self._lock:
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                if key in self._models:
                    self._refs[key] += 1
                    return self._models[key]
            model = self._loader(key)  # may raise; nothing is recorded then
            with self._lock:
                self._models[key] = model
                self._refs[key] = 1
                self._last_used[key] = self._clock()
                return model

    def preload(self, key: str) -> None:
        with self.acquire(key):
            pass

    def collect(self) -> list[str]:
        """Unload models idle for longer than the TTL; returns their keys."""
        if self._ttl < 0:
            return []
        now = self._clock()
        dropped = []
        with self._lock:
            for key in list(self._models):
                if self._refs.get(key, 0) == 0 and now - self._last_used.get(key, now) >= self._ttl:
                    del self._models[key]
                    dropped.append(key)
        for key in dropped:
            logger.info("unloaded idle model %s", key)
        return dropped

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def unload(self, key: str) -> bool:
        """Drop ``key`` now unless it is in use; returns whether it was dropped."""
        with self._lock:
            if key not in self._models or self._refs.get(key, 0) > 0:
                return False
            del self._models[key]
        logger.info("unloaded model %s on request", key)
        return True

    def status(self) -> list[dict[str, Any]]:
        """Per loaded model: key, users now, seconds idle, seconds left before the TTL unloads it."""
        now = self._clock()
        with self._lock:
            rows = []
            for key in self._models:
                refs = self._refs.get(key, 0)
                idle = 0.0 if refs else now - self._last_used.get(key, now)
                rows.append({"key": key, "in_use": refs, "idle_s": round(idle, 1),
                             "ttl_s": self._ttl,
                             "unload_in_s": None if self._ttl < 0 or refs else round(max(0.0, self._ttl - idle), 1)})
            return rows
