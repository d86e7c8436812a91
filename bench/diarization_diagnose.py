"""Where diarization loses: segmentation vs fingerprints/clustering vs reconstruction.

    PYTHONPATH=src .venv/bin/python bench/diarization_diagnose.py [--sim DIR]

For each dev clip (and the simulated meetings of ``bench/simulate_meetings.py`` with
``--sim``), DER (no collar, overlap scored) and speaker count of four runs:

- ``system``: saywho's diarization as it is (no count given);
- ``orcl-clu``: our segmentation and pieces, each piece labelled with the reference
  speaker it overlaps most (oracle clustering) -> the loss of segmentation +
  reconstruction alone;
- ``orcl-seg``: the reference turns as segmentation (each window's up to 3 most
  talkative reference speakers as its local speakers), then our fingerprints,
  clustering and reconstruction -> the loss of fingerprinting + clustering alone;
- ``orcl-both``: reference segmentation and oracle clustering -> the floor of the
  piece/block reconstruction itself.

Then the **count floor**: at every frame, how many speakers the segmentation says talk
(the windows' mean local count, as reconstruction counts them) against how many the
reference has. A frame with k speakers too few or too many costs k missed or false
speaker-frames whatever the clustering does, so the summed difference over the reference
speech is a lower bound on miss + false alarm for any labelling of this segmentation.
It is shown for the pipeline's rule and for other ways to read the count from the same
model outputs (rounding, a lower overlap cut, the mean of soft counts).

Segmentation and embeddings are cached (``bench/diarcache.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diarcache


def oracle_activity(clip, starts, num_frames, timing) -> np.ndarray:
    """(num_windows, num_frames, 3) local activity from the reference turns."""
    out = np.zeros((len(starts), num_frames, 3), dtype=np.float32)
    centers = float(timing.center(0)) + np.arange(num_frames) * timing.step
    for c, s0 in enumerate(starts):
        t = s0 + centers
        per = {}
        for a, b, spk in clip.reference:
            per.setdefault(spk, np.zeros(num_frames, dtype=bool))
            per[spk] |= (t >= a) & (t < b)
        ranked = sorted(per, key=lambda k: -per[k].sum())[:3]
        for j, spk in enumerate(ranked):
            out[c, :, j] = per[spk]
    return out


def oracle_labels(clip, p) -> tuple[np.ndarray, int]:
    """Each piece -> the reference speaker overlapping its frames most (-1: none)."""
    names = sorted({s for _, _, s in clip.reference})
    centers = float(p.timing.center(0)) + np.arange(p.activity.shape[1]) * p.timing.step
    labels = np.full(len(p.pieces), -1, dtype=np.int64)
    for i, (c, b, s) in enumerate(p.pieces):
        frames = (p.frame_block == b) & (p.activity[c, :, s] > 0)
        t = p.starts[c] + centers[frames]
        overlap = [sum(np.sum((t >= a) & (t < e)) for a, e, k in clip.reference if k == n) for n in names]
        if max(overlap) > 0:
            labels[i] = int(np.argmax(overlap))
    return labels, len(names)


def run(clip, diarization, *, oracle_seg: bool, oracle_clu: bool, count=None):
    from saywho.diarization import segmentation
    from saywho.types import SpeakerCount

    count = count or SpeakerCount()
    audio = diarization._normalized(clip.audio)
    original = segmentation.segment
    if oracle_seg:

        def fake(a, *, step_s, **kwargs):
            starts, activity = original(a, step_s=step_s, **kwargs)
            return starts, oracle_activity(clip, starts, activity.shape[1], segmentation.frame_timing())

        segmentation.segment = fake
    try:
        p = diarization._pieces(audio)
    finally:
        segmentation.segment = original
    if p is None:
        return [], 0
    if oracle_clu:
        labels, k = oracle_labels(clip, p)
    else:
        labels, k = diarization._label_pieces(p, count)
    d = diarization._reconstruct(p, labels, k, count)
    return list(d.turns), len(d.speakers)


def count_floor(clip, diarization) -> dict[str, tuple[float, float, float]]:
    """{rule: (sum |ref - hyp|, missed, false) speaker-frames} and the reference's
    speaker-frames under "ref", over the clip's UEM (see the module docstring)."""
    from saywho.diarization import segmentation
    from saywho.diarization.frames import frame_counts, heard_when_raised, window_mean

    audio = diarization._normalized(clip.audio)
    starts, log_probs = segmentation.segment_log_probs(audio, step_s=diarization.STEP_S)
    timing = segmentation.frame_timing()
    hard = segmentation.binarize(log_probs, diarization.SEGMENTATION_ONSET)  # (W, F, 3)
    probs = np.exp(log_probs)
    soft = probs[..., 1:4].sum(-1) + 2 * probs[..., 4:7].sum(-1)  # expected local count
    duration = len(audio) / 16_000
    total = max(1, int(np.ceil((duration - timing.start - timing.duration / 2) / timing.step)) + 1)
    offsets = np.rint(starts / timing.step).astype(np.int64)
    # frames past the last window (if any) count no speakers, as in reconstruction's turns
    mean, soft_mean = (np.pad(m, (0, total - len(m))) for m in (window_mean(hard.sum(-1), offsets, total),
                                                             window_mean(soft, offsets, total)))
    raised = segmentation.window_gains(audio, starts) >= diarization.RAISED_WINDOW_GAIN
    rules = {
        "pipeline": heard_when_raised(frame_counts(mean, diarization.SPEECH_COUNT_AT, diarization.OVERLAP_COUNT_AT),
                                      hard, offsets, raised),
        "round": frame_counts(mean, 0.5, 0.5),
        "overlap 0.1": frame_counts(mean, 0.5, 0.1),
        "soft": frame_counts(soft_mean, 0.5, 0.3),
    }
    centers = timing.center(np.arange(total))
    ref = np.zeros(total)
    for a, b, _ in clip.reference:
        ref += (centers >= a) & (centers < b)
    scored = (centers >= clip.uem[0]) & (centers < clip.uem[1])
    out = {"ref": (float(ref[scored].sum()), 0.0, 0.0)}
    for name, hyp in rules.items():
        d = (hyp - ref)[scored]
        out[name] = (float(np.abs(d).sum()), float(np.maximum(-d, 0).sum()), float(np.maximum(d, 0).sum()))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim", type=Path, default=None, help="also the simulated meetings in DIR")
    args = parser.parse_args(argv)
    diarcache.enable()
    from saywho.diarization import pipeline as diarization

    clips = diarcache.dev_clips()
    if args.sim is not None:
        import simulate_meetings

        clips += simulate_meetings.load(args.sim)
    if not clips:
        print("no clips (../shared absent?)")
        return 0
    modes = {"system": (False, False), "orcl-clu": (False, True), "orcl-seg": (True, False), "orcl-both": (True, True)}
    comps = {m: [] for m in modes}
    print(f"{'file':<12} {'ref':>3} " + " ".join(f"{m:>15}" for m in modes))
    for clip in clips:
        cells = []
        for m, (seg, clu) in modes.items():
            turns, k = run(clip, diarization, oracle_seg=seg, oracle_clu=clu)
            c = diarcache.der_components(clip, turns)
            comps[m].append(c)
            cells.append(f"{c['diarization error rate']:6.1%} k={k:<2}")
        print(f"{clip.uri:<12} {clip.num_speakers():3d} " + " ".join(f"{x:>15}" for x in cells))
    print(f"{'pooled':<12} {'':3} " + " ".join(f"{diarcache.pooled(comps[m]):>15.1%}" for m in modes))
    for m in modes:
        t = sum(c["total"] for c in comps[m])
        print(
            f"  {m:<10} miss {sum(c['missed detection'] for c in comps[m]) / t:6.1%}"
            f"  FA {sum(c['false alarm'] for c in comps[m]) / t:6.1%}"
            f"  conf {sum(c['confusion'] for c in comps[m]) / t:6.1%}"
        )
    print("\ncount floor: |speakers the segmentation counts - reference speakers|, summed over frames,")
    print("over the reference speech (a lower bound on miss + FA for any clustering)")
    floors = [count_floor(clip, diarization) for clip in clips]
    rules = [r for r in floors[0] if r != "ref"]
    print(f"{'file':<12} " + " ".join(f"{r:>12}" for r in rules))
    for clip, f in zip(clips, floors, strict=True):
        print(f"{clip.uri:<12} " + " ".join(f"{f[r][0] / max(f['ref'][0], 1):>12.1%}" for r in rules))
    for label, sel in (("pooled dev", [f for c, f in zip(clips, floors, strict=True) if c.uri in diarcache.DEV_URIS]),
                       ("pooled sim", [f for c, f in zip(clips, floors, strict=True) if c.uri not in diarcache.DEV_URIS])):
        if sel:
            ref = sum(f["ref"][0] for f in sel)
            print(f"{label:<12} " + " ".join(f"{sum(f[r][0] for f in sel) / ref:>12.1%}" for r in rules))
            print(f"{'  miss / FA':<12} " + " ".join(
                f"{sum(f[r][1] for f in sel) / ref:>5.1%} /{sum(f[r][2] for f in sel) / ref:>5.1%}" for r in rules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
