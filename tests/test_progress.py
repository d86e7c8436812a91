"""Progress that is true when ASR and diarization report side by side."""

from __future__ import annotations

import itertools
import threading

import pytest

from saywho.progress import STEPS, ProgressScale, TimingHook


def _replay(calls):
    seen: list[float] = []
    scale = ProgressScale(lambda percent, step: seen.append(percent))
    marks = []
    for step, completed, total in calls:
        scale(step, completed=completed, total=total)
        marks.append(scale.percent)
    return seen, marks


def _interleaved(asr_parts: int = 10, windows: int = 8, pieces: int = 6):
    """The order the pipeline reports in on a CPU: decode, then ASR segments
    interleaved with the diarization thread's segmentation, embeddings, clustering."""
    calls = [("decode", 0, 1), ("decode", 1, 1), ("asr", 0, asr_parts)]
    diar = [("segmentation", i, windows) for i in range(windows + 1)]
    diar += [("embeddings", i, pieces) for i in range(pieces + 1)]
    diar += [("clustering", 0, 1), ("clustering", 1, 1)]
    asr = [("asr", i, asr_parts) for i in range(1, asr_parts + 1)]
    # Diarization finishes while ASR is about half done.
    while diar or asr:
        for _ in range(3):
            if diar:
                calls.append(diar.pop(0))
        if asr:
            calls.append(asr.pop(0))
    return calls


def test_interleaved_steps_give_a_weighted_monotonic_sum() -> None:
    calls = _interleaved()
    seen, marks = _replay(calls)
    assert all(b >= a for a, b in itertools.pairwise(seen))
    shares = dict(STEPS)
    # When segmentation starts, only decoding is done: no jump to 62 %.
    first_seg = next(i for i, c in enumerate(calls) if c[0] == "segmentation")
    assert marks[first_seg] == pytest.approx(shares["decode"], abs=0.01)
    # Diarization complete with ASR at k/10: exactly the weighted sum, never 100 %.
    done: dict[str, float] = {}
    for (step, completed, total), mark in zip(calls, marks, strict=True):
        done[step] = max(done.get(step, 0.0), completed / total)
        expected = sum(shares[s] * f for s, f in done.items())
        assert mark == pytest.approx(min(expected, 99.99 if expected < 100 else 100), abs=1e-6)
        if done.get("asr", 0.0) < 1.0:
            assert mark < 100.0
    assert marks[-1] == pytest.approx(100.0)


def test_threads_reporting_at_once_keep_it_monotonic() -> None:
    seen: list[float] = []
    lock = threading.Lock()

    def record(percent: float, step: str) -> None:
        with lock:
            seen.append(percent)

    scale = ProgressScale(record)

    def report(step: str, n: int) -> None:
        for i in range(n + 1):
            scale(step, completed=i, total=n)

    threads = [threading.Thread(target=report, args=(s, 200)) for s, _ in STEPS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert scale.percent == pytest.approx(100.0)
    assert max(seen) == pytest.approx(100.0)


def test_unknown_steps_and_missing_totals_leave_the_figure() -> None:
    scale = ProgressScale(lambda p, s: None)
    scale("asr", completed=5, total=10)
    before = scale.percent
    scale("something-else", completed=1, total=1)
    scale("asr", completed=None, total=None)
    assert scale.percent == before
    scale.finish()
    assert scale.percent == 100.0


def test_timing_hook_records_each_step_span_and_forwards() -> None:
    ticks = iter([0.0, 1.0, 1.5, 4.0, 4.5])
    forwarded = []
    hook = TimingHook(lambda step, **kw: forwarded.append(step), clock=lambda: next(ticks))
    hook("decode", completed=0, total=1)
    hook("decode", completed=1, total=1)
    hook("asr", completed=0, total=2)
    hook("asr", completed=2, total=2)
    hook("clustering", completed=1, total=1)
    assert hook.seconds() == {"decode": 1.0, "asr": 2.5, "clustering": 0.0}
    assert forwarded == ["decode", "decode", "asr", "asr", "clustering"]


@pytest.mark.slow
def test_the_real_pipelines_call_sequence_is_monotonic_and_honest(three_voices) -> None:
    from saywho.pipeline import transcribe
    from saywho.types import TranscribeOptions

    _, path = three_voices
    calls: list[tuple[str, float, float]] = []
    lock = threading.Lock()

    def record(step: str, *, completed: float | None = None, total: float | None = None) -> None:
        with lock:
            calls.append((step, completed, total))

    transcribe(path, TranscribeOptions(language="en", identify=False), hook=record)
    steps = {c[0] for c in calls}
    assert {"decode", "asr", "segmentation", "embeddings", "clustering"} <= steps
    _, marks = _replay([c for c in calls if c[1] is not None])
    assert all(b >= a for a, b in itertools.pairwise(marks))
    shares = dict(STEPS)
    asr_done = 0.0
    for (step, completed, total), mark in zip([c for c in calls if c[1] is not None], marks, strict=True):
        if step == "asr" and total:
            asr_done = max(asr_done, completed / total)
        # Never more than the ASR's own share allows.
        assert mark <= 100 - shares["asr"] * (1 - asr_done) + 1e-6
    assert marks[-1] == pytest.approx(100.0)
