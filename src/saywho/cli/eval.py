"""``saywho eval DATASET``: accuracy, speed and memory on a directory with references."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from saywho.errors import InvalidOptionError
from saywho.types import SpeakerCount, TranscribeOptions

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure DER, JER, WER, cpWER, speed and memory on a dataset",
        description=(
            "Run saywho on every recording of DATASET that has a reference and score it. "
            "References: *.rttm (+ *.uem) for diarization, <name>.txt or trans.txt for ASR, "
            "<name>.tsv (speaker<TAB>text) for cpWER. DER is reported with no collar and with "
            "the md-eval collar (--collar, seconds each side of reference boundaries)."
        ),
    )
    p.add_argument("dataset", metavar="DATASET", help="directory of recordings and references")
    p.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    p.add_argument("--plots", metavar="DIR", help="also write PNG plots into DIR")
    p.add_argument("-m", "--model", default="tiny.en", help="speech model (default: tiny.en)")
    p.add_argument("-l", "--language", help="language code (default: detect)")
    p.add_argument(
        "--collar",
        type=float,
        default=0.25,
        help="md-eval collar in seconds each side for the second DER figure (default: 0.25)",
    )
    g = p.add_argument_group("speakers")
    g.add_argument("--num-speakers", type=int, metavar="N", help="exact number of speakers")
    g.add_argument("--min-speakers", type=int, metavar="A", help="at least this many speakers")
    g.add_argument("--max-speakers", type=int, metavar="B", help="at most this many speakers")
    p.add_argument("--beam-size", type=int, default=1, help="decoder beam size (default: 1, greedy)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for ASR (default: all)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where ASR and diarization run (default: cpu)")
    p.add_argument("--compute-type", default="int8", help="CTranslate2 compute type (default: int8)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-file progress on stderr")
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> TranscribeOptions:
    if args.beam_size < 1:
        raise InvalidOptionError("--beam-size must be at least 1")
    if args.collar < 0:
        raise InvalidOptionError("--collar must be >= 0")
    return TranscribeOptions(
        model=args.model,
        language=args.language,
        speakers=SpeakerCount(num=args.num_speakers, min=args.min_speakers, max=args.max_speakers),
        beam_size=args.beam_size,
        cpu_threads=args.threads,
        device=args.device,
        compute_type=args.compute_type,
        identify=False,  # score anonymous labels; a speaker library must not change the figures
    )


def run(args: argparse.Namespace) -> int:
    from saywho.evaluation.evaluate import evaluate_dataset  # lazy: `saywho --help` stays fast (no torch)
    from saywho.evaluation.report import (  # lazy: `saywho --help` stays fast (no torch)
        render_json,
        render_markdown,
        write_plots,
    )

    options = options_from_args(args)

    def progress(step: str, *, completed: float | None = None, total: float | None = None) -> None:
        if not args.quiet and completed is not None and total:
            print(f"saywho eval: {int(completed)}/{int(total)} files", file=sys.stderr, flush=True)

    report = evaluate_dataset(args.dataset, options=options, collar=args.collar, hook=progress)
    if args.plots:
        for path in write_plots(report, args.plots):
            if not args.quiet:
                print(f"saywho eval: wrote {path}", file=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps(render_json(report), indent=2) + "\n")
    else:
        sys.stdout.write(render_markdown(report))
    return 0
