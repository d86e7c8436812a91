"""Measure the system on a dataset: discover references, run each file, score, report.

A dataset is a directory of recordings with references beside them:

* ``*.rttm`` (any name, several URIs each) and optional ``*.uem``: who spoke when;
* ``<stem>.txt``: the words of one recording; ``trans.txt`` or ``*.trans.txt``: a
  table of ``ID text`` lines (LibriSpeech style);
* ``<stem>.tsv`` or ``<stem>.<anything>.tsv``: ``speaker<TAB>text`` lines, the words of
  each speaker (lines of one speaker are joined in order), for cpWER.

A recording's URI is its audio file's stem. The system under test is any
``run(path) -> Transcript``; the default calls :func:`saywho.transcribe`.
Rendering (Markdown, JSON, plots) lives in :mod:`saywho.evalreport`.
"""

from __future__ import annotations

import logging
import resource
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from saywho.errors import InvalidOptionError
from saywho.evaluation import metrics
from saywho.pipeline import transcribe
from saywho.types import Hook, SpeakerTurn, TranscribeOptions, Transcript, no_progress

if TYPE_CHECKING:
    from saywho.evaluation.metrics import CpWerResult, DerResult, JerResult, WerResult

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset(
    [
        ".wav",
        ".flac",
        ".mp3",
        ".m4a",
        ".ogg",
        ".opus",
        ".webm",
        ".aac",
        ".wma",
        ".mp4",
        ".mkv",
        ".mov",
        ".sph",
    ]
)
MD_EVAL_COLLAR = 0.25

Runner = Callable[[Path], Transcript]


# --- the dataset ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recording:
    """One audio file and whichever references it has (``None`` where it has none)."""

    uri: str
    audio: Path
    turns: tuple[SpeakerTurn, ...] | None = None
    uem: tuple[tuple[float, float], ...] | None = None
    text: str | None = None
    speaker_texts: Mapping[str, str] | None = None

    @property
    def needs_diarization(self) -> bool:
        return self.turns is not None or self.speaker_texts is not None


@dataclass(frozen=True, slots=True)
class Dataset:
    root: Path
    recordings: tuple[Recording, ...]
    # Audio without references, and references without audio: reported, not scored.
    unscored: tuple[str, ...] = ()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidOptionError(f"cannot read {path}: {exc}") from exc


def _read_table(path: Path) -> dict[str, str]:
    """``ID text`` lines (whitespace after the ID)."""
    table: dict[str, str] = {}
    for line in _read_text(path).splitlines():
        key, _, text = line.strip().partition(" ") if "\t" not in line else line.strip().partition("\t")
        if key:
            table[key] = text.strip()
    return table


def _read_speaker_texts(path: Path) -> dict[str, str]:
    """``speaker<TAB>text`` lines; one speaker's lines are joined in order."""
    texts: dict[str, list[str]] = {}
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        speaker, tab, text = line.partition("\t")
        if not tab:
            raise InvalidOptionError(f"{path}:{number}: expected 'speaker<TAB>text'")
        texts.setdefault(speaker.strip(), []).append(text.strip())
    return {speaker: " ".join(parts) for speaker, parts in texts.items()}


def discover(path: str | Path) -> Dataset:
    """Find the recordings of a dataset directory and their references.

    Raises:
        InvalidOptionError: the directory is missing or no recording has a reference.
    """
    root = Path(path)
    if not root.is_dir():
        raise InvalidOptionError(f"dataset directory not found: {root}", param="dataset")
    files = sorted(p for p in root.iterdir() if p.is_file())
    audio = {p.stem: p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS}

    turns: dict[str, list[SpeakerTurn]] = {}
    uems: dict[str, list[tuple[float, float]]] = {}
    texts: dict[str, str] = {}
    speaker_texts: dict[str, dict[str, str]] = {}
    for p in files:
        name = p.name
        if p.suffix == ".rttm":
            for uri, ts in metrics.read_rttm(p).items():
                turns.setdefault(uri, []).extend(ts)
        elif p.suffix == ".uem":
            for uri, regions in metrics.read_uem(p).items():
                uems.setdefault(uri, []).extend(regions)
        elif name == "trans.txt" or name.endswith(".trans.txt"):
            texts.update(_read_table(p))
        elif p.suffix == ".txt" and p.stem in audio:
            texts[p.stem] = " ".join(_read_text(p).split())
        elif p.suffix == ".tsv":
            stem = name.split(".", 1)[0]
            if stem in audio:
                speaker_texts[stem] = _read_speaker_texts(p)

    recordings = []
    for uri, audio_path in audio.items():
        ref_turns = turns.get(uri)
        recording = Recording(
            uri=uri,
            audio=audio_path,
            turns=tuple(sorted(ref_turns, key=lambda t: (t.start, t.end))) if ref_turns else None,
            uem=tuple(uems[uri]) if uri in uems else None,
            text=texts.get(uri),
            speaker_texts=speaker_texts.get(uri),
        )
        if recording.turns or recording.text is not None or recording.speaker_texts:
            recordings.append(recording)
    scored = {r.uri for r in recordings}
    unscored = sorted(set(audio) - scored) + sorted(
        f"{uri} (reference without audio)" for uri in (set(turns) | set(texts)) - set(audio)
    )
    if not recordings:
        raise InvalidOptionError(
            f"no recording in {root} has a reference (RTTM, <name>.txt, trans.txt or <name>.tsv)",
            param="dataset",
        )
    return Dataset(root=root, recordings=tuple(recordings), unscored=tuple(unscored))


