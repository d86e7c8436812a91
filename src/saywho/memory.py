"""Process memory: keep glibc's heap from growing run after run (no-ops elsewhere).

Long recordings and the server's worker run the same models over and over; with
glibc's defaults the freed spectra and activations fragment the heap and a process's
peak creeps up with every chunk or request. ``tune_malloc`` is called once, before the
models load; ``release_memory`` after each unit of work.
"""

from __future__ import annotations

__all__ = ["release_memory", "tune_malloc"]


def tune_malloc(arenas: int = 2, mmap_threshold: int = 1 << 20) -> None:
    """Bound glibc's heap (glibc only; elsewhere a no-op).

    - At most ``arenas`` malloc arenas (ctranslate2, torch and ffmpeg threads each get
      one, and memory freed in one is not reused by another): a 5-minute chunk's peak
      RSS went from 1.88 GB to 1.22 GB.
    - Allocations of ``mmap_threshold`` bytes or more (spectra, activations) are mapped
      on their own and go back to the OS when freed. By default glibc raises this
      threshold to 32 MB once it sees such a block freed; the big arrays then come
      from the heap, which fragments: over a 60-minute recording a chunk's peak rose
      from 1.0 GB in the first chunk to 1.8 GB in the twelfth. Fixed at 1 MiB the
      peaks stay flat (docs/BENCHMARKS.md).

    Takes effect for arenas and blocks created afterwards: call it before models load.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
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
