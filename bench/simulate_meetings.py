"""Simulated meetings with 2-8 speakers and exact reference turns (no network needed).

    PYTHONPATH=src .venv/bin/python bench/simulate_meetings.py --out /tmp/simmeet [--sizes 2 4 6 8] [--seeds 0 1]

Speakers are drawn from a pool of distinct voices:

- real people: the single-speaker utterances of ``../shared/data/dev/asr`` (LibriSpeech
  1089 and 1221, JFK, the two channels of stereo_diarization), cut at pauses;
- synthetic: Piper (joe), flite (slt, awb, rms, kal16) and espeak-ng voices with
  different variants, pitch (-p) and rate (-s).

A meeting is a random sequence of utterances (0.6-4 s) with pauses, quick turn-taking
(< 0.2 s gaps) and some overlap (the next speaker starts up to 0.5 s early), each
speaker at its own level (far-field: down to -14 dB), with a little noise. Writes
``meetN_sS.wav`` and ``.rttm`` per meeting. ``load(DIR)`` returns them as
``diarcache.Clip`` objects.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diarcache

SR = 16_000
TEXTS = (
    "Good morning everyone, let us start with the budget for next quarter.",
    "I think the numbers look fine, but the travel costs went up again.",
    "We should book the trains earlier, the prices double in the last week.",
    "Can somebody send me the spreadsheet before lunch please?",
    "The new design review is scheduled for Thursday afternoon.",
    "Friday works for me, as long as it is before three o'clock.",
    "Did anyone hear back from the customer about the delivery date?",
    "That is tight, but the factory said it can be done.",
    "Yes, exactly.",
    "Right, okay.",
    "No, I do not agree with that at all.",
    "Maybe we could ask the marketing team what they think about it.",
)
# (name, engine, args): espeak-ng variants, pitch and rate make distinct voices.
SYNTH_VOICES = (
    ("piper_joe", "piper", ()),
    ("flite_slt", "flite", ("slt",)),
    ("flite_awb", "flite", ("awb",)),
    ("flite_rms", "flite", ("rms",)),
    ("flite_kal16", "flite", ("kal16",)),
    ("espeak_f3", "espeak", ("en-us+f3", "60", "150")),
    ("espeak_m3", "espeak", ("en-gb+m3", "35", "175")),
    ("espeak_f5", "espeak", ("en+f5", "75", "140")),
    ("espeak_m7", "espeak", ("en-gb-scotland+m7", "25", "160")),
)
REAL = ("1089-134686-0001", "1221-135766-0001", "jfk", "stereo_left", "stereo_right")


def _speak(engine: str, args: tuple[str, ...], text: str) -> np.ndarray:
    from saywho.audio.decode import decode_audio
    from saywho.evaluation import synth

    if engine == "piper":
        return synth.speak("piper:joe", text)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "u.wav"
        if engine == "flite":
            cmd = ["flite", "-voice", args[0], "-t", text, "-o", str(out)]
        else:
            voice, pitch, rate = args
            cmd = ["espeak-ng", "-v", voice, "-p", pitch, "-s", rate, "-w", str(out), text]
        subprocess.run(cmd, check=True, capture_output=True)
        return synth.trim(decode_audio(out).samples)


def _real_pieces(name: str) -> list[np.ndarray]:
    """A real recording cut at its pauses into 0.6-4 s stretches."""
    if name.startswith("stereo_"):
        from scipy.io import wavfile

        _, data = wavfile.read(diarcache.DEV_ASR / "stereo_diarization.wav")
        x = data[:, 0 if name.endswith("left") else 1].astype(np.float32) / 32768.0
    else:
        x = diarcache.load_wav(diarcache.DEV_ASR / f"{name}.wav")
    frame = SR // 100
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    voiced = rms > 0.1 * np.percentile(rms, 95)
    pieces, start, last_voiced = [], None, 0
    for i, v in enumerate(voiced):
        if v:
            start = i if start is None else start
            last_voiced = i
        if start is not None and (i - last_voiced > 15 or i - start > 350 or i == n - 1):
            if last_voiced - start >= 50:
                pieces.append(x[start * frame : (last_voiced + 1) * frame])
            start = None
    return pieces


def _voice_pool(rng: np.random.Generator) -> list[tuple[str, list[np.ndarray]]]:
    pool = []
    for name in REAL:
        wav = diarcache.DEV_ASR / ("stereo_diarization.wav" if name.startswith("stereo") else f"{name}.wav")
        if wav.is_file():
            pieces = _real_pieces(name)
            if pieces:
                pool.append((name, pieces))
    for name, engine, args in SYNTH_VOICES:
        if engine in ("flite", "espeak") and shutil.which("flite" if engine == "flite" else "espeak-ng") is None:
            continue
        try:
            pieces = [_speak(engine, args, t) for t in TEXTS]
        except Exception as e:
            print(f"skipping {name}: {e}", file=sys.stderr)
            continue
        pool.append((name, [p for p in pieces if len(p) > 0.3 * SR]))
    return pool


def meeting(pool, num_speakers: int, seed: int, seconds_per_speaker: float = 7.0):
    """(samples, reference turns) of one simulated meeting."""
    rng = np.random.default_rng(seed * 100 + num_speakers)
    chosen = [pool[i] for i in rng.choice(len(pool), size=num_speakers, replace=False)]
    gains = {name: float(10 ** (rng.uniform(-14, 0) / 20)) for name, _ in chosen}
    budget = {name: seconds_per_speaker for name, _ in chosen}
    # Every speaker speaks at least once early on (the order is shuffled), then random.
    order = [name for name, _ in chosen]
    rng.shuffle(order)
    parts, turns = [], []
    t = 0.5
    previous = None
    pieces_of = dict(chosen)
    while any(v > 0 for v in budget.values()):
        if order:
            name = order.pop()
        else:
            left = [n for n in budget if budget[n] > 0 and n != previous] or [n for n in budget if budget[n] > 0]
            name = left[int(rng.integers(len(left)))]
        piece = pieces_of[name][int(rng.integers(len(pieces_of[name])))]
        length = min(len(piece), int(rng.uniform(0.6, 4.0) * SR))
        offset = int(rng.integers(0, len(piece) - length + 1))
        u = piece[offset : offset + length] / max(float(np.max(np.abs(piece))), 1e-6) * 0.5 * gains[name]
        r = rng.uniform()
        gap = -rng.uniform(0.1, 0.5) if r < 0.15 else rng.uniform(0.0, 0.2) if r < 0.5 else rng.uniform(0.3, 1.2)
        start = max(0.0, t + gap) if turns else t
        turns.append((round(start, 3), round(start + len(u) / SR, 3), name))
        parts.append((int(start * SR), u.astype(np.float32)))
        t = start + len(u) / SR
        budget[name] -= len(u) / SR
        previous = name
    total = int((t + 0.5) * SR)
    samples = np.zeros(total, dtype=np.float32)
    for s, u in parts:
        samples[s : s + len(u)] += u
    samples += (10 ** (-55 / 20) * rng.standard_normal(total)).astype(np.float32)
    return samples, turns


def build(out: Path, sizes=(2, 4, 6, 8), seeds=(0, 1)) -> list[Path]:
    from saywho.audio.decode import write_wav

    out.mkdir(parents=True, exist_ok=True)
    pool = _voice_pool(np.random.default_rng(0))
    if len(pool) < max(sizes):
        raise SystemExit(f"only {len(pool)} voices available (need {max(sizes)}): install flite, espeak-ng")
    written = []
    for n in sizes:
        for seed in seeds:
            samples, turns = meeting(pool, n, seed)
            uri = f"meet{n}_s{seed}"
            write_wav(out / f"{uri}.wav", samples)
            (out / f"{uri}.rttm").write_text(
                "".join(f"SPEAKER {uri} 1 {a:.3f} {b - a:.3f} <NA> <NA> {k} <NA> <NA>\n" for a, b, k in turns)
            )
            written.append(out / f"{uri}.wav")
            print(f"{uri}: {len(samples) / SR:.1f} s, {n} speakers, {len(turns)} turns")
    return written


def load(directory: Path) -> list[diarcache.Clip]:
    clips = []
    for wav in sorted(Path(directory).glob("meet*.wav")):
        audio = diarcache.load_wav(wav)
        ref = diarcache._rttm(wav.with_suffix(".rttm"), wav.stem)
        clips.append(diarcache.Clip(wav.stem, audio, ref, (0.0, len(audio) / SR)))
    return clips


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 6, 8])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args(argv)
    build(args.out, args.sizes, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
