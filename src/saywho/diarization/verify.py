"""Words checked against the speakers' voices: who says each run of words.

Diarization labels frames through windows: a local speaker of one segmentation
window can hold two voices in turn (two people taking quick turns, one after the
other), and its fingerprint then speaks for both, so a stretch of one person's speech
can carry the other's label. The words are cleaner evidence: a run of words that ASR
decoded between two turn changes lies on one person's speech. So after the words are
assigned from the turns (``assign.assign_speakers``), each run of words of one
speaker inside a sentence, at least ``MIN_RUN_S`` long, is fingerprinted (CAM++ on its
span) and goes to the speaker whose fingerprint it is most like.

Measured (``bench/word_speakers.py``): words on the wrong speaker fell from 5.9% to
2.8% on the seven real dev recordings, from 4.3% to 0% on six synthetic quick-turn
conversations and from 16.9% to 14.3% on four simulated meetings of 2-8 speakers.
Checking the diarization's own turns the same way instead made DER worse on the real
meetings (a turn can hold overlapped speech, a run of words rarely does).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from saywho.diarization import embedding
from saywho.diarization.assign import assign_speakers, sentences, speaker_runs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from saywho.types import Diarization, Word

# A run of words shorter than this keeps the speaker its turns gave it. The same
# 0.5 s is the least speech the pipeline gives a speaker of its own
# (``pipeline.MIN_SPEAKER_SPEECH_S``). On the real clips and the quick-turn
# conversations 0.3 to 0.8 s give alike figures; at 1.0 s the real clips' share doubles.
MIN_RUN_S = 0.5
# A longer run is fingerprinted on its middle this long (enough for CAM++; the run's
# words all get one speaker anyway). Same figures in bench/word_speakers.py as whole
# runs, for less CPU: 3.7 s against 4.8 s on 2 minutes of the dev meetings.
MAX_SPAN_S = 4.0


def speaker_words(
    samples: np.ndarray, words: Sequence[Word], diarization: Diarization, *, device: str = "cpu"
) -> tuple[Word, ...]:
    """``words`` with speakers: assigned from the exclusive turns, then each run checked
    against the speakers' fingerprints (``verified``)."""
    return verified(samples, assign_speakers(words, diarization.exclusive), diarization, device=device)


def runs(words: Sequence[Word]) -> list[range]:
    """Index ranges of the runs of one speaker inside one sentence."""
    speakers = [w.speaker for w in words]
    return [run for sentence in sentences(words) for run in speaker_runs(speakers, sentence)]


def _middle(start: float, end: float) -> tuple[float, float]:
    if end - start <= MAX_SPAN_S:
        return start, end
    mid = (start + end) / 2
    return mid - MAX_SPAN_S / 2, mid + MAX_SPAN_S / 2


def verified(
    samples: np.ndarray, words: Sequence[Word], diarization: Diarization, *, device: str = "cpu"
) -> tuple[Word, ...]:
    """A copy of ``words`` (speakers assigned) in which each run of at least
    ``MIN_RUN_S`` goes to the speaker whose fingerprint its own is most like.

    A speaker is never left without words by a move (a speaker the turns gave words
    keeps its last run), so a speaker-count hint still holds.
    """
    labels = [k for k in diarization.fingerprints if k in diarization.speakers]
    if len(labels) < 2 or not words:
        return tuple(words)
    all_runs = runs(words)
    checked = [r for r in all_runs if words[r[-1]].end - words[r[0]].start >= MIN_RUN_S
               and words[r[0]].speaker in labels]
    if not checked:
        return tuple(words)
    voices = np.array([diarization.fingerprints[k] for k in labels], dtype=np.float32)  # (speakers, 192)
    spans = [_middle(words[r[0]].start, words[r[-1]].end) for r in checked]
    # The check runs after ASR and diarization: all cores are free for it (2 cores: 2.0 s
    # of wall time for 2 minutes of the dev meetings, against 3.7 s on one).
    workers = max(1, min(4, (os.cpu_count() or 1) // torch.get_num_threads()))
    prints = embedding.embed(samples, spans, model=embedding.get_model(device), workers=workers)  # (runs, 192)
    out = list(words)
    runs_of = Counter(words[r[0]].speaker for r in all_runs)
    for r, fingerprint in zip(checked, prints, strict=True):
        if not fingerprint.any():
            continue
        current = words[r[0]].speaker
        best = labels[int(np.argmax(voices @ fingerprint))]
        if best == current or runs_of[current] < 2:
            continue
        runs_of[current] -= 1
        runs_of[best] += 1
        for i in r:
            out[i] = replace(out[i], speaker=best)
    return tuple(out)
