"""Calibrate speaker identification: EER of fingerprints, accuracy and false accepts.

The production path is measured end to end: enrolment fingerprints come from
``identify.embed_reference`` (one clip of one voice), test fingerprints from
``diarize`` run on a *different* recording (``Diarization.fingerprints``), and names
from ``identify.assign_names``.

Speakers
  real (dev set, /work/shared/data/dev):
    LibriSpeech 1221  enrol 1221-135766-0001, test 1221-135766-0002 (another utterance)
    LibriSpeech 1089  enrol the first half of 1089-134686-0001, test the second half
    AMI MEE009/MEE012 enrol from their RTTM speech in dev00, test in dev01; and the reverse
    sample.wav 90/91  enrol from their RTTM speech in 0-18 s, test in 18-30 s
    JFK, the two stereo_diarization readers: never enrolled (unknown voices only)
    plus one mixed recording of the two LibriSpeech readers (1221-0002 + 2nd half of 1089)
  synthesised (saywho.synth): flite slt/awb/rms/kal16, piper joe, espeak-ng variants;
    enrol from 4 sentences alone, test in two-voice conversations of other sentences.

Trials
  EER: every (enrolled speaker, test speaker) cosine score; target when they match.
  Identification: each test recording with the whole library; a speaker is correct
    when its label gets its own name.
  False accept: each test speaker with itself left out of the library (so it is an
    unknown voice, the others still present), plus never-enrolled voices; a false
    accept is any name given to it.

Usage: python bench/speaker_id_calibration.py [--threshold T] [--json OUT] [--no-synth]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saywho.audio.decode import load_audio
from saywho.diarization.pipeline import diarize
from saywho.errors import InvalidOptionError
from saywho.speakers.identify import IDENTIFY_THRESHOLD, assign_names, embed_reference
from saywho.types import SAMPLE_RATE

DEV = Path("/work/shared/data/dev")

SYNTH_VOICES = (
    "flite:slt", "flite:awb", "flite:rms", "flite:kal16", "piper:joe",
    "espeak:en-us+f3", "espeak:en-us+m3", "espeak:en+Andy", "espeak:en-us+Annie", "espeak:en+Michael",
)


@dataclass
class TestRecording:
    name: str
    samples: np.ndarray
    reference: list[tuple[float, float, str]]  # (start, end, speaker)
    group: str  # "real" | "synth"
    # Library entries that are this recording's own speech under another key (AMI: the
    # same people enrolled from the other clip); left out of the library for it.
    exclude: frozenset[str] = frozenset()


def rttm(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    out: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            start, dur = float(f[3]), float(f[4])
            out[f[1]].append((start, start + dur, f[7]))
    return out


def cut(samples: np.ndarray, turns: list[tuple[float, float, str]], speaker: str, lo: float, hi: float) -> np.ndarray:
    """The speaker's speech within [lo, hi), without the stretches where someone else talks too."""
    pieces = []
    for a, b, s in turns:
        if s != speaker:
            continue
        a, b = max(a, lo), min(b, hi)
        for oa, ob, o in turns:  # trim overlap with other speakers
            if o != speaker and oa < b and ob > a:
                if oa <= a:
                    a = max(a, ob)
                elif ob >= b:
                    b = min(b, oa)
        if b - a > 0.2:
            pieces.append(samples[int(a * SAMPLE_RATE): int(b * SAMPLE_RATE)])
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def shift(turns: list[tuple[float, float, str]], lo: float, hi: float) -> list[tuple[float, float, str]]:
    return [(max(a, lo) - lo, min(b, hi) - lo, s) for a, b, s in turns if b > lo and a < hi]


