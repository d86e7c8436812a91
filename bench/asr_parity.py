"""WER of saywho's ASR paths against bare faster-whisper (issue 15: accuracy parity).

    .venv/bin/python bench/asr_parity.py [--model tiny.en] [--beam-size 5] [--ablate] [--write]

Test material (all with known text):

- ``dev``: the dev set's ASR recordings (JFK, three LibriSpeech test-clean utterances,
  each channel of the stereo LibriSpeech file), one by one.
- ``long``: one ~3-minute recording built from the same real utterances and Piper /
  flite sentences (Harvard sentences), joined by pauses of 0.3 to 3 s, with 6 s of
  trailing silence (where Whisper likes to invent "Thank you."). Regions, chunk edges
  and lost context show up here, not on 10-second files.

Configurations: ``bare`` is ``faster_whisper.WhisperModel(path, int8).transcribe(audio,
beam_size=B)`` with every other option at its default; ``saywho`` is
``saywho transcribe --no-diarize`` (``pipeline.transcribe(diarize=False)``); ``diarized``
scores the words of the diarized transcript (speakers ignored); ``long path`` runs the
long-recording path (chunks of ``--chunk-s`` seconds). ``--ablate`` adds bare
faster-whisper with each of saywho's historical differences, one at a time.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report

HARVARD = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
)
PAUSES = (0.3, 0.6, 1.2, 0.4, 3.0, 0.5, 0.8, 2.0)


def dev_items() -> list[tuple[str, np.ndarray, str]]:
    from saywho.audio.decode import load_audio

    dev = report.require_dev("asr")
    items = [("jfk", load_audio(str(dev / "jfk.wav")).samples, (dev / "jfk.txt").read_text().strip())]
    for line in (dev / "trans.txt").read_text().splitlines():
        name, _, text = line.partition(" ") if "\t" not in line else line.partition("\t")
        items.append((name, load_audio(str(dev / f"{name}.wav")).samples, text.strip()))
    import wave

    with wave.open(str(dev / "stereo_diarization.wav")) as w:
        assert w.getframerate() == 16_000 and w.getsampwidth() == 2 and w.getnchannels() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    stereo = pcm.reshape(-1, 2).astype(np.float32) / 32768.0
    for i, line in enumerate((dev / "stereo_diarization.channels.tsv").read_text().splitlines()):
        side, _, text = line.partition("\t")
        items.append((f"stereo-{side}", np.ascontiguousarray(stereo[:, i]), text.strip()))
    return items


def long_item(dev: list[tuple[str, np.ndarray, str]]) -> tuple[str, np.ndarray, str]:
    """Real utterances and synthesised Harvard sentences, with pauses, as one recording."""
    from saywho.evaluation.synth import available, speak

    # flite and espeak-ng are deterministic (Piper adds random noise): the same recording every run.
    voices = [v for v in ("flite:slt", "flite:awb", "flite:rms", "flite:kal16") if available(v)] or ["espeak:en-us"]
    pieces: list[tuple[np.ndarray, str]] = [(a, t) for _, a, t in dev]
    for i, text in enumerate(HARVARD):
        pieces.insert((i * 7) % (len(pieces) + 1), (speak(voices[i % len(voices)], text), text))
    audio: list[np.ndarray] = []
    texts = []
    for i, (samples, text) in enumerate(pieces):
        audio += [samples, np.zeros(int(PAUSES[i % len(PAUSES)] * 16_000), np.float32)]
        texts.append(text)
    audio.append(np.zeros(6 * 16_000, np.float32))
    return "long", np.concatenate(audio).astype(np.float32), " ".join(texts)


def bare(model_path: str, threads: int, **kwargs: object):
    from faster_whisper import WhisperModel

    model = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=threads)

    def run(audio: np.ndarray) -> str:
        segments, _ = model.transcribe(audio, **kwargs)
        return " ".join(s.text.strip() for s in segments)

    return run


def saywho_run(diarize: bool, **options: object):
    from saywho.pipeline import transcribe
    from saywho.types import TranscribeOptions

    def run(audio: np.ndarray) -> str:
        return transcribe(audio, TranscribeOptions(diarize=diarize, **options)).text  # type: ignore[arg-type]

    return run


def long_path_run(chunk_s: float, **options: object):
    from saywho.longform.run import transcribe_long
    from saywho.types import TranscribeOptions

    def run(audio: np.ndarray) -> str:
        import tempfile

        from saywho.audio.decode import write_wav

        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "long.wav"
            write_wav(wav, audio)
            return transcribe_long(str(wav), TranscribeOptions(**options), chunk_s=chunk_s).text  # type: ignore[arg-type]

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ablate", action="store_true", help="bare faster-whisper with each saywho difference")
    parser.add_argument("--long-path", action="store_true", help="also the long-recording path (chunks)")
    parser.add_argument("--chunk-s", type=float, default=60.0)
    parser.add_argument("--show", action="store_true", help="print each hypothesis")
    parser.add_argument("--write", action="store_true", help="write the table into docs/BENCHMARKS.md")
    args = parser.parse_args(argv)

    from saywho.evaluation.metrics import pool_wer, wer
    from saywho.models.registry import resolve_asr_model

    dev = dev_items()
    sets = {"dev": dev, "long": [long_item(dev)]}
    path = resolve_asr_model(args.model)
    b = args.beam_size
    configs = {"bare faster-whisper": bare(path, args.threads, beam_size=b)}
    if args.ablate:
        configs["bare + vad_filter"] = bare(path, args.threads, beam_size=b, vad_filter=True)
        configs["bare + condition_on_previous_text=False"] = bare(
            path, args.threads, beam_size=b, condition_on_previous_text=False)
        configs["bare + word_timestamps"] = bare(path, args.threads, beam_size=b, word_timestamps=True)
        configs["bare + all three"] = bare(path, args.threads, beam_size=b, vad_filter=True,
                                           condition_on_previous_text=False, word_timestamps=True)
    configs["saywho --no-diarize"] = saywho_run(False, model=args.model, beam_size=b)
    configs["saywho (diarized, words)"] = saywho_run(True, model=args.model, beam_size=b)
    if args.long_path:
        configs[f"saywho long path ({args.chunk_s:.0f} s chunks)"] = long_path_run(
            args.chunk_s, model=args.model, beam_size=b)

    rows = []
    with report.LoadSampler() as load:
        for name, run in configs.items():
            row: list[object] = [name]
            for items in sets.values():
                results = []
                for item, audio, reference in items:
                    hypothesis = run(audio)
                    results.append(wer(reference, hypothesis))
                    if args.show:
                        print(f"[{name} | {item}] {hypothesis}")
                pooled = pool_wer(results)
                row.append(f"{100 * pooled.wer:.1f}% ({pooled.errors}/{pooled.reference_words})")
            rows.append(row)
            print(" | ".join(map(str, row)), flush=True)
    body = report.header(f"ASR parity with bare faster-whisper: {args.model}, beam {b}", load) + report.table(
        ["configuration", "dev ASR files", "long built recording (~3 min)"], rows)
    print(body)
    if args.write:
        report.write_section(f"asr_parity_{args.model.replace('.', '_')}_beam{b}", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
