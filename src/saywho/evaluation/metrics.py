"""Accuracy metrics on typed inputs: DER, JER, speaker count error, WER, cpWER.

Pure functions: they read no files (except the RTTM/UEM readers) and run no models.
DER and JER come from pyannote.metrics, WER from jiwer, both behind the ``eval``
extra; this module imports them only when a metric is computed.

Conventions
-----------
* DER scores overlapping speech (every reference speaker counts) and, by default,
  uses no collar: the strict "full" convention of current diarization papers.
* ``collar`` follows md-eval (NIST): seconds *on each side* of every reference
  boundary that are not scored, so ``collar=0.25`` is the classic md-eval figure.
  pyannote.metrics' ``collar`` is the total width of that region, so it is given
  ``2 * collar``.
* Scored region: the UEM when there is one; otherwise the extent of reference and
  hypothesis together (from the first turn's start to the last turn's end).
* Pooled figures (:func:`pool_der`, :func:`pool_wer`...) add seconds or word counts
  over files before dividing, so long files weigh more, as in md-eval and sclite.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from saywho.errors import InvalidOptionError
from saywho.types import SpeakerTurn

if TYPE_CHECKING:
    from pyannote.core import Annotation, Timeline

__all__ = [
    "CpWerResult",
    "DerResult",
    "JerResult",
    "Uem",
    "WerResult",
    "count_speakers",
    "cpwer",
    "der",
    "jer",
    "normalize_english",
    "pool_cpwer",
    "pool_der",
    "pool_jer",
    "pool_wer",
    "read_rttm",
    "read_uem",
    "speaker_count_error",
    "wer",
]

Uem = tuple[float, float] | Sequence[tuple[float, float]] | None
"""Scored region: one ``(start, end)``, several, or ``None`` for the data's extent."""


def _rate(error: float, total: float) -> float:
    # pyannote.metrics' convention when nothing is to be scored.
    if total > 0:
        return error / total
    return 0.0 if error == 0 else 1.0


# --- diarization ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DerResult:
    """Diarization error of one file (or pooled over files), in seconds.

    ``total`` is the scored reference speech, counted once per speaker (two people
    talking for 1 s is 2 s). ``mapping`` maps each hypothesis label to the reference
    label it was matched with (optimal one-to-one mapping); empty when pooled.
    """

    total: float
    missed: float
    false_alarm: float
    confusion: float
    collar: float = 0.0
    mapping: Mapping[str, str] = field(default_factory=dict)

    @property
    def error(self) -> float:
        return self.missed + self.false_alarm + self.confusion

    @property
    def der(self) -> float:
        return _rate(self.error, self.total)

    @property
    def missed_rate(self) -> float:
        return _rate(self.missed, self.total)

    @property
    def false_alarm_rate(self) -> float:
        return _rate(self.false_alarm, self.total)

    @property
    def confusion_rate(self) -> float:
        return _rate(self.confusion, self.total)

    def as_dict(self) -> dict[str, Any]:
        return {
            "der": self.der,
            "missed_rate": self.missed_rate,
            "false_alarm_rate": self.false_alarm_rate,
            "confusion_rate": self.confusion_rate,
            "total_s": self.total,
            "missed_s": self.missed,
            "false_alarm_s": self.false_alarm,
            "confusion_s": self.confusion,
            "collar_s": self.collar,
        }


@dataclass(frozen=True, slots=True)
class JerResult:
    """Jaccard error: ``speaker_error`` sums the per-reference-speaker JERs.

    ``jer`` is their mean, so pooling averages over every reference speaker of every file.
    """

    speaker_error: float
    speaker_count: float

    @property
    def jer(self) -> float:
        return _rate(self.speaker_error, self.speaker_count)

    def as_dict(self) -> dict[str, Any]:
        return {"jer": self.jer, "speaker_count": self.speaker_count}


def _annotation(turns: Iterable[SpeakerTurn]) -> Annotation:
    from pyannote.core import Annotation, Segment

    annotation = Annotation()
    for i, turn in enumerate(turns):
        if turn.end > turn.start:
            annotation[Segment(turn.start, turn.end), i] = turn.speaker
    return annotation


