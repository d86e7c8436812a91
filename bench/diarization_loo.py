"""Diarization on the 7 dev clips: per-file DER and count, pooled DER, a sweep of the
clustering settings (and the overlap count threshold) and its leave-one-file-out table; optionally hints and the
simulated meetings.

    PYTHONPATH=src .venv/bin/python bench/diarization_loo.py [--sim /tmp/simmeet] [--heldout /tmp/simheld] [--no-sweep]

(build the meetings first: ``bench/simulate_meetings.py --out /tmp/simmeet`` and, for
meetings no setting was chosen on, ``--out /tmp/simheld --sizes 3 5 7 9 10 --seeds 5 6``).
Each set is also scored without the merge of stray speakers (``STRAY_SPEECH_S`` = 0),
the step added last, as a before/after line.

DER: pyannote.metrics, no collar, overlap scored, over each clip's UEM (0-30 s).
``defaults`` is the module's settings as committed. The sweep varies the segmentation
onset, the overlap count threshold, the clustering method (AHC / NME-SC), the clean speech a piece needs to be
clustered, the speech a cluster needs to be a speaker, and the AHC cut; for each held
out file the settings are the best pooled DER on the other six (LOO). Segmentation and
embeddings are cached (``bench/diarcache.py``): the first run embeds, later runs take
seconds.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diarcache

KNOBS = ("SEGMENTATION_ONSET", "OVERLAP_COUNT_AT", "CLUSTERING_METHOD", "MIN_CLUSTERING_SPEECH_S",
         "MIN_SPEAKER_SPEECH_S", "COSINE_THRESHOLD", "STRAY_SPEECH_S")
# The last step added (pipeline.STRAY_SPEECH_S): reported before/after, not swept.
WITHOUT_STRAYS = {"STRAY_SPEECH_S": 0.0}
GRID = {
    "SEGMENTATION_ONSET": (None,),
    "OVERLAP_COUNT_AT": (0.2, 0.3, 0.5),
    "CLUSTERING_METHOD": ("ahc",),
    "MIN_CLUSTERING_SPEECH_S": (0.5, 1.0),
    "MIN_SPEAKER_SPEECH_S": (0.5, 1.0, 2.0),
    "COSINE_THRESHOLD": (0.3, 0.35, 0.4),
}


class Runner:
    def __init__(self):
        diarcache.enable()
        from saywho.diarization import clustering
        from saywho.diarization import pipeline as diarization

        self.d, self.c = diarization, clustering
        self.defaults = self.settings()
        self.pieces = {}

    def settings(self) -> dict:
        return {k: getattr(self.c if k == "COSINE_THRESHOLD" else self.d, k) for k in KNOBS}

    def apply(self, cfg: dict) -> None:
        for k, v in cfg.items():
            setattr(self.c if k == "COSINE_THRESHOLD" else self.d, k, v)

    def run(self, clip, cfg: dict, count=None):
        """(DER components, number of speakers, speech per speaker) of one clip."""
        from saywho.types import SpeakerCount

        self.apply(cfg)
        count = count or SpeakerCount()
        key = (cfg["SEGMENTATION_ONSET"], clip.uri)
        if key not in self.pieces:
            self.pieces[key] = self.d._pieces(self.d._normalized(clip.audio))
        p = self.pieces[key]
        if p is None:
            return diarcache.der_components(clip, []), 0, {}
        labels, k = self.d._label_pieces(p, count)
        result = self.d._reconstruct(p, labels, k, count)
        speech = {}
        for t in result.exclusive:
            speech[t.speaker] = speech.get(t.speaker, 0.0) + t.duration
        self.apply(self.defaults)
        return diarcache.der_components(clip, result.turns), len(result.speakers), speech


def table(title, clips, rows):
    print(f"\n{title}")
    print(f"{'file':<10} {'ref':>3} {'hyp':>3} {'DER':>6} {'miss':>6} {'FA':>6} {'conf':>6}")
    for clip, (c, k, _) in zip(clips, rows, strict=True):
        t = max(c["total"], 1e-9)
        print(
            f"{clip.uri:<10} {clip.num_speakers():3d} {k:3d} {c['diarization error rate']:6.1%} "
            f"{c['missed detection'] / t:6.1%} {c['false alarm'] / t:6.1%} {c['confusion'] / t:6.1%}"
        )
    print(summary(clips, rows))


def summary(clips, rows) -> str:
    exact = sum(k == clip.num_speakers() for clip, (_, k, _) in zip(clips, rows, strict=True))
    worst = max(abs(k - clip.num_speakers()) for clip, (_, k, _) in zip(clips, rows, strict=True))
    mean = sum(abs(k - clip.num_speakers()) for clip, (_, k, _) in zip(clips, rows, strict=True)) / len(clips)
    return (f"pooled DER {diarcache.pooled([r[0] for r in rows]):.1%}; count exact on {exact}/{len(clips)}, "
            f"worst off by {worst}, mean absolute count error {mean:.2f}")


def meetings(r: Runner, title: str, sim: list) -> None:
    """The defaults' table for simulated meetings, per size, and the before line."""
    rows = [r.run(c, r.defaults) for c in sim]
    table(title, sim, rows)
    for n in sorted({c.num_speakers() for c in sim}):
        sel = [(c, x) for c, x in zip(sim, rows, strict=True) if c.num_speakers() == n]
        print(f"  {n} speakers: DER {diarcache.pooled([x[0] for _, x in sel]):.1%}, counts {[x[1] for _, x in sel]}")
    before = [r.run(c, r.defaults | WITHOUT_STRAYS) for c in sim]
    print(f"without the merge of stray speakers: {summary(sim, before)}; counts {[x[1] for x in before]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim", type=Path, default=None, help="simulated meetings directory")
    parser.add_argument("--heldout", type=Path, default=None,
                        help="simulated meetings no setting was chosen on (other sizes and seeds)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep and the LOO table")
    parser.add_argument("--write-docs", action="store_true", help="also write the output into docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.write_docs:
        import contextlib
        import io

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main([a for a in (argv if argv is not None else sys.argv[1:]) if a != "--write-docs"])
        print(buffer.getvalue(), end="")
        _write_docs(buffer.getvalue(), argv if argv is not None else sys.argv[1:])
        return code
    clips = diarcache.dev_clips()
    if not clips:
        print("dev set absent (../shared): nothing to score")
        return 0
    from saywho.types import SpeakerCount

    r = Runner()
    cfg = r.defaults
    print("defaults:", cfg)
    rows = [r.run(c, cfg) for c in clips]
    table("dev, no count given", clips, rows)
    print(f"without the merge of stray speakers: {summary(clips, [r.run(c, cfg | WITHOUT_STRAYS) for c in clips])}")
    hinted = [r.run(c, cfg, SpeakerCount(num=c.num_speakers())) for c in clips]
    table("dev, num_speakers = true count", clips, hinted)
    ok = sum(len([s for s, v in sp.items() if v >= 0.5]) == c.num_speakers() for c, (_, _, sp) in zip(clips, hinted, strict=True))
    print(f"files where exactly the true count of speakers have >= 0.5 s of speech: {ok}/{len(clips)}")
    for name, mk in (("min=max=true", lambda n: SpeakerCount(min=n, max=n)), ("max=true-1", lambda n: SpeakerCount(max=max(1, n - 1))), ("min=true+1", lambda n: SpeakerCount(min=n + 1))):
        ks = [r.run(c, cfg, mk(c.num_speakers()))[1] for c in clips]
        print(f"{name}: counts {ks} (truth {[c.num_speakers() for c in clips]})")

    if not args.no_sweep:
        grid = [dict(zip(GRID, v, strict=True)) for v in itertools.product(*GRID.values())]
        grid = [g for g in grid if not (g["CLUSTERING_METHOD"] == "nmesc" and g["COSINE_THRESHOLD"] != 0.4)]
        results = [[r.run(c, g) for c in clips] for g in grid]
        idx = range(len(clips))
        def score(gi, files):
            return diarcache.pooled([results[gi][i][0] for i in files])
        print(f"\nsweep: {len(grid)} settings; best 5 on all 7 files (in-sample)")
        for gi in sorted(range(len(grid)), key=lambda gi: score(gi, idx))[:5]:
            print(f"  {score(gi, idx):6.1%} counts {[x[1] for x in results[gi]]} {grid[gi]}")
        for method in sorted({g["CLUSTERING_METHOD"] for g in grid}):
            sub = [gi for gi in range(len(grid)) if grid[gi]["CLUSTERING_METHOD"] == method]
            loo = []
            for i in idx:
                best = min(sub, key=lambda gi: score(gi, [j for j in idx if j != i]))
                loo.append((results[best][i], grid[best]))
            print(f"\nleave-one-file-out, {method} (settings chosen on the other 6 files)")
            print(f"{'file':<10} {'ref':>3} {'hyp':>3} {'DER':>6}  settings")
            for clip, ((c, k, _), g) in zip(clips, loo, strict=True):
                print(f"{clip.uri:<10} {clip.num_speakers():3d} {k:3d} {c['diarization error rate']:6.1%}  {g}")
            print(f"LOO pooled DER ({method}): {diarcache.pooled([x[0][0] for x in loo]):.1%}")

    import simulate_meetings

    for title, folder in (("simulated meetings, no count given", args.sim),
                          ("held-out simulated meetings (no setting chosen on them), no count given", args.heldout)):
        if folder is not None:
            meetings(r, title, simulate_meetings.load(folder))
    return 0


def _write_docs(output: str, argv: list[str]) -> None:
    """Replace the diarization section of docs/BENCHMARKS.md with this run's output."""
    import datetime
    import os
    import subprocess

    docs = diarcache.ROOT / "docs" / "BENCHMARKS.md"
    begin, end = "<!-- bench:diarization:begin -->", "<!-- bench:diarization:end -->"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=diarcache.ROOT, check=False).stdout.strip()
    command = "PYTHONPATH=src .venv/bin/python bench/diarization_loo.py " + " ".join(argv)
    section = (f"{begin}\n## Diarization on the dev set: per file, hints, leave-one-file-out, simulated meetings\n\n"
               f"- Command: `{command.strip()}` (meetings built first with "
               f"`PYTHONPATH=src .venv/bin/python bench/simulate_meetings.py --out /tmp/simmeet` and "
               f"`... --out /tmp/simheld --sizes 3 5 7 9 10 --seeds 5 6`)\n"
               f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; git commit {commit}; "
               f"{os.cpu_count()} cores\n"
               "- DER: pyannote.metrics, no collar, overlapping speech scored, over each clip's UEM. "
               "Counts: speakers with at least 0.2 s of speech in the scored region.\n\n"
               f"```\n{output.strip()}\n```\n{end}")
    text = docs.read_text(encoding="utf-8")
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    docs.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