# --- measuring one run ---------------------------------------------------------------------


def _rss_bytes() -> int | None:
    """Resident memory now (Linux /proc); None where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return None


def _max_rss_bytes() -> int:
    """The process's lifetime peak resident memory (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class _PeakMemory:
    """Peak resident memory during a block, sampled every ``interval`` seconds.

    Where the process's lifetime peak (ru_maxrss) rose during the block, that exact
    figure is used; otherwise the sampled maximum (the block stayed below an earlier peak).
    """

    def __init__(self, interval: float = 0.02) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._sampled = 0
        self.peak_bytes = 0

    def _sample(self) -> None:
        while True:
            rss = _rss_bytes()
            if rss is not None:
                self._sampled = max(self._sampled, rss)
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> Self:
        self._before = _max_rss_bytes()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        after = _max_rss_bytes()
        self.peak_bytes = after if after > self._before else max(self._sampled, _rss_bytes() or 0)


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileResult:
    """Scores of one recording; a metric is ``None`` where the recording has no reference for it."""

    uri: str
    audio: Path
    duration: float
    wall_s: float
    peak_memory_mib: float
    der: DerResult | None = None
    der_collar: DerResult | None = None
    jer: JerResult | None = None
    reference_speakers: int | None = None
    hypothesis_speakers: int | None = None
    wer: WerResult | None = None
    cpwer: CpWerResult | None = None
    # What was compared, for reports and plots.
    reference_turns: tuple[SpeakerTurn, ...] = ()
    hypothesis_turns: tuple[SpeakerTurn, ...] = ()
    scored_regions: tuple[tuple[float, float], ...] = ()
    hypothesis_text: str | None = None

    @property
    def rtf(self) -> float:
        """Real-time factor: seconds of processing per second of audio."""
        return self.wall_s / self.duration if self.duration > 0 else float("nan")

    @property
    def speaker_count_error(self) -> int | None:
        if self.reference_speakers is None or self.hypothesis_speakers is None:
            return None
        return self.hypothesis_speakers - self.reference_speakers


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Per-file results and pooled figures of one dataset."""

    dataset: Path
    files: tuple[FileResult, ...]
    collar: float = MD_EVAL_COLLAR
    models: Mapping[str, str] = field(default_factory=dict)
    unscored: tuple[str, ...] = ()

    def _present(self, name: str) -> list[Any]:
        return [getattr(f, name) for f in self.files if getattr(f, name) is not None]

    @property
    def der(self) -> DerResult | None:
        found = self._present("der")
        return metrics.pool_der(found) if found else None

    @property
    def der_collar(self) -> DerResult | None:
        found = self._present("der_collar")
        return metrics.pool_der(found) if found else None

    @property
    def jer(self) -> JerResult | None:
        found = self._present("jer")
        return metrics.pool_jer(found) if found else None

    @property
    def wer(self) -> WerResult | None:
        found = self._present("wer")
        return metrics.pool_wer(found) if found else None

    @property
    def cpwer(self) -> CpWerResult | None:
        found = self._present("cpwer")
        return metrics.pool_cpwer(found) if found else None

    @property
    def speaker_count_mae(self) -> float | None:
        """Mean absolute speaker count error over files with a diarization reference."""
        errors = self._present("speaker_count_error")
        return sum(abs(e) for e in errors) / len(errors) if errors else None

    @property
    def speaker_count_exact(self) -> float | None:
        """Fraction of files whose speaker count is exactly right."""
        errors = self._present("speaker_count_error")
        return sum(1 for e in errors if e == 0) / len(errors) if errors else None

    @property
    def duration(self) -> float:
        return sum(f.duration for f in self.files)

    @property
    def wall_s(self) -> float:
        return sum(f.wall_s for f in self.files)

    @property
    def rtf(self) -> float:
        return self.wall_s / self.duration if self.duration > 0 else float("nan")

    @property
    def peak_memory_mib(self) -> float:
        return max((f.peak_memory_mib for f in self.files), default=0.0)


# --- running -------------------------------------------------------------------------------


def _speaker_words(transcript: Transcript) -> dict[str, str]:
    """Hypothesis text per speaker, words in time order (one "unknown" speaker without labels)."""
    by_speaker: dict[str, list[str]] = {}
    if transcript.words:
        for word in sorted(transcript.words, key=lambda w: w.start):
            by_speaker.setdefault(word.speaker or "unknown", []).append(word.text.strip())
    else:
        for segment in transcript.segments:
            by_speaker.setdefault(segment.speaker or "unknown", []).append(segment.text.strip())
    return {speaker: " ".join(parts) for speaker, parts in by_speaker.items()}


def score(
    recording: Recording,
    transcript: Transcript,
    *,
    wall_s: float,
    peak_memory_mib: float,
    collar: float = MD_EVAL_COLLAR,
) -> FileResult:
    """Score one system output against the recording's references."""
    duration = transcript.duration
    result = FileResult(
        uri=recording.uri,
        audio=recording.audio,
        duration=duration,
        wall_s=wall_s,
        peak_memory_mib=peak_memory_mib,
        hypothesis_text=transcript.text,
    )
    if recording.turns is not None:
        if transcript.diarization is None:
            raise InvalidOptionError(
                f"{recording.uri}: the dataset has speaker turns but the system returned no diarization"
            )
        hypothesis = tuple(transcript.diarization.turns)
        reference = recording.turns
        regions = recording.uem or ((0.0, max(duration, max((t.end for t in reference), default=0.0))),)
        result = replace(
            result,
            der=metrics.der(reference, hypothesis, regions, collar=0.0),
            der_collar=metrics.der(reference, hypothesis, regions, collar=collar),
            jer=metrics.jer(reference, hypothesis, regions),
            reference_speakers=metrics.count_speakers(reference, regions),
            hypothesis_speakers=metrics.count_speakers(hypothesis, regions),
            reference_turns=reference,
            hypothesis_turns=hypothesis,
            scored_regions=tuple(regions),
        )
    if recording.text is not None:
        result = replace(result, wer=metrics.wer(recording.text, transcript.text))
    if recording.speaker_texts is not None:
        result = replace(result, cpwer=metrics.cpwer(recording.speaker_texts, _speaker_words(transcript)))
    return result


