"""Models held in memory: process-wide lazy values and the manager with an idle TTL."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

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


def resident_bytes() -> int:
    """This process's resident memory (Linux ``/proc/self/statm``; 0 where unknown)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class ModelManager:
    """Loads models lazily, shares them while in use, unloads after an idle TTL.

    ``with manager.acquire(key) as model:`` loads on first use (``loader(key)``),
    keeps a reference count, and a model idle for its TTL is dropped by
    ``collect()`` (called on every acquire, and by servers periodically).
    A TTL ``< 0`` keeps a model forever; ``0`` unloads it as soon as it is unused.
    ``ttls`` gives some models their own TTL, by name (``name_of(key)``: a key such as
    ``asr|tiny.en|int8|2`` names the model ``tiny.en``), the rest use ``ttl_s``.
    The memory a model holds is the growth of the process's resident memory while it
    loaded (``memory()``), an estimate: allocations of other threads at that moment count too.
    ``on_change()`` is called after every load and unload (outside the lock).
    The clocks and the memory probe are injectable so that tests need no real sleeps.
    """

    def __init__(
        self,
        loader: Callable[[str], Any],
        *,
        ttl_s: float = 300.0,
        ttls: Mapping[str, float] | None = None,
        name_of: Callable[[str], str] = lambda key: key,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        memory: Callable[[], int] = resident_bytes,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._loader = loader
        self._ttl = ttl_s
        self._ttls: dict[str, float] = dict(ttls or {})
        self._name_of = name_of
        self._clock = clock
        self._wall = wall_clock
        self._memory = memory
        self._on_change = on_change
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {}
        self._refs: dict[str, int] = {}
        self._last_used: dict[str, float] = {}
        self._held_bytes: dict[str, int] = {}
        self._load_locks: dict[str, threading.Lock] = {}

    # ---------------------------------------------------------------- TTLs

    def ttl_of(self, key: str) -> float:
        """The TTL of the model ``key`` names (its own, else the default)."""
        return self._ttls.get(self._name_of(key), self._ttl)

    def set_ttl(self, name: str, ttl_s: float | None) -> None:
        """Give the model ``name`` its own TTL (``None``: back to the default)."""
        with self._lock:
            if ttl_s is None:
                self._ttls.pop(name, None)
            else:
                self._ttls[name] = ttl_s

    def ttls(self) -> dict[str, float]:
        with self._lock:
            return dict(self._ttls)

    def collect_interval(self, longest: float = 30.0) -> float:
        """How often a collector should call ``collect()``: half the shortest TTL, 1 s to ``longest``."""
        with self._lock:
            finite = [t for t in (self._ttl, *self._ttls.values()) if t >= 0]
        return longest if not finite else max(1.0, min(longest, min(finite) / 2))

    # ---------------------------------------------------------------- use

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
            before = self._memory()
            model = self._loader(key)  # may raise; nothing is recorded then
            held = max(0, self._memory() - before)
            with self._lock:
                self._models[key] = model
                self._refs[key] = 1
                self._last_used[key] = self._clock()
                self._held_bytes[key] = held
        self._changed()
        return model

    def preload(self, key: str) -> None:
        with self.acquire(key):
            pass

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:  # a status listener must never break inference
                logger.exception("model status listener failed")

    def _drop(self, key: str) -> None:
        """Forget ``key`` (the caller holds the lock)."""
        del self._models[key]
        self._held_bytes.pop(key, None)

    def collect(self) -> list[str]:
        """Unload models idle for longer than their TTL; returns their keys."""
        now = self._clock()
        dropped = []
        with self._lock:
            for key in list(self._models):
                ttl = self._ttls.get(self._name_of(key), self._ttl)
                if ttl >= 0 and self._refs.get(key, 0) == 0 and now - self._last_used.get(key, now) >= ttl:
                    self._drop(key)
                    dropped.append(key)
        for key in dropped:
            logger.info("unloaded idle model %s", key)
        if dropped:
            self._changed()
        return dropped

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def unload(self, key: str) -> bool:
        """Drop ``key`` now unless it is in use; returns whether it was dropped."""
        with self._lock:
            if key not in self._models or self._refs.get(key, 0) > 0:
                return False
            self._drop(key)
        logger.info("unloaded model %s on request", key)
        self._changed()
        return True

    def status(self) -> list[dict[str, Any]]:
        """Per loaded model: key, name, users now, seconds idle and since when (epoch seconds;
        ``None`` while in use), its TTL, seconds left before the TTL unloads it, memory held."""
        now, wall = self._clock(), self._wall()
        with self._lock:
            rows = []
            for key in self._models:
                refs = self._refs.get(key, 0)
                idle = 0.0 if refs else now - self._last_used.get(key, now)
                ttl = self._ttls.get(self._name_of(key), self._ttl)
                rows.append({"key": key, "name": self._name_of(key), "in_use": refs, "idle_s": round(idle, 1),
                             "idle_since": None if refs else round(wall - idle, 3), "ttl_s": ttl,
                             "unload_in_s": None if ttl < 0 or refs else round(max(0.0, ttl - idle), 1),
                             "memory_bytes": self._held_bytes.get(key, 0)})
            return rows