def real_set() -> tuple[dict[str, list[np.ndarray]], list[TestRecording]]:
    enrol: dict[str, list[np.ndarray]] = defaultdict(list)
    tests: list[TestRecording] = []
    asr, dia = DEV / "asr", DEV / "diarization"
    ls1221a = load_audio(asr / "1221-135766-0001.wav").samples
    ls1221b = load_audio(asr / "1221-135766-0002.wav").samples
    ls1089 = load_audio(asr / "1089-134686-0001.wav").samples
    half = len(ls1089) // 2
    enrol["LS-1221"].append(ls1221a)
    enrol["LS-1089"].append(ls1089[:half])
    tests.append(TestRecording("ls1221-0002", ls1221b, [(0, len(ls1221b) / SAMPLE_RATE, "LS-1221")], "real"))
    tests.append(TestRecording("ls1089-2nd-half", ls1089[half:], [(0, (len(ls1089) - half) / SAMPLE_RATE,
                                                                     "LS-1089")], "real"))
    gap = np.zeros(SAMPLE_RATE, np.float32)
    mixed = np.concatenate([ls1221b, gap, ls1089[half:]])
    t1 = len(ls1221b) / SAMPLE_RATE
    tests.append(TestRecording("ls-mixed", mixed, [(0, t1, "LS-1221"), (t1 + 1, len(mixed) / SAMPLE_RATE,
                                                                         "LS-1089")], "real"))
    # AMI: the same two people in both clips.
    ami = rttm(dia / "ami_dev.rttm")
    clips = {u: load_audio(dia / f"{u}.wav").samples[: 30 * SAMPLE_RATE] for u in ("dev00", "dev01")}
    for enrol_clip, test_clip in (("dev00", "dev01"), ("dev01", "dev00")):
        for spk in sorted({s for _, _, s in ami[enrol_clip]}):
            enrol[f"AMI-{spk}@{enrol_clip}"].append(cut(clips[enrol_clip], ami[enrol_clip], spk, 0, 30))
        tests.append(TestRecording(
            f"ami-{test_clip}-vs-{enrol_clip}", clips[test_clip],
            [(a, min(b, 30), f"AMI-{s}@{enrol_clip}") for a, b, s in ami[test_clip] if a < 30], "real",
            exclude=frozenset(f"AMI-{s}@{test_clip}" for _, _, s in ami[test_clip])))
    # sample.wav: enrol from the first half, test on the second.
    sample = load_audio(dia / "sample.wav").samples
    ref = rttm(dia / "sample.rttm")["sample"]
    for spk in sorted({s for _, _, s in ref}):
        enrol[f"sample-{spk}"].append(cut(sample, ref, spk, 0, 18))
    tests.append(TestRecording("sample-18-30", sample[18 * SAMPLE_RATE:],
                               [(a, b, f"sample-{s}") for a, b, s in shift(ref, 18, 30)], "real"))
    # Never enrolled: JFK and the two stereo readers.
    jfk = load_audio(asr / "jfk.wav").samples
    tests.append(TestRecording("jfk", jfk, [(0, len(jfk) / SAMPLE_RATE, "unknown-JFK")], "real"))
    from scipy.io import wavfile  # the stereo file: one reader per channel

    rate, stereo = wavfile.read(asr / "stereo_diarization.wav")
    stereo = stereo.astype(np.float32) / (32768.0 if stereo.dtype == np.int16 else 1.0)
    for ch, side in enumerate(("left", "right")):
        x = stereo[:, ch]
        if rate != SAMPLE_RATE:
            from scipy.signal import resample_poly

            x = resample_poly(x, SAMPLE_RATE, rate).astype(np.float32)
        tests.append(TestRecording(f"stereo-{side}", x, [(0, len(x) / SAMPLE_RATE, f"unknown-stereo-{side}")],
                                   "real"))
    return enrol, tests


def synth_set() -> tuple[dict[str, list[np.ndarray]], list[TestRecording]]:
    from saywho.evaluation import synth

    voices = [v for v in SYNTH_VOICES if synth.available(v)]
    enrol: dict[str, list[np.ndarray]] = {}
    for v in voices:
        enrol[f"synth-{v}"] = [synth.conversation([(v, s) for s in synth.SENTENCES[:4]], gap_s=0.4).samples]
    tests = []
    pairs = [(voices[i], voices[(i + 1) % len(voices)]) for i in range(0, len(voices), 2)]
    for k, (a, b) in enumerate(pairs):
        lines = [((a, b)[i % 2], synth.SENTENCES[4 + (i + k) % 8]) for i in range(6)]
        conv = synth.conversation(lines, seed=k)
        tests.append(TestRecording(f"synth-{a}+{b}", conv.samples,
                                   [(t.start, t.end, f"synth-{t.speaker}") for t in conv.turns], "synth"))
    return enrol, tests


def label_truth(recording: TestRecording, diarization) -> dict[str, str]:
    """Each diarized label -> the reference speaker it overlaps most (>= 50 % of its time)."""
    truth = {}
    for label in diarization.speakers:
        overlap: dict[str, float] = defaultdict(float)
        total = 0.0
        for t in diarization.exclusive:
            if t.speaker != label:
                continue
            total += t.end - t.start
            for a, b, s in recording.reference:
                overlap[s] += max(0.0, min(b, t.end) - max(a, t.start))
        if overlap and total > 0:
            best = max(overlap, key=overlap.get)
            if overlap[best] >= 0.5 * total:
                truth[label] = best
    return truth


def oracle_fingerprints(recording: TestRecording) -> dict[str, np.ndarray]:
    """Each reference speaker's fingerprint from its own (non-overlapped) speech in the test
    recording: what a perfect diarization would hand to the matcher."""
    out = {}
    duration = len(recording.samples) / SAMPLE_RATE
    for speaker in dict.fromkeys(s for _, _, s in recording.reference):
        speech = cut(recording.samples, recording.reference, speaker, 0, duration)
        try:
            out[speaker] = embed_reference(speech)
        except InvalidOptionError as exc:
            print(f"  {recording.name}/{speaker}: not scored ({exc.message})", file=sys.stderr)
    return out