def default_runner(options: TranscribeOptions | None = None) -> Callable[[Recording], Transcript]:
    """``saywho.transcribe`` with ``options``, diarizing only recordings whose references need it."""
    base = options or TranscribeOptions()

    def run(recording: Recording) -> Transcript:
        return transcribe(
            recording.audio, replace(base, diarize=base.diarize and recording.needs_diarization)
        )

    return run


def evaluate_dataset(
    path: str | Path,
    run: Runner | None = None,
    *,
    options: TranscribeOptions | None = None,
    collar: float = MD_EVAL_COLLAR,
    hook: Hook | None = None,
) -> EvalReport:
    """Run the system on every recording of a dataset and score it.

    Args:
        path: the dataset directory (see the module docstring for its layout).
        run: the system under test, ``run(audio_path) -> Transcript``. Default:
            :func:`saywho.transcribe` with ``options``, diarizing only where a
            reference needs speakers.
        options: options of the default system (ignored when ``run`` is given).
        collar: md-eval collar (seconds each side) of the second DER figure.
        hook: progress, ``hook("eval", completed=files_done, total=files)``.

    Raises:
        InvalidOptionError: no such directory, or no recording has a reference.
    """
    if collar < 0:
        raise InvalidOptionError(f"collar must be >= 0, got {collar}", param="collar")
    hook = hook or no_progress
    dataset = discover(path)
    system: Callable[[Recording], Transcript]
    if run is None:
        system = default_runner(options)
    else:
        injected = run

        def system(recording: Recording) -> Transcript:
            return injected(recording.audio)

    results: list[FileResult] = []
    models: dict[str, str] = {}
    total = len(dataset.recordings)
    for i, recording in enumerate(dataset.recordings):
        hook("eval", completed=i, total=total)
        logger.info("evaluating %s", recording.audio)
        with _PeakMemory() as memory:
            start = time.perf_counter()
            transcript = system(recording)
            wall_s = time.perf_counter() - start
        models.update(transcript.models)
        results.append(
            score(
                recording, transcript, wall_s=wall_s, peak_memory_mib=memory.peak_bytes / 2**20, collar=collar
            )
        )
    hook("eval", completed=total, total=total)
    return EvalReport(
        dataset=dataset.root,
        files=tuple(results),
        collar=collar,
        models=models,
        unscored=dataset.unscored,
    )
