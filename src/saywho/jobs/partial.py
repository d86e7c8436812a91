"""What a running job has already transcribed: the lines of its finished chunks.

Speakers are matched across chunks only when the job ends, so a partial line carries
its chunk's own (local) label and the chunk's number; the dashboard shows these lines
as provisional while the job runs. Times are seconds from the recording's start.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from saywho.longform.plan import ChunkPlan
from saywho.longform.result import ChunkResult

if TYPE_CHECKING:
    from collections.abc import Iterable

    from saywho.jobs.store import JobStore

logger = logging.getLogger(__name__)

# A pause this long, or another speaker, starts a new line.
LINE_GAP_S = 1.5


def chunk_lines(result: ChunkResult, offset_s: float, chunk: int) -> list[dict[str, Any]]:
    """The words of one finished chunk as lines (one local speaker each)."""
    lines: list[dict[str, Any]] = []
    for word in result.words:
        start, end = round(offset_s + word.start, 3), round(offset_s + word.end, 3)
        last = lines[-1] if lines else None
        if last is not None and last["speaker"] == word.speaker and start - last["end"] < LINE_GAP_S:
            last["end"] = end
            last["text"] += word.text
            continue
        lines.append({"chunk": chunk, "start": start, "end": end, "speaker": word.speaker,
                      "text": word.text})
    for line in lines:
        line["text"] = line["text"].strip()
    return lines


def partial_chunks(store: JobStore, job_id: str, indices: Iterable[int]) -> list[dict[str, Any]]:
    """``[{"index", "start", "end", "lines"}]`` for the stored chunks ``indices`` (those
    whose result cannot be read are left out: a partial view is best effort)."""
    stored = store.get_plan(job_id)
    plan = ChunkPlan.from_dict(stored[1]) if stored is not None else None
    starts = {c.index: (c.start_s, c.end_s) for c in plan.chunks} if plan is not None else {}
    out = []
    for index in sorted(indices):
        if index not in starts:
            continue
        data = store.get_chunk(job_id, index)
        try:
            result = ChunkResult.from_dict(data) if data is not None else None
        except (KeyError, TypeError, ValueError):
            logger.debug("job %s: chunk %d has no readable result", job_id, index)
            result = None
        if result is None:
            continue
        start, end = starts[index]
        out.append({"index": index, "start": round(start, 3), "end": round(end, 3),
                    "lines": chunk_lines(result, start, index)})
    return out
