"""``saywho diarize FILE...``: who spoke when, without speech recognition."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from saywho.cli import outputs
from saywho.cli.transcribe import (
    _is_long,
    _transcribe_long,
    add_long_recording_args,
    add_speaker_count_args,
    check_long_recording_args,
)
from saywho.errors import InvalidOptionError, SaywhoError
from saywho.formats import DIARIZATION_FORMATS, render_diarization
from saywho.types import SpeakerCount, TranscribeOptions

if TYPE_CHECKING:
    import argparse

    from saywho.types import Diarization


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diarize",
        help="who spoke when (speaker turns only, no transcript)",
        description="Diarize audio or video files: overlap-aware speaker turns as RTTM (default), JSON or "
                    "plain lines, with the same speaker-count hints and long-recording path as transcribe.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio or video files (anything ffmpeg reads)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (one input) or directory (several inputs); default: stdout")
    p.add_argument("-f", "--format", choices=DIARIZATION_FORMATS,
                   help="rttm, json or txt (default: from -o's extension, else rttm)")
    add_speaker_count_args(p)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where ASR and diarization run (default: cpu)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_long_recording_args(p)
    p.set_defaults(func=run)


def _options(args: argparse.Namespace) -> TranscribeOptions:
    from saywho.runtime import check_device  # lazy: `saywho --help` stays fast (no torch)

    check_device(args.device)
    check_long_recording_args(args)
    return TranscribeOptions(
        speakers=SpeakerCount(num=args.num_speakers, min=args.min_speakers, max=args.max_speakers),
        device=args.device, identify=False,
    )


def _diarize_one(path: str, options: TranscribeOptions, args: argparse.Namespace, bar: object) -> Diarization:
    from saywho.longform.chunk import diarize_chunk  # lazy: `saywho --help` stays fast (no torch)
    from saywho.pipeline import diarize  # lazy: `saywho --help` stays fast (no torch)

    if _is_long(path, args):
        transcript = _transcribe_long(path, options, args, bar, None, processor=diarize_chunk)
        if transcript.diarization is None:  # pragma: no cover - diarize is always on here
            raise InvalidOptionError("no diarization")
        return transcript.diarization
    return diarize(path, options.diarize_options, hook=bar)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    from saywho.cli.progressbar import ProgressBar  # lazy: `saywho --help` stays fast (no torch)
    from saywho.progress import LONG_STEPS  # lazy: `saywho --help` stays fast (no torch)

    options = _options(args)
    fmt = outputs.format_for(args.format, args.output, len(args.files), DIARIZATION_FORMATS, "rttm")
    targets = outputs.targets(args.files, args.output, fmt)
    diarize_steps = (("decode", 5.0), ("segmentation", 35.0), ("embeddings", 55.0), ("clustering", 5.0))
    failures = 0
    for path, target in zip(args.files, targets, strict=True):
        show = not args.quiet and sys.stderr.isatty()
        bar = None
        if show:
            bar = ProgressBar(label=f"{Path(path).name} " if len(args.files) > 1 else "",
                              steps=LONG_STEPS if _is_long(path, args) else diarize_steps)
        try:
            diarization = _diarize_one(path, options, args, bar)
        except BaseException as exc:
            if bar:
                bar.close(interrupted=True)
            if len(args.files) == 1 or not isinstance(exc, Exception):
                raise
            message = exc.message if isinstance(exc, SaywhoError) else f"{type(exc).__name__}: {exc}"
            print(f"saywho: error: {path}: {message}", file=sys.stderr)
            failures += 1
            continue
        if bar:
            bar.close()
        text = render_diarization(diarization, fmt, uri=Path(path).stem)
        if target is None:
            if len(args.files) > 1 and fmt != "rttm":  # RTTM lines already carry the file's name
                sys.stdout.write(f"==> {path} <==\n")
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            outputs.write(target, text, quiet=args.quiet)
    return 1 if failures else 0