def _timeline(uem: Uem, reference: Sequence[SpeakerTurn], hypothesis: Sequence[SpeakerTurn]) -> Timeline:
    from pyannote.core import Segment, Timeline

    if uem is None:
        turns = [t for t in (*reference, *hypothesis) if t.end > t.start]
        if not turns:
            return Timeline()
        return Timeline([Segment(min(t.start for t in turns), max(t.end for t in turns))])
    if len(uem) == 2 and all(isinstance(x, int | float) for x in uem):
        regions: Sequence[Any] = [uem]
    else:
        regions = uem
    segments = []
    for region in regions:
        start, end = (float(x) for x in region)
        if end < start:
            raise InvalidOptionError(f"UEM region ends before it starts: {start}-{end}", param="uem")
        segments.append(Segment(start, end))
    return Timeline(segments).support()


def der(
    reference: Sequence[SpeakerTurn],
    hypothesis: Sequence[SpeakerTurn],
    uem: Uem = None,
    collar: float = 0.0,
) -> DerResult:
    """Diarization error rate, overlap scored, with the optimal label mapping.

    Args:
        reference: true turns (may overlap).
        hypothesis: system turns (may overlap); labels need not match the reference.
        uem: scored region(s); ``None`` scores the extent of both turn lists.
        collar: md-eval convention: seconds on *each side* of each reference boundary
            left unscored (0.25 is the classic md-eval figure). pyannote.metrics is
            given ``collar=2 * collar`` since its collar is the total width.

    Returns:
        A :class:`DerResult` in seconds; ``.der`` and the ``*_rate`` properties are rates.
    """
    from pyannote.metrics.diarization import DiarizationErrorRate

    if collar < 0:
        raise InvalidOptionError(f"collar must be >= 0, got {collar}", param="collar")
    scored = _timeline(uem, reference, hypothesis)
    if not scored:
        return DerResult(0.0, 0.0, 0.0, 0.0, collar=collar)
    ref, hyp = _annotation(reference), _annotation(hypothesis)
    metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=False)
    components = metric(ref, hyp, uem=scored, detailed=True)
    mapping = {str(h): str(r) for h, r in metric.optimal_mapping(ref, hyp, uem=scored).items()}
    return DerResult(
        total=float(components["total"]),
        missed=float(components["missed detection"]),
        false_alarm=float(components["false alarm"]),
        confusion=float(components["confusion"]),
        collar=collar,
        mapping=mapping,
    )


def jer(reference: Sequence[SpeakerTurn], hypothesis: Sequence[SpeakerTurn], uem: Uem = None) -> JerResult:
    """Jaccard error rate (DIHARD III), no collar, overlap scored."""
    from pyannote.metrics.diarization import JaccardErrorRate

    scored = _timeline(uem, reference, hypothesis)
    if not scored:
        return JerResult(0.0, 0.0)
    metric = JaccardErrorRate(collar=0.0, skip_overlap=False)
    components = metric(_annotation(reference), _annotation(hypothesis), uem=scored, detailed=True)
    return JerResult(float(components["speaker error"]), float(components["speaker count"]))


def count_speakers(turns: Sequence[SpeakerTurn], uem: Uem = None) -> int:
    """Distinct speakers with speech (inside the UEM when there is one)."""
    if uem is None:
        return len({t.speaker for t in turns if t.end > t.start})
    scored = _timeline(uem, (), ())
    return len({t.speaker for t in turns if any(t.start < s.end and s.start < t.end for s in scored)})


def speaker_count_error(
    reference: Sequence[SpeakerTurn], hypothesis: Sequence[SpeakerTurn], uem: Uem = None
) -> int:
    """Hypothesis speakers minus reference speakers (signed: positive = too many).

    With a UEM, only speakers with speech inside it count.
    """
    return count_speakers(hypothesis, uem) - count_speakers(reference, uem)


