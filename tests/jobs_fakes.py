"""Fakes for the jobs tests: a transcriber that replays known turns, chunk by chunk.

``ScriptedTranscriber`` behaves like ``longform.transcribe_long`` towards the runner:
it skips chunks whose result is stored, stores each chunk it "processes", reports
``chunks`` progress and its steps in between, and returns a Transcript built with
``pipeline.assemble`` from reference turns (words spread evenly over each turn).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence

import numpy as np

from saywho.asr.whisper import AsrResult
from saywho.audio.decode import write_wav
from saywho.errors import SaywhoError
from saywho.jobs.runner import JobChunkStore
from saywho.jobs.store import Job, options_from_dict
from saywho.longform.chunk import ChunkResult
from saywho.longform.plan import Chunk, ChunkPlan
from saywho.pipeline import assemble
from saywho.types import SAMPLE_RATE, Diarization, Hook, Segment, SpeakerTurn, Transcript, Word

# (start, end, speaker, text)
Line = tuple[float, float, str, str]

DEFAULT_LINES: tuple[Line, ...] = (
    (0.5, 3.5, "Speaker_0", "Good morning everyone, let us start with the budget."),
    (4.0, 7.0, "Speaker_1", "I think the numbers look fine, but travel went up."),
    (7.5, 10.0, "Speaker_0", "We should book the trains earlier."),
    (10.5, 13.5, "Speaker_2", "Can somebody send me the spreadsheet before lunch?"),
    (14.0, 17.0, "Speaker_1", "The design review is on Thursday afternoon."),
    (17.5, 19.5, "Speaker_0", "Friday works for me."),
)


def transcript_from_lines(lines: Sequence[Line], duration: float) -> Transcript:
    words: list[Word] = []
    segments: list[Segment] = []
    for start, end, _speaker, text in lines:
        tokens = text.split()
        step = (end - start) / len(tokens)
        seg_words = tuple(Word(round(start + i * step, 3), round(start + (i + 1) * step - 0.02, 3), " " + tok)
                          for i, tok in enumerate(tokens))
        words.extend(seg_words)
        segments.append(Segment(id=len(segments), start=start, end=end, text=" " + text, words=seg_words))
    turns = tuple(SpeakerTurn(s, e, spk) for s, e, spk, _ in lines)
    speakers = tuple(dict.fromkeys(t.speaker for t in turns))
    rng = np.random.default_rng(0)
    fingerprints = {}
    for label in speakers:
        v = rng.standard_normal(192)
        fingerprints[label] = tuple(float(x) for x in v / np.linalg.norm(v))
    diarization = Diarization(duration=duration, turns=turns, exclusive=turns, speakers=speakers,
                              fingerprints=fingerprints)
    asr = AsrResult(language="en", language_probability=1.0, segments=tuple(segments), words=tuple(words),
                    duration=duration)
    return assemble(asr, diarization, options_from_dict({}), models={"asr": "fake"})


class ScriptedTranscriber:
    """A stand-in for the real pipeline. ``fail_at`` raises in that chunk (a crash or an
    error); ``gate`` (an Event) holds the first chunk until it is set; ``hold`` (an
    Event) holds the job after its first chunk is stored until it is set. Each chunk
    stores a real ``ChunkResult`` (its lines' words, with the chunk's local labels) and
    the run a chunk plan, as ``transcribe_long`` does."""

    def __init__(self, lines: Sequence[Line] = DEFAULT_LINES, *, chunk_s: float = 5.0, delay_s: float = 0.05,
                 fail_at: int | None = None, error: BaseException | None = None,
                 gate: threading.Event | None = None, hold: threading.Event | None = None) -> None:
        self.lines = tuple(lines)
        self.chunk_s = chunk_s
        self.delay_s = delay_s
        self.fail_at = fail_at
        self.error = error or SaywhoError("the fake pipeline broke on purpose")
        self.gate = gate
        self.hold = hold
        self.processed: list[tuple[str, int]] = []
        self.calls = 0

    def __call__(self, job: Job, chunks: JobChunkStore, hook: Hook) -> Transcript:
        self.calls += 1
        duration = job.duration_s or max(e for _, e, _, _ in self.lines)
        total = max(1, math.ceil(duration / self.chunk_s))
        hook("decode", completed=0, total=1)
        hook("decode", completed=1, total=1)
        plan = ChunkPlan(tuple(Chunk(i, int(i * self.chunk_s * SAMPLE_RATE),
                                     int(min(duration, (i + 1) * self.chunk_s) * SAMPLE_RATE))
                               for i in range(total)), duration)
        chunks.save_plan("scripted", plan)
        done = chunks.finished()
        hook("chunks", completed=len(done), total=total)
        for index in range(total):
            if index in done:
                continue
            if self.gate is not None and index == 0:
                self.gate.wait(10)
            for step in ("asr", "segmentation", "embeddings"):
                time.sleep(self.delay_s / 3)
                hook(step, completed=1, total=2)
                hook(step, completed=2, total=2)
            if self.fail_at == index:
                raise self.error
            chunks.store.put_chunk(job.id, index, self.chunk_result(plan.chunks[index]).to_dict())
            self.processed.append((job.id, index))
            done.add(index)
            hook("chunks", completed=len(done), total=total)
            if self.hold is not None and index == 0:
                self.hold.wait(20)
        hook("clustering", completed=1, total=1)
        return transcript_from_lines(self.lines, duration)


    def chunk_result(self, chunk: Chunk) -> ChunkResult:
        """The words of the lines that start in ``chunk``, times from its start, labels local."""
        local: dict[str, str] = {}
        words = []
        for start, end, speaker, text in self.lines:
            if not chunk.start_s <= start < chunk.end_s:
                continue
            label = local.setdefault(speaker, f"Speaker_{len(local)}")
            tokens = text.split()
            step = (end - start) / len(tokens)
            words += [Word(round(start - chunk.start_s + i * step, 3), round(start - chunk.start_s + (i + 1) * step, 3),
                           " " + tok, 1.0, label) for i, tok in enumerate(tokens)]
        return ChunkResult(duration=chunk.duration_s, segments=(), speakers_detected=tuple(local.values()),
                           fingerprints={}, words=tuple(words))


def write_tone_wav(path, seconds: float = 20.0) -> None:
    """A quiet two-tone recording of ``seconds`` (decodable, playable, no speech)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = 0.1 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.25 * t) > 0)
    samples += 0.1 * np.sin(2 * np.pi * 330 * t) * (np.sin(2 * np.pi * 0.25 * t) <= 0)
    write_wav(path, samples.astype(np.float32))