def eer(target: np.ndarray, nontarget: np.ndarray) -> tuple[float, float]:
    """(equal error rate, threshold where it is reached)."""
    best = (1.0, 0.0)
    for t in np.unique(np.concatenate([target, nontarget])):
        miss = float(np.mean(target < t))
        fa = float(np.mean(nontarget >= t))
        gap = abs(miss - fa)
        if gap < best[0] or (gap == best[0]):
            best = (gap, t, (miss + fa) / 2)  # type: ignore[assignment]
    return best[2], best[1]  # type: ignore[misc]


def piece_fingerprints(recording: TestRecording, piece_s: float) -> list[tuple[str, np.ndarray]]:
    """(speaker, fingerprint) of consecutive ``piece_s`` stretches of each speaker's
    reference speech: many shorter, harder trials (what a brief speaker gives)."""
    from saywho.diarization import embedding

    out = []
    duration = len(recording.samples) / SAMPLE_RATE
    step = int(piece_s * SAMPLE_RATE)
    for speaker in dict.fromkeys(s for _, _, s in recording.reference):
        speech = cut(recording.samples, recording.reference, speaker, 0, duration)
        for i in range(len(speech) // step):
            out.append((speaker, embedding.embed(speech[i * step:(i + 1) * step])[0]))
    return out


def person(key: str) -> str:
    return key.split("@")[0]


def evaluate(known: dict[str, np.ndarray], trials: list[tuple[TestRecording, dict[str, np.ndarray], dict[str, str]]],
             thresholds: list[float]) -> dict:
    """EER and the identification sweep for one way of getting test fingerprints.

    ``trials``: (recording, label -> fingerprint, label -> true library key).
    """
    target, nontarget, by_group = [], [], defaultdict(lambda: ([], []))
    pairs = []
    for rec, fps, truth in trials:
        library = {k: v for k, v in known.items() if k not in rec.exclude}
        for label, true in truth.items():
            for key, vs in library.items():
                c = vs.mean(axis=0)
                score = float(np.asarray(fps[label]) @ (c / np.linalg.norm(c)))
                is_target = person(key) == person(true)
                (target if is_target else nontarget).append(score)
                by_group[rec.group][0 if is_target else 1].append(score)
                if not is_target:
                    pairs.append((score, true, key))

    def identification(threshold: float) -> dict:
        correct = enrolled = wrong = fa = unknown = 0
        per_group: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # correct, enrolled, fa, unknown
        for rec, fps, truth in trials:
            g = per_group[rec.group]
            library = {person(k): v for k, v in known.items() if k not in rec.exclude}
            names = assign_names(fps, library, threshold)
            for label, true in truth.items():
                if person(true) in library:
                    enrolled += 1
                    got = names.get(label, (None,))[0]
                    correct += got == person(true)
                    g[0] += got == person(true)
                    g[1] += 1
                    wrong += got is not None and got != person(true)
                else:
                    unknown += 1
                    fa += label in names
                    g[2] += label in names
                    g[3] += 1
                    continue
                # The same speaker as an unknown voice: left out, the others still there.
                others = {k: v for k, v in library.items() if k != person(true)}
                accepted = label in assign_names(fps, others, threshold)
                unknown += 1
                fa += accepted
                g[2] += accepted
                g[3] += 1
        return {"groups": {k: {"correct": v[0], "enrolled_trials": v[1], "false_accepts": v[2],
                               "unknown_trials": v[3]} for k, v in sorted(per_group.items())},"threshold": threshold, "enrolled_trials": enrolled, "correct": correct,
                "accuracy": correct / max(enrolled, 1), "wrong_name": wrong, "unknown_trials": unknown,
                "false_accepts": fa, "false_accept_rate": fa / max(unknown, 1)}

    rate, at = eer(np.array(target), np.array(nontarget))
    groups = {}
    for g, (tg, nt) in sorted(by_group.items()):
        if tg and nt:
            r, a = eer(np.array(tg), np.array(nt))
            groups[g] = {"eer": r, "at": a, "target_min": min(tg), "target_median": float(np.median(tg)),
                         "nontarget_max": max(nt), "nontarget_median": float(np.median(nt)),
                         "target_trials": len(tg), "nontarget_trials": len(nt)}
    pairs.sort(reverse=True)
    return {"eer": rate, "eer_threshold": at, "target_trials": len(target), "nontarget_trials": len(nontarget),
            "groups": groups, "sweep": [identification(t) for t in thresholds],
            "highest_nontarget": [{"score": s, "speaker": t, "scored_as": k} for s, t, k in pairs[:6]],
            "target_scores": target, "nontarget_scores": nontarget}


def report(title: str, result: dict, chosen: float) -> None:
    print(f"\n== {title}")
    print(f"trials: {result['target_trials']} target, {result['nontarget_trials']} non-target")
    print(f"EER (all): {100 * result['eer']:.2f} % at cosine {result['eer_threshold']:.3f}")
    for g, r in result["groups"].items():
        print(f"EER ({g}): {100 * r['eer']:.2f} % at {r['at']:.3f} ({r['target_trials']}/{r['nontarget_trials']} "
              f"trials); target min {r['target_min']:.3f} median {r['target_median']:.3f}; "
              f"non-target max {r['nontarget_max']:.3f} median {r['nontarget_median']:.3f}")
    print(f"{'threshold':>9} {'correct name':>18} {'wrong name':>10} {'false accepts':>18}")
    for r in result["sweep"]:
        mark = "  <- IDENTIFY_THRESHOLD" if abs(r["threshold"] - chosen) < 1e-9 else ""
        print(f"{r['threshold']:>9.2f} {r['correct']:>4}/{r['enrolled_trials']:<3} {100 * r['accuracy']:5.1f}% "
              f"{r['wrong_name']:>10} {r['false_accepts']:>4}/{r['unknown_trials']:<3} "
              f"{100 * r['false_accept_rate']:5.1f}%  "
              + "  ".join(f"{k}: {v['correct']}/{v['enrolled_trials']} right, {v['false_accepts']}/{v['unknown_trials']} FA"
                          for k, v in r["groups"].items()) + mark)
    print("highest non-target scores:")
    for h in result["highest_nontarget"]:
        print(f"  {h['score']:.3f}  {h['speaker']} scored as {h['scored_as']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=IDENTIFY_THRESHOLD)
    parser.add_argument("--no-synth", action="store_true", help="real recordings only")
    parser.add_argument("--diarize", action="store_true",
                        help="also score fingerprints from the diarization pipeline (end to end; slow)")
    parser.add_argument("--piece-s", type=float, default=3.0,
                        help="also score each test speaker's speech in pieces this long (0: off)")
    parser.add_argument("--json", metavar="OUT", help="write scores and results as JSON")
    args = parser.parse_args()
    if not DEV.is_dir():
        print(f"skipped: the dev set {DEV} is not here", file=sys.stderr)
        return 0
    t0 = time.time()
    enrol_audio, tests = real_set()
    if not args.no_synth:
        e, t = synth_set()
        enrol_audio.update(e)
        tests += t
    known = {}
    for name, clips in enrol_audio.items():
        try:
            known[name] = np.stack([embed_reference(x) for x in clips])
        except InvalidOptionError as exc:  # too little speech: not enrolled, stays an unknown voice
            print(f"  not enrolled {name}: {exc.message}", file=sys.stderr)
    print(f"enrolled {len(known)} ({time.time() - t0:.0f} s)", file=sys.stderr)
    thresholds = sorted({round(x, 2) for x in np.arange(0.30, 0.72, 0.05)} | {args.threshold})

    oracle = []
    for rec in tests:
        fps = oracle_fingerprints(rec)
        oracle.append((rec, fps, {k: k for k in fps}))
    results = {"oracle": evaluate(known, oracle, thresholds)}
    print(f"\nspeaker keys enrolled: {len(known)} ({len({person(k) for k in known})} voices); "
          f"test recordings: {len(tests)}; threshold {args.threshold:.2f}")
    report("test fingerprints from each speaker's reference speech (oracle segmentation)",
           results["oracle"], args.threshold)
    if args.piece_s > 0:
        pieces = []
        for rec in tests:
            for i, (speaker, fp) in enumerate(piece_fingerprints(rec, args.piece_s)):
                pieces.append((rec, {f"{speaker}#{i}": fp}, {f"{speaker}#{i}": speaker}))
        results["pieces"] = evaluate(known, pieces, thresholds)
        report(f"test fingerprints from {args.piece_s:g} s pieces of each speaker's speech (one piece a trial)",
               results["pieces"], args.threshold)
    if args.diarize:
        end_to_end = []
        for rec in tests:
            d = diarize(rec.samples)
            truth = label_truth(rec, d)
            print(f"  {rec.name}: {len(d.speakers)} speakers found, "
                  f"{len({s for _, _, s in rec.reference})} in the reference; {truth}", file=sys.stderr)
            end_to_end.append((rec, {k: np.asarray(v) for k, v in d.fingerprints.items()}, truth))
        results["diarized"] = evaluate(known, end_to_end, thresholds)
        report("test fingerprints from diarization (end to end)", results["diarized"], args.threshold)
    print(f"\n({time.time() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
