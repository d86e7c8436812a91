"""Live speakers (issue 18): live DER of a session's speaker segments against the offline
pipeline's, on every dev recording and, optionally, the simulated meetings.

    PYTHONPATH=src .venv/bin/python bench/realtime_speakers.py [--sim /tmp/simmeet] [--write]

Each recording is fed to a ``LiveSession`` (defaults, tiny.en, ``identify`` off) in 100 ms
blocks as fast as the engine takes them (not paced: the speaker step sees the same
committed utterances either way; ``bench/realtime_latency.py`` measures at real-time
speed). Every committed utterance (its audio, words and start) is kept, and the speaker
step is then replayed on them:

- ``pieces``: what the engine did before (``LiveSession._piece_segments``): the words cut
  into pieces of about 2 s, each piece's fingerprint joins a running speaker at 0.45;
- ``utterance``: the engine now (``LiveSession._speaker_segments``): each utterance
  diarized offline, its speakers mapped onto the running ones at ``JOIN_THRESHOLD``,
  one segment per mapped turn; with several thresholds, and the threshold chosen
  leave-one-file-out (for each held-out dev clip, the value with the lowest pooled DER
  on the other six; ties: the committed value).

DER: no collar, overlap scored, over each clip's UEM (the figures of ``saywho eval``);
the offline column is ``saywho.diarize`` on the whole recording. Label changes after
first assignment are none by construction (a segment's label is never revised).
Numbers are printed and, with ``--write``, written to docs/BENCHMARKS.md (section
``realtime_speakers``); nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diarcache
import report

from saywho.diarization.pipeline import diarize
from saywho.streaming import LiveOptions, LiveSession, SpeakerSegment
from saywho.streaming import speakers as speakers_module

JOINS = (0.4, 0.45, 0.5, 0.55, 0.6)
BEFORE_JOIN = 0.45  # the threshold the piece method shipped with


class Capturing(LiveSession):
    """A session that keeps every committed utterance and times its speaker step."""

    def __init__(self) -> None:
        super().__init__(LiveOptions(identify=False))
        self.commits: list[tuple[np.ndarray, list, float]] = []
        self.speaker_cpu_s = 0.0

    def _speaker_segments(self, item, audio, words, t0):
        self.commits.append((np.array(audio), list(words), t0))
        began = time.process_time()
        try:
            return super()._speaker_segments(item, audio, words, t0)
        finally:
            self.speaker_cpu_s += time.process_time() - began


_diarized: dict[bytes, object] = {}


def _cached_diarize(audio):
    key = hashlib.sha1(np.ascontiguousarray(audio, dtype=np.float32).tobytes()).digest()
    if key not in _diarized:
        _diarized[key] = diarize(audio)
    return _diarized[key]


def replay(commits, method: str, join: float) -> list[tuple[float, float, str]]:
    session = LiveSession(LiveOptions(identify=False))
    session.speakers.join_threshold = join
    step = session._piece_segments if method == "pieces" else session._speaker_segments
    turns = []
    for k, (audio, words, t0) in enumerate(commits):
        for event in step(f"item_{k}", audio, words, t0):
            turns.append((event.start, event.end, event.speaker))
    return turns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", type=Path, help="simulated meetings (bench/simulate_meetings.py --out DIR)")
    parser.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    report.require_dev("diarization")
    speakers_module.diarize = _cached_diarize  # replays reuse each utterance's diarization
    with report.LoadSampler() as load:
        return _run(args, load)


def _run(args: argparse.Namespace, load: report.LoadSampler) -> int:
    clips = [(c, "dev") for c in diarcache.dev_clips()]
    if args.sim:
        import simulate_meetings

        clips += [(c, "sim") for c in simulate_meetings.load(args.sim)]
    rows, lines, comps = [], [], {}
    default = speakers_module.JOIN_THRESHOLD
    for clip, group in clips:
        session = Capturing()
        x = clip.audio
        segments, began = [], time.process_time()
        for i in range(0, len(x), 1600):
            segments += [e for e in session.feed(x[i:i + 1600]) if isinstance(e, SpeakerSegment)]
        segments += [e for e in session.finish() + session.flush() if isinstance(e, SpeakerSegment)]
        total_cpu = time.process_time() - began
        duration = len(x) / 16000
        offline = diarize(x)
        comps[(clip.uri, "offline")] = diarcache.der_components(clip, [(t.start, t.end, t.speaker) for t in offline.turns])
        comps[(clip.uri, "pieces")] = diarcache.der_components(clip, replay(session.commits, "pieces", BEFORE_JOIN))
        for join in JOINS:
            turns = replay(session.commits, "utterance", join)
            comps[(clip.uri, join)] = diarcache.der_components(clip, turns)
            comps[(clip.uri, join, "n")] = len({t[2] for t in turns})
        live = [(e.start, e.end, e.speaker) for e in segments]
        assert abs(diarcache.pooled([diarcache.der_components(clip, live)]) -
                   diarcache.pooled([comps[(clip.uri, default)]])) < 1e-9, "replay differs from the session"
        empty = sum(1 for e in segments if not e.text)
        ref_n = clip.num_speakers()
        rows.append([clip.uri, group, ref_n, len(session.commits),
                     f"{diarcache.pooled([comps[(clip.uri, 'offline')]]):.1%}",
                     f"{diarcache.pooled([comps[(clip.uri, 'pieces')]]):.1%}",
                     f"{diarcache.pooled([comps[(clip.uri, default)]]):.1%}",
                     comps[(clip.uri, default, "n")], f"{empty}/{len(segments)}",
                     f"{session.speaker_cpu_s / duration:.3f}"])
        lines.append(f"{clip.uri}: {len(session.commits)} utterances; DER offline "
                     f"{rows[-1][4]}, live pieces {rows[-1][5]}, live utterance {rows[-1][6]} "
                     "(" + ", ".join(f"{j}: {diarcache.pooled([comps[(clip.uri, j)]]):.1%}/"
                                     f"{comps[(clip.uri, j, 'n')]}" for j in JOINS) + "); "
                     f"speaker step {session.speaker_cpu_s:.1f} CPU s of {total_cpu:.1f} for {duration:.0f} s")
        print(lines[-1], flush=True)
    summary = []
    for group in ("dev", "sim"):
        uris = [c.uri for c, g in clips if g == group]
        if not uris:
            continue
        pool = {k: diarcache.pooled([comps[(u, k)] for u in uris]) for k in ("offline", "pieces", *JOINS)}
        summary.append(f"{group}: pooled DER offline {pool['offline']:.1%}, live pieces {pool['pieces']:.1%}, "
                       "live utterance " + ", ".join(f"{j}: {pool[j]:.1%}" for j in JOINS))
        if group == "dev":
            held = []
            for u in uris:
                others = [v for v in uris if v != u]
                best = min(JOINS, key=lambda j: (diarcache.pooled([comps[(v, j)] for v in others]), j != default))
                held.append(comps[(u, best)])
                summary.append(f"  leave-one-out {u}: join {best}")
            summary.append(f"dev leave-one-file-out: live DER {diarcache.pooled(held):.1%} "
                           f"(offline {pool['offline']:.1%})")
    print("\n".join(summary))
    if args.write:
        body = report.header("Live speakers: each utterance diarized, against pieces of words (issue 18)", load)
        body += report.table(["file", "set", "ref speakers", "utterances", "offline DER", "live DER, pieces (before)",
                              f"live DER, utterance (join {default})", "live speakers", "segments without words",
                              "speaker step CPU s per audio s"], rows)
        body += "\n```\n" + "\n".join([*lines, "", *summary]) + "\n```\n"
        print(report.write_section("realtime_speakers", body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
