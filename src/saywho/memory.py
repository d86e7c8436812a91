"""Process memory: keep glibc's heap from growing run after run (no-ops elsewhere).

Long recordings and the server's worker run the same models over and over; with
glibc's defaults the freed spectra and activations fragment the heap and a process's
peak creeps up with every chunk or request. ``tune_malloc`` is called once, before the
models load (the long-file path with a low mmap threshold); ``release_memory`` after
each unit of work.
"""

from __future__ import annotations

__all__ = ["LONG_FILE_MMAP_THRESHOLD", "release_memory", "tune_malloc"]


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
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
