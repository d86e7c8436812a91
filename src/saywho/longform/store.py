"""Where a long job's chunk audio and results live, so that an interrupted run resumes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from saywho.longform.plan import Chunk, ChunkPlan
from saywho.longform.result import ChunkResult, chunk_options
from saywho.models.registry import cache_dir

if TYPE_CHECKING:
    from collections.abc import Callable

    from saywho.audio.decode import AudioSource
    from saywho.types import TranscribeOptions


class ChunkStore(Protocol):
    """Persistence of one long job: its plan, chunk audio until processed, results.

    ``DirectoryChunkStore`` keeps them in a directory; the jobs API may keep results
    elsewhere (a database) as long as these methods hold.
    """

    def load_plan(self, key: str) -> ChunkPlan | None:
        """The stored plan if it was made for ``key`` (source + settings) and finished."""

    def save_plan(self, key: str, plan: ChunkPlan) -> None: ...

    def save_audio(self, chunk: Chunk, samples: np.ndarray) -> None: ...

    def audio_path(self, chunk: Chunk) -> str:
        """A local file holding the chunk's samples (``numpy.load`` reads it)."""

    def drop_audio(self, chunk: Chunk) -> None: ...

    def load_result(self, index: int) -> ChunkResult | None: ...

    def save_result(self, index: int, result: ChunkResult) -> None: ...

    def finished(self) -> set[int]: ...

    def clear(self) -> None: ...


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


class DirectoryChunkStore:
    """``plan.json``, ``audio/NNNNN.npy`` (deleted once processed), ``results/NNNNN.json``.

    Every file is written to a temporary name and renamed, so a crash leaves either
    the whole file or none.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        (self.root / "audio").mkdir(parents=True, exist_ok=True)
        (self.root / "results").mkdir(parents=True, exist_ok=True)

    def load_plan(self, key: str) -> ChunkPlan | None:
        try:
            data = json.loads((self.root / "plan.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("key") != key:
            return None
        plan = ChunkPlan.from_dict(data["plan"])
        finished = self.finished()
        if any(c.index not in finished and not Path(self.audio_path(c)).exists() for c in plan.chunks):
            return None
        return plan

    def save_plan(self, key: str, plan: ChunkPlan) -> None:
        body = json.dumps({"key": key, "plan": plan.to_dict()})
        _atomic_write(self.root / "plan.json", lambda p: p.write_text(body, encoding="utf-8"))

    def audio_path(self, chunk: Chunk) -> str:
        return str(self.root / "audio" / f"{chunk.index:05d}.npy")

    def save_audio(self, chunk: Chunk, samples: np.ndarray) -> None:
        def write(p: Path) -> None:
            with open(p, "wb") as f:
                np.save(f, np.asarray(samples, dtype=np.float32))

        _atomic_write(Path(self.audio_path(chunk)), write)

    def drop_audio(self, chunk: Chunk) -> None:
        Path(self.audio_path(chunk)).unlink(missing_ok=True)

    def _result_path(self, index: int) -> Path:
        return self.root / "results" / f"{index:05d}.json"

    def load_result(self, index: int) -> ChunkResult | None:
        try:
            return ChunkResult.from_dict(json.loads(self._result_path(index).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError):
            return None

    def save_result(self, index: int, result: ChunkResult) -> None:
        body = json.dumps(result.to_dict())
        _atomic_write(self._result_path(index), lambda p: p.write_text(body, encoding="utf-8"))

    def finished(self) -> set[int]:
        return {int(p.stem) for p in (self.root / "results").glob("*.json") if p.stem.isdigit()}

    def clear(self) -> None:
        for sub in ("audio", "results"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "plan.json").unlink(missing_ok=True)


def job_key(source: AudioSource, options: TranscribeOptions, chunk_s: float) -> str:
    """What a stored plan and its results depend on: the file and the settings."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).resolve()
        st = path.stat()
        ident = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    else:
        ident = "stream"
    settings = dataclasses.asdict(chunk_options(options))
    settings.pop("cpu_threads", None)
    return hashlib.sha256(f"{ident}|{chunk_s}|{json.dumps(settings, sort_keys=True, default=str)}".encode()).hexdigest()


def default_work_dir(source: str | os.PathLike[str], options: TranscribeOptions, chunk_s: float) -> Path:
    """Where the CLI keeps a long job's chunks, so that ``--resume`` finds them."""
    return cache_dir() / "longform" / job_key(source, options, chunk_s)[:16]