def pool_der(results: Iterable[DerResult]) -> DerResult:
    """Pooled DER: seconds summed over files, then divided (md-eval's overall figure)."""
    results = list(results)
    collars = {r.collar for r in results}
    return DerResult(
        total=sum(r.total for r in results),
        missed=sum(r.missed for r in results),
        false_alarm=sum(r.false_alarm for r in results),
        confusion=sum(r.confusion for r in results),
        collar=collars.pop() if len(collars) == 1 else float("nan"),
    )


def pool_jer(results: Iterable[JerResult]) -> JerResult:
    """Pooled JER: the mean over every reference speaker of every file."""
    results = list(results)
    return JerResult(sum(r.speaker_error for r in results), sum(r.speaker_count for r in results))


# --- words ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WerResult:
    """Word error counts of one file or pooled; ``wer`` = (S + D + I) / N."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        return _rate(self.errors, self.reference_words)

    def as_dict(self) -> dict[str, Any]:
        return {
            "wer": self.wer,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "reference_words": self.reference_words,
        }


def _words(text: str, normalize: bool) -> list[str]:
    return (normalize_english(text) if normalize else text).split()


def _align(reference: list[str], hypothesis: list[str]) -> WerResult:
    """Levenshtein alignment of two word lists (jiwer) as S/D/I counts."""
    if not reference or not hypothesis:
        return WerResult(0, len(reference), len(hypothesis), len(reference))
    import jiwer

    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return WerResult(out.substitutions, out.deletions, out.insertions, len(reference))


def wer(reference: str, hypothesis: str, *, normalize: bool = True) -> WerResult:
    """Word error of ``hypothesis`` against ``reference``.

    Both texts go through :func:`normalize_english` first unless ``normalize=False``
    (then words are split on whitespace, as they are).
    """
    return _align(_words(reference, normalize), _words(hypothesis, normalize))


def pool_wer(results: Iterable[WerResult]) -> WerResult:
    """Pooled WER: errors and reference words summed over files (sclite's overall figure)."""
    results = list(results)
    return WerResult(
        substitutions=sum(r.substitutions for r in results),
        deletions=sum(r.deletions for r in results),
        insertions=sum(r.insertions for r in results),
        reference_words=sum(r.reference_words for r in results),
    )


@dataclass(frozen=True, slots=True)
class CpWerResult:
    """Concatenated minimum-permutation WER (CHiME-6) of one file or pooled.

    ``assignment`` pairs reference and hypothesis speakers; ``None`` on one side is a
    speaker the other side has no partner for (all its words are deletions or insertions).
    """

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int
    assignment: tuple[tuple[str | None, str | None], ...] = ()
    missed_speakers: int = 0
    false_alarm_speakers: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def cpwer(self) -> float:
        return _rate(self.errors, self.reference_words)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cpwer": self.cpwer,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "reference_words": self.reference_words,
            "missed_speakers": self.missed_speakers,
            "false_alarm_speakers": self.false_alarm_speakers,
            "assignment": [list(pair) for pair in self.assignment],
        }


def cpwer(
    reference: Mapping[str, str], hypothesis: Mapping[str, str], *, normalize: bool = True
) -> CpWerResult:
    """cpWER: each speaker's words concatenated, speakers paired to minimise total errors.

    The pairing is a Hungarian assignment over a square cost matrix padded with empty
    speakers, so surplus reference speakers count as deletions and surplus hypothesis
    speakers as insertions. Matches meeteval's ``cp_word_error_rate`` on the same text.

    Args:
        reference: text per reference speaker (utterances already in time order).
        hypothesis: text per hypothesis speaker; labels need not match.
        normalize: apply :func:`normalize_english` to every text first.
    """
    ref_speakers, hyp_speakers = sorted(reference), sorted(hypothesis)
    ref_words = [_words(reference[s], normalize) for s in ref_speakers]
    hyp_words = [_words(hypothesis[s], normalize) for s in hyp_speakers]
    size = max(len(ref_words), len(hyp_words))
    padded_ref = ref_words + [[]] * (size - len(ref_words))
    padded_hyp = hyp_words + [[]] * (size - len(hyp_words))
    # (size, size): pairwise alignments, reused for the chosen pairs
    pairs = [[_align(r, h) for h in padded_hyp] for r in padded_ref]
    cost = np.array([[p.errors for p in row] for row in pairs], dtype=np.int64).reshape(size, size)
    rows, cols = linear_sum_assignment(cost)
    chosen = [pairs[i][j] for i, j in zip(rows, cols, strict=True)]
    assignment = tuple(
        (
            ref_speakers[i] if i < len(ref_speakers) else None,
            hyp_speakers[j] if j < len(hyp_speakers) else None,
        )
        for i, j in zip(rows, cols, strict=True)
        if i < len(ref_speakers) or j < len(hyp_speakers)
    )
    return CpWerResult(
        substitutions=sum(p.substitutions for p in chosen),
        deletions=sum(p.deletions for p in chosen),
        insertions=sum(p.insertions for p in chosen),
        reference_words=sum(len(w) for w in ref_words),
        assignment=assignment,
        missed_speakers=sum(1 for r, h in assignment if h is None),
        false_alarm_speakers=sum(1 for r, h in assignment if r is None),
    )


