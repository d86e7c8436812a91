"""Words on the wrong speaker: assigned from the turns alone, and with each run of words
checked against the speakers' voices (``saywho.diarization.verify``).

    PYTHONPATH=src .venv/bin/python bench/word_speakers.py [--sim /tmp/simmeet] [--write]

Each recording is transcribed once (``saywho.transcribe``, defaults, no count given).
From its ASR words and diarization the words are then given speakers two ways: from
the exclusive turns alone (``assign.assign_speakers``, what saywho did before), and
with the runs checked against the voices for several ``verify.MIN_RUN_S``.

A word is scored where exactly one reference speaker is active at its midpoint (inside
the UEM); it is wrong when its speaker does not map to that reference speaker under
the optimal DER mapping of the diarization. Recordings:

- the seven real dev clips (``../shared/data/dev/diarization``);
- six synthetic conversations with quick turn-taking (0.2-0.4 s pauses) between 2-6
  Piper, flite and espeak-ng voices (``saywho.evaluation.synth``);
- optionally the simulated meetings of ``bench/simulate_meetings.py`` (real and
  synthetic voices, overlap, far-field levels): ``--sim DIR``.

``MIN_RUN_S`` leave-one-file-out over the real clips: for each held-out clip the value
with the fewest wrong words on the other six (ties: the committed value).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diarcache
import report

MIN_RUN_VALUES = (0.3, 0.5, 0.8, 1.0, 2.0)
QUICK = (  # (voices, lines, pause s, seed)
    (("flite:slt", "flite:awb", "piper:joe"), 12, 0.4, 3),
    (("flite:slt", "flite:awb", "piper:joe"), 12, 0.2, 5),
    (("flite:awb", "piper:joe", "flite:rms", "flite:kal16"), 16, 0.3, 1),
    (("flite:slt", "piper:joe", "espeak:en-us+f3", "flite:rms"), 16, 0.3, 2),
    (("piper:joe", "flite:rms", "espeak:en-us+f3", "flite:slt", "flite:awb", "flite:kal16"), 18, 0.4, 4),
    (("flite:awb", "piper:joe"), 12, 0.3, 6),
)


def quick_clips(directory: Path) -> list[diarcache.Clip]:
    from saywho.evaluation.synth import conversation, demo_lines

    clips = []
    for i, (voices, lines, pause, seed) in enumerate(QUICK):
        conv = conversation(demo_lines(voices, lines), gap_s=pause, seed=seed)
        ref = tuple((t.start, t.end, t.speaker) for t in conv.turns)
        conv.write(directory / f"quick{i}.wav")
        clips.append(diarcache.Clip(f"quick{i}", conv.samples, ref, (0.0, len(conv.samples) / 16_000)))
    return clips


def wrong_words(clip: diarcache.Clip, words, mapping: dict[str, str]) -> tuple[int, int]:
    """(wrong, scored) words of one clip."""
    lo, hi = clip.uem
    wrong = scored = 0
    for w in words:
        mid = (w.start + w.end) / 2
        if not lo <= mid < hi:
            continue
        active = {s for a, b, s in clip.reference if a <= mid < b}
        if len(active) != 1:
            continue
        scored += 1
        wrong += mapping.get(w.speaker) != next(iter(active))
    return wrong, scored


def measure(clip: diarcache.Clip) -> dict[str, tuple[int, int]]:
    """{variant: (wrong, scored)} for turns alone and each MIN_RUN_S."""
    from saywho import transcribe
    from saywho.diarization import verify
    from saywho.diarization.assign import assign_speakers
    from saywho.evaluation.metrics import der
    from saywho.types import SpeakerTurn

    t = transcribe(clip.audio)
    d = t.diarization
    reference = [SpeakerTurn(a, b, s) for a, b, s in clip.reference]
    mapping = dict(der(reference, d.turns, uem=[clip.uem]).mapping)
    assigned = assign_speakers(t.words, d.exclusive)  # speakers from the turns alone
    out = {"turns": wrong_words(clip, assigned, mapping)}
    committed = verify.MIN_RUN_S
    try:
        for value in MIN_RUN_VALUES:
            verify.MIN_RUN_S = value
            out[f"{value}"] = wrong_words(clip, verify.verified(clip.audio, assigned, d), mapping)
    finally:
        verify.MIN_RUN_S = committed
    return out


def pct(wrong: int, scored: int) -> str:
    return f"{100 * wrong / max(scored, 1):.1f}% ({wrong}/{scored})"


def loo(results: dict[str, dict[str, tuple[int, int]]], committed: str) -> tuple[int, int, list[str]]:
    wrong = scored = 0
    chosen = []
    for held in results:
        def others(v: str, held: str = held) -> int:
            return sum(r[v][0] for uri, r in results.items() if uri != held)

        best = min(MIN_RUN_VALUES, key=lambda v: (others(f"{v}"), f"{v}" != committed))
        chosen.append(f"{held}: {best}")
        wrong += results[held][f"{best}"][0]
        scored += results[held][f"{best}"][1]
    return wrong, scored, chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim", type=Path, help="directory of bench/simulate_meetings.py output")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args(argv)

    from saywho.diarization import verify

    committed = f"{verify.MIN_RUN_S}"
    groups: dict[str, list[diarcache.Clip]] = {"real dev clips": diarcache.dev_clips()}
    with tempfile.TemporaryDirectory() as tmp, report.LoadSampler() as load:
        groups["synthetic quick turns"] = quick_clips(Path(tmp))
        if args.sim:
            import simulate_meetings

            groups["simulated meetings"] = simulate_meetings.load(args.sim)
        results: dict[str, dict[str, dict[str, tuple[int, int]]]] = {}
        for group, clips in groups.items():
            results[group] = {}
            for clip in clips:
                results[group][clip.uri] = measure(clip)
                r = results[group][clip.uri]
                print(clip.uri, "turns", pct(*r["turns"]), "checked", pct(*r[committed]), flush=True)

    variants = ["turns", *(f"{v}" for v in MIN_RUN_VALUES)]
    head = ["recordings", "turns alone", *(f"checked, runs >= {v} s" for v in MIN_RUN_VALUES)]
    rows = []
    for group, per_file in results.items():
        if not per_file:
            continue
        rows.append([group, *(pct(sum(r[v][0] for r in per_file.values()), sum(r[v][1] for r in per_file.values()))
                              for v in variants)])
    files = [[uri, *(pct(*r[v]) for v in variants)] for per_file in results.values() for uri, r in per_file.items()]
    body = report.table(head, rows) + "\nPer recording:\n\n" + report.table(["recording", *head[1:]], files)
    if results["real dev clips"]:
        w, s, chosen = loo(results["real dev clips"], committed)
        body += (f"\nLeave-one-file-out over the real clips (MIN_RUN_S chosen on the other six): "
                 f"{pct(w, s)} of words on the wrong speaker; chosen {', '.join(chosen)}.\n")
    print(body)
    if args.write:
        report.write_section("word_speakers", report.header(
            "Words on the wrong speaker: turns alone against runs checked by voice (issue 13)", load) + body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
