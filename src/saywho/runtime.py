"""Process-wide runtime settings, decided once per process: OpenMP waiting, torch
threads, and glibc's heap (no-ops where they do not apply).

Nothing here runs at import: the CLI, the server's worker and the chunk executors call
these functions once, before the models load.

Memory: keep glibc's heap from growing run after run.

Long recordings and the server's worker run the same models over and over; with
glibc's defaults the freed spectra and activations fragment the heap and a process's
peak creeps up with every chunk or request. ``tune_malloc`` is called once, before the
models load (the long-file path with a low mmap threshold); ``release_memory`` after
each unit of work.
"""

from __future__ import annotations

import contextlib
import os
import threading

from saywho.errors import InvalidOptionError

__all__ = [
    "LONG_FILE_MMAP_THRESHOLD",
    "check_device",
    "configure_openmp",
    "release_memory",
    "set_torch_threads",
    "split_device",
    "trim_heap",
    "tune_malloc",
]

_threads_lock = threading.Lock()
_torch_threads: int | None = None


def cores_are_busy() -> bool:
    """Whether the 1-minute load average already exceeds the number of cores."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:
        return False


def configure_openmp(environ: dict[str, str] | None = None) -> None:
    """Choose how OpenMP threads wait, before torch loads OpenMP (call it first thing).

    OpenMP threads that spin while waiting make torch's LSTM and convolutions 2-15x
    slower when another process holds the cores (2 min of diarization: 17 s instead of
    9 s with one core busy; 34-64 s on a machine loaded 6x), while on idle cores
    spinning is twice as fast (5 s against 9 s). So: sleep-waiting only when the cores
    are already busy as saywho starts. An explicit ``OMP_WAIT_POLICY`` is left alone.
    The choice changes speed only, never results.
    """
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" not in env and cores_are_busy():
        env["OMP_WAIT_POLICY"] = "PASSIVE"


def set_torch_threads(threads: int) -> None:
    """Set torch's intra-op thread count once per process (again only if it changes).

    ``torch.set_num_threads`` rebuilds the thread pool; calling it on every request
    costs time and races with other threads running torch.
    """
    global _torch_threads
    threads = max(1, int(threads))
    with _threads_lock:
        if _torch_threads == threads:
            return
        import torch  # optional heavy import, only when a caller sets threads

        torch.set_num_threads(threads)
        _torch_threads = threads


def split_device(device: str) -> tuple[str, int]:
    """``"cuda:1"`` -> ``("cuda", 1)``; ``"cpu"`` -> ``("cpu", 0)`` (CTranslate2 wants the
    index apart, torch takes the string whole)."""
    kind, _, index = device.strip().lower().partition(":")
    return kind, int(index) if index.isdigit() else 0


def check_device(device: str) -> None:
    """A clear ``InvalidOptionError`` for a device saywho cannot run on, before any
    model loads: ``cpu``, or ``cuda`` / ``cuda:N`` with that GPU visible to torch."""
    kind, index = split_device(device)
    _, _, raw_index = device.strip().partition(":")
    if kind not in ("cpu", "cuda") or (raw_index and not raw_index.isdigit()) or (kind == "cpu" and raw_index):
        raise InvalidOptionError(f"device must be cpu, cuda or cuda:N, got {device!r}", param="device")
    if kind == "cuda":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= count:
            found = f"{count} CUDA GPU(s) visible" if count else "no CUDA GPU is visible to torch (CPU build or no driver)"
            raise InvalidOptionError(f"device {device!r} is not available: {found}", param="device")


# The mmap threshold of the long-file path (see tune_malloc).
LONG_FILE_MMAP_THRESHOLD = 1 << 20


def tune_malloc(arenas: int = 2, mmap_threshold: int | None = None) -> None:
    """Bound glibc's heap (glibc only; elsewhere a no-op).

    - At most ``arenas`` malloc arenas (ctranslate2, torch and ffmpeg threads each get
      one, and memory freed in one is not reused by another): a 5-minute chunk's peak
      RSS went from 1.88 GB to 1.22 GB. No measurable cost in speed.
    - ``mmap_threshold``: allocations of this many bytes or more (spectra, activations)
      are mapped on their own and go back to the OS when freed. By default glibc raises
      its threshold to 32 MB once it sees such a block freed; the big arrays then come
      from the heap, which fragments: over a 60-minute recording a chunk's peak rose
      from 1.1 GB in the first chunk to 1.8 GB in the twelfth. At 1 MiB
      (``LONG_FILE_MMAP_THRESHOLD``, what ``transcribe_long`` uses) the peaks stay
      flat, but every large array then costs fresh zeroed pages: a 5-minute file took
      40 % longer (system time 8.7 s -> 25.7 s), so short files keep glibc's default.
      4 MiB cost as much and 16 MiB did not stop the growth (docs/BENCHMARKS.md).

    Takes effect for arenas and blocks created afterwards: call it before models load.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
        if mmap_threshold is not None:
            libc.mallopt(-3, mmap_threshold)  # M_MMAP_THRESHOLD (also ends its dynamic growth)
    except (OSError, AttributeError):
        pass


def release_memory() -> None:
    """Hand freed heap back to the OS after a unit of work (a chunk, a request), so that
    a worker's resident size stays that of one unit however many it has done."""
    import gc

    gc.collect()
    trim_heap()


def trim_heap() -> None:
    """glibc's ``malloc_trim``: freed heap goes back to the OS (a no-op elsewhere). The live
    engine calls it after each utterance: without it a 12-minute stream's resident size
    climbed from 620 to 1005 MiB; with it, it stayed within 570-850 MiB."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
