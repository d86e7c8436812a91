"""Live transcription at real-time speed (issue 18): latency, live DER, label changes, lag.

    PYTHONPATH=src .venv/bin/python bench/realtime_latency.py [--files sample dev00 ...] [--model tiny.en]
        [--policies la2 fast]

Each dev recording (``../shared/data/dev/diarization``; or a WAV file with its RTTM beside
it, such as the simulated meetings of ``bench/simulate_meetings.py``) is fed to a ``LiveSession`` in
100 ms blocks, each block when its audio would have been heard live (``paced``), on
this machine as it is (note the load average printed). Measured per file:

- word latency: from the end of a word in the audio (the offline transcript's word
  times) to the delta containing it (the words of all deltas aligned to the offline
  words by normalised text, difflib's matching blocks);
- end of speech -> ``completed``: from the end of the speech an item holds to its event.
  The speech's end is the later of its last offline word's end and the last reference
  turn end inside the item: tiny.en offline drops whole phrases now and then (on the
  simulated meetings most of all), and a reference turn may end before the last word
  (AMI's turns), so each alone puts the end too early. The figure by the offline words
  alone (the yardstick of the first runs) is printed as well;
- live DER (no collar, overlap scored) of the speaker segments against the reference,
  next to the offline pipeline's DER on the same file;
- label changes after first assignment (by construction none: labels are never revised);
- the largest lag reported;
- where the time goes: decodes (count, median seconds), VAD and speaker fingerprints
  (seconds in all), against the audio's duration.

Clocks (``--clocks``): ``wall`` (the default) times events on this machine's clock, so
the figures include every decode's cost on it (and the load of other work); ``audio``
feeds the audio as fast as the engine takes it and times each event by the audio heard
so far, as if every decode, VAD run and speaker step took no time (SimulEval's latency
without ``--computation-aware``): what the engine's policy costs by itself, whatever the
hardware. It is deterministic, so policy changes can be compared on a noisy machine;
with ``audio`` partial decodes come every ``partial_interval_s``.

Policies, run one after the other on each file so both see the same load: ``la2``
(LocalAgreement-2 only: a word is stable once two decodes agree; the commit decodes
again), ``fast30`` (the default with Whisper's 30 s window for partials too), ``fast``
(the default: confident words stable after one decode, a pause decoded at once, short
encoder context for partials) and ``pieces`` (``fast`` with the speaker step of before:
each ~2 s piece of an utterance's words matched alone, no diarization of the utterance). Numbers are printed and written to
docs/BENCHMARKS.md (section ``realtime``); nothing is asserted.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import report

from saywho.audio.decode import load_audio
from saywho.evaluation.metrics import der, read_rttm, wer
from saywho.pipeline import transcribe
from saywho.streaming import Completed, Delta, LiveOptions, LiveSession, SpeakerSegment
from saywho.streaming.sources import paced
from saywho.types import SAMPLE_RATE, SpeakerTurn, TranscribeOptions

DEV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dev" / "diarization"
if not DEV.is_dir():
    DEV = Path("/work/shared/data/dev/diarization")


def norm(w: str) -> str:
    return re.sub(r"[^\w']", "", w.lower())


POLICIES = {
    "la2": {"stable_probability": 2.0, "early_decode_ms": 10**9, "short_context": False},
    "fast30": {"short_context": False},
    "fast": {},
    "pieces": {},  # the default policy with the speaker step of before (each ~2 s piece of words matched alone)
}


class Profiled(LiveSession):
    """A session that times its decodes, VAD runs and speaker fingerprints."""

    def __init__(self, options: LiveOptions) -> None:
        super().__init__(options)
        self.times: dict[str, list[float]] = {"decode": [], "vad": [], "speakers": []}

    def _timed(self, what: str, call, *args):
        began = time.perf_counter()
        try:
            return call(*args)
        finally:
            self.times[what].append(time.perf_counter() - began)

    def _decode(self, audio, **kwargs):
        return self._timed("decode", lambda: super(Profiled, self)._decode(audio, **kwargs))

    def _speech_spans(self):
        return self._timed("vad", super()._speech_spans)

    pieces = False

    def _speaker_segments(self, *args):
        step = super()._piece_segments if self.pieces else super()._speaker_segments
        return self._timed("speakers", step, *args)


class AudioClock(Profiled):
    """A profiled session whose decodes take no time as far as its policy sees (``--clocks audio``)."""

    @property
    def _decode_s(self) -> float:
        return 0.0

    @_decode_s.setter
    def _decode_s(self, value: float) -> None:
        pass


def recording(name: str) -> tuple[Path, Path, list[tuple[float, float]] | None]:
    """A dev recording's name (``sample``, ``dev00``, ...) or the path of a WAV file with its
    RTTM beside it (a simulated meeting of ``bench/simulate_meetings.py``): the audio, the
    reference turns and the scored region (the dev clips' first 30 s; a WAV file: all of it)."""
    if name.endswith(".wav"):
        return Path(name), Path(name).with_suffix(".rttm"), None
    rttm = "sample.rttm" if name == "sample" else "ami_dev.rttm" if name.startswith("dev") else "ami_train.rttm"
    return DEV / f"{name}.wav", DEV / rttm, [(0.0, 30.0)]


def offline_run(name: str, model: str):
    path = recording(name)[0]
    return load_audio(path).samples, transcribe(path, TranscribeOptions(model=model))


def aligned_latencies(offline: list[tuple[str, float]], heard: list[tuple[str, float]]) -> list[float]:
    """Seconds from each offline word's end to when it was heard, for the heard words aligned
    to the offline ones (normalised text; difflib's longest matching blocks, in order)."""
    matcher = difflib.SequenceMatcher(a=[w for w, _ in offline], b=[w for w, _ in heard], autojunk=False)
    return [heard[block.b + k][1] - offline[block.a + k][1]
            for block in matcher.get_matching_blocks() for k in range(block.size)]


def run_file(name: str, model: str, policy: str, samples: np.ndarray, offline, clock: str = "wall") -> dict:
    words = [(norm(w.text), w.end) for w in offline.words if norm(w.text)]
    _, rttm, uem = recording(name)
    reference = read_rttm(rttm)
    ref = reference.get(Path(name).stem) or next(iter(reference.values()))
    ref_ends = sorted(turn.end for turn in ref)
    session = (AudioClock if clock == "audio" else Profiled)(LiveOptions(model=model, identify=False, **POLICIES[policy]))
    session.pieces = policy == "pieces"
    blocks = (samples[i: i + 1600] for i in range(0, len(samples), 1600))
    began = time.monotonic()
    word_latency, completed_latency, segments, max_lag, texts = [], [], [], 0.0, []
    completed_by_words: list[float] = []  # the yardstick of before: the offline words alone
    heard: list[tuple[str, float]] = []  # (delta word, when its delta came), in order

    def handle(events: list, now: float) -> None:
        nonlocal max_lag
        for e in events:
            if isinstance(e, Delta):
                max_lag = max(max_lag, e.lag_s)
                heard.extend((token, now) for token in (norm(t) for t in e.delta.split()) if token)
            elif isinstance(e, Completed):
                texts.append(e.transcript)
                inside = [end for _, end in words if e.start <= end <= e.end]
                if inside:
                    completed_by_words.append(now - max(inside))
                    spoken = [end for end in ref_ends if e.start < end <= e.end]
                    completed_latency.append(now - max(inside + spoken))
            elif isinstance(e, SpeakerSegment):
                segments.append(SpeakerTurn(start=e.start, end=e.end, speaker=e.speaker))

    if clock == "audio":  # each event at the audio heard so far: decodes cost nothing
        for block in blocks:
            handle(session.feed(block), session.received_s)
        handle(session.finish(), session.received_s)
        handle(session.flush(), session.received_s)
    else:
        for block, _lag in paced(blocks):
            events = session.feed(block, lag_s=max(0.0, time.monotonic() - began - session.received_s))
            handle(events, time.monotonic() - began)
        handle(session.finish(), time.monotonic() - began)
        handle(session.flush(), time.monotonic() - began)  # the last utterance's speakers, after its completed
    live_der = der(ref, segments, uem).der if segments else 1.0
    offline_der = der(ref, list(offline.diarization.turns), uem).der if offline.diarization else float("nan")
    word_latency += aligned_latencies(words, heard)
    live_wer = wer(" ".join(w.text for w in offline.words), " ".join(texts)).wer
    # Delta words the completed texts then changed (a delta is sent once and never revised).
    final = [token for text in texts for token in (norm(t) for t in text.split()) if token]
    kept = difflib.SequenceMatcher(a=final, b=[w for w, _ in heard], autojunk=False).get_matching_blocks()
    unlike = len(heard) - sum(block.size for block in kept)
    return {"word_latency": word_latency, "wer_vs_offline": live_wer, "completed_latency": completed_latency,
            "completed_by_words": completed_by_words, "live_der": live_der,
            "offline_der": offline_der, "max_lag": max_lag, "segments": len(segments),
            "unlike": unlike, "delta_words": len(heard),
            "matched": len(word_latency), "words": len(words),
            "wall": time.monotonic() - began, "duration": len(samples) / SAMPLE_RATE, "times": session.times}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=["sample"],
                        help="dev recordings by name (sample, dev00, ...) or WAV files with an RTTM beside them")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--policies", nargs="+", default=["la2", "fast30", "fast"], choices=list(POLICIES))
    parser.add_argument("--clocks", nargs="+", default=["wall"], choices=["wall", "audio"],
                        help="wall: this machine's clock (decodes cost what they cost here); "
                             "audio: decodes cost nothing (the policy's own latency)")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, model {args.model}")
    runs = [(policy, clock) for clock in args.clocks for policy in args.policies]
    total: dict[tuple[str, str], dict[str, list[float]]] = {run: {"words": [], "done": [], "done_by_words": [], "unlike": [0, 0]}
                                                          for run in runs}
    rows, lines = [], []
    with report.LoadSampler() as load:
        for name in args.files:
            samples, offline = offline_run(name, args.model)
            label = Path(name).stem
            for policy, clock in runs:
                r = run_file(name, args.model, policy, samples, offline, clock)
                sums = total[policy, clock]
                sums["words"] += r["word_latency"]
                sums["done"] += r["completed_latency"]
                sums["done_by_words"] += r["completed_by_words"]
                sums["unlike"][0] += r["unlike"]
                sums["unlike"][1] += r["delta_words"]
                t = r["times"]
                line = (f"{label} {policy} {clock} clock: word->delta median {pct(r['word_latency'], 50):.2f} s p95 "
                        f"{pct(r['word_latency'], 95):.2f} s ({r['matched']}/{r['words']} words matched); speech "
                        f"end->completed p95 {pct(r['completed_latency'], 95):.2f} s (offline words alone "
                        f"{pct(r['completed_by_words'], 95):.2f} s); delta words the completed text "
                        f"changed {r['unlike']}/{r['delta_words']}; DER live {r['live_der']:.3f} "
                        f"offline {r['offline_der']:.3f}; WER of completed vs offline text {r['wer_vs_offline']:.3f}; label changes 0/{r['segments']}; max lag "
                        f"{r['max_lag']:.2f} s; wall {r['wall']:.1f} s for {r['duration']:.1f} s; "
                        f"{len(t['decode'])} decodes (median {pct(t['decode'], 50):.2f} s, "
                        f"{sum(t['decode']):.1f} s in all), VAD {sum(t['vad']):.1f} s, "
                        f"speakers {sum(t['speakers']):.1f} s")
                print(line, flush=True)
                lines.append(line)
                rows.append([label, policy, clock, f"{pct(r['word_latency'], 50):.2f}", f"{pct(r['word_latency'], 95):.2f}",
                             f"{pct(r['completed_latency'], 95):.2f}", f"{pct(r['completed_by_words'], 95):.2f}",
                             f"{r['unlike'] / max(1, r['delta_words']):.3f}",
                             f"{r['live_der']:.3f}", f"{r['offline_der']:.3f}", f"{r['wer_vs_offline']:.3f}", len(t["decode"]),
                             f"{pct(t['decode'], 50):.2f}", f"{sum(t['decode']) / r['duration']:.2f}", f"{r['max_lag']:.2f}"])
    for policy, clock in runs:
        sums = total[policy, clock]
        w, d, (changed, sent) = sums["words"], sums["done"], sums["unlike"]
        line = (f"all {policy} {clock} clock: word->delta median {pct(w, 50):.2f} s p95 {pct(w, 95):.2f} s; "
                f"speech end->completed median {pct(d, 50):.2f} s p95 {pct(d, 95):.2f} s ({len(d)} items; by the "
                f"offline words alone median {pct(sums['done_by_words'], 50):.2f} s p95 {pct(sums['done_by_words'], 95):.2f} s); "
                f"delta words changed {changed}/{sent}")
        print(line)
        lines.append(line)
        rows.append(["all", policy, clock, f"{pct(w, 50):.2f}", f"{pct(w, 95):.2f}", f"{pct(d, 95):.2f}",
                     f"{pct(sums['done_by_words'], 95):.2f}", f"{changed / max(1, sent):.3f}", "", "", "", "", "", "", ""])
    body = report.header("Live transcription: latency at real-time speed (issue 18)", load) + report.table(
        ["file", "policy", "clock", "word->delta median s", "p95 s", "speech end->completed p95 s",
         "(by offline words alone)", "delta words changed", "live DER", "offline DER", "WER vs offline", "decodes", "decode median s",
         "decode s per audio s", "max lag s"], rows)
    body += ("\nGoals (issue 18): word->delta median <= 1.0 s, p95 <= 2.0 s; completed p95 <= 1.5 s. "
             "`la2`: LocalAgreement-2 only, 30 s encoder context; `fast30`: the default policy with the 30 s context; "
             "`fast`: the default policy (confident words stable after one decode, short encoder context; docs/realtime.md). "
             "Clock `wall`: this machine's time at real-time speed; `audio`: every decode, VAD run and speaker step "
             "taken as free (the policy's own latency, deterministic). Delta words changed: words sent in deltas that "
             "the completed text then has differently. Speech end: the later of the item's last offline word and "
             "last reference turn end (by offline words alone: the yardstick of the first runs, which tiny.en's dropped "
             "phrases push early). Files named meetN_sK: simulated meetings "
             "(`PYTHONPATH=src .venv/bin/python bench/simulate_meetings.py --out /tmp/simmeet`). "
             "WER vs offline: the completed texts against the offline transcript of the same file.\n\n```\n"
             + "\n".join(lines) + "\n```\n")
    report.write_section("realtime", body)


if __name__ == "__main__":
    sys.exit(main())
