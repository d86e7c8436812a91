"""Long recordings at flat memory: a chunk plan cut in pauses, per-chunk work, executors (local, Ray), global speakers, stitching, a resumable chunk store."""

from typing import Any

__all__ = ["transcribe_long"]


def __getattr__(name: str) -> Any:
    # ``from saywho.longform import transcribe_long`` without importing the models on
    # ``import saywho.longform.plan``.
    if name == "transcribe_long":
        from saywho.longform.run import transcribe_long  # lazy: the package itself stays light

        return transcribe_long
    raise AttributeError(f"module 'saywho.longform' has no attribute {name!r}")