def pool_cpwer(results: Iterable[CpWerResult]) -> CpWerResult:
    """Pooled cpWER: errors and reference words summed over files."""
    results = list(results)
    return CpWerResult(
        substitutions=sum(r.substitutions for r in results),
        deletions=sum(r.deletions for r in results),
        insertions=sum(r.insertions for r in results),
        reference_words=sum(r.reference_words for r in results),
        missed_speakers=sum(r.missed_speakers for r in results),
        false_alarm_speakers=sum(r.false_alarm_speakers for r in results),
    )


# --- reference files -----------------------------------------------------------------------


def _data_lines(path: Path) -> Iterable[tuple[int, list[str]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidOptionError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if fields and not fields[0].startswith(("#", ";;")):
            yield number, fields


def read_rttm(path: str | Path) -> dict[str, list[SpeakerTurn]]:
    """Speaker turns per recording (URI) from an RTTM file, each list sorted by start.

    Only ``SPEAKER`` lines are read (fields: type, uri, channel, onset, duration,
    <NA>, <NA>, speaker, ...); comments (``#``, ``;;``) and other types are skipped.

    Raises:
        InvalidOptionError: the file cannot be read or a SPEAKER line is malformed.
    """
    turns: dict[str, list[SpeakerTurn]] = {}
    for number, fields in _data_lines(Path(path)):
        if fields[0] != "SPEAKER":
            continue
        try:
            uri, onset, duration, speaker = fields[1], float(fields[3]), float(fields[4]), fields[7]
        except (IndexError, ValueError) as exc:
            raise InvalidOptionError(f"{path}:{number}: malformed RTTM SPEAKER line") from exc
        if duration < 0:
            raise InvalidOptionError(f"{path}:{number}: negative duration in RTTM")
        turns.setdefault(uri, []).append(SpeakerTurn(onset, onset + duration, speaker))
    return {uri: sorted(ts, key=lambda t: (t.start, t.end, t.speaker)) for uri, ts in turns.items()}


def read_uem(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Scored regions per recording from a UEM file (``uri channel start end`` lines).

    Raises:
        InvalidOptionError: the file cannot be read or a line is malformed.
    """
    regions: dict[str, list[tuple[float, float]]] = {}
    for number, fields in _data_lines(Path(path)):
        try:
            uri, start, end = fields[0], float(fields[2]), float(fields[3])
        except (IndexError, ValueError) as exc:
            raise InvalidOptionError(f"{path}:{number}: malformed UEM line") from exc
        if end < start:
            raise InvalidOptionError(f"{path}:{number}: UEM region ends before it starts")
        regions.setdefault(uri, []).append((start, end))
    return regions


@functools.cache
def _english_normalizer() -> Callable[[str], str]:
    from whisper_normalizer.english import (
        EnglishTextNormalizer,  # lazy: optional (saywho[eval]); 0.15 s to build
    )

    return EnglishTextNormalizer()


def normalize_english(text: str) -> str:
    """Whisper's English text normaliser (the ``whisper-normalizer`` package): lower case,
    no punctuation, spellings and contractions made uniform, numbers as digits."""
    return " ".join(_english_normalizer()(text).split())
