"""``saywho speakers ...``: the library of known voices (add, list, rename, remove, export, import)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from saywho.errors import InvalidOptionError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "speakers",
        help="manage the library of known voices",
        description="Known voices: transcripts show their names instead of Speaker_N.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--speakers-db", metavar="PATH",
                        help="speaker library file "
                        "(default: $SAYWHO_SPEAKERS_DB, else <data dir>/speakers.db, the data dir being "
                        "$SAYWHO_DATA_DIR or ~/.local/share/saywho; `saywho serve` uses the same file)")
    commands = p.add_subparsers(dest="speakers_command", metavar="ACTION", parser_class=type(p))

    add = commands.add_parser(
        "add", parents=[common], help="enrol a voice from recordings or from a transcript",
        description="Enrol a voice: from recordings of that voice alone (or a --start/--end stretch of "
                    "them), or from one speaker of a saywho JSON result (--from-transcript, --label).",
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("files", nargs="*", metavar="FILE", help="recordings of this voice alone")
    add.add_argument("--start", type=float, metavar="S", help="use the recordings from S seconds")
    add.add_argument("--end", type=float, metavar="E", help="use the recordings up to E seconds")
    add.add_argument("--from-transcript", metavar="RESULT.json", help="a saywho JSON result (-f json)")
    add.add_argument("--label", metavar="LABEL", help="the speaker of that result to enrol, e.g. Speaker_1")
    add.add_argument("--merge", action="store_true",
                     help="if NAME is already known, add this voice sample to it (default: refuse)")
    add.set_defaults(func=run_add)

    ls = commands.add_parser("list", parents=[common], help="list known voices")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=run_list)

    rename = commands.add_parser("rename", parents=[common], help="rename a known voice")
    rename.add_argument("old", metavar="OLD")
    rename.add_argument("new", metavar="NEW")
    rename.set_defaults(func=run_rename)

    remove = commands.add_parser("remove", parents=[common], help="forget a known voice")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(func=run_remove)

    export = commands.add_parser("export", parents=[common],
                                 help="write the library as JSON (fingerprints only, no audio)")
    export.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")
    export.set_defaults(func=run_export)

    imp = commands.add_parser("import", parents=[common], help="add the voices of an exported JSON file")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--merge", action="store_true",
                     help="add fingerprints to voices already known by the same name (default: refuse)")
    imp.set_defaults(func=run_import)

    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _library(args: argparse.Namespace):
    from saywho.speakers.library import SpeakerLibrary  # lazy: `saywho --help` stays fast (no torch)

    return SpeakerLibrary(args.speakers_db)


def run_add(args: argparse.Namespace) -> int:
    from saywho.speakers.service import (  # lazy: `saywho --help` stays fast (no torch)
        fingerprint_from_audio,
        fingerprint_from_transcript,
    )

    if args.from_transcript:
        if args.files or args.start is not None or args.end is not None:
            raise InvalidOptionError("give recordings or --from-transcript, not both")
        if not args.label:
            raise InvalidOptionError("--from-transcript needs --label (the speaker to enrol, e.g. Speaker_1)")
        try:
            data = json.loads(Path(args.from_transcript).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidOptionError(f"{args.from_transcript}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidOptionError(f"{args.from_transcript}: not a saywho JSON result ({exc})") from None
        fingerprint, speech_s = fingerprint_from_transcript(data, args.label)
        source = f"transcript:{Path(args.from_transcript).name}#{args.label}"
        speaker = _library(args).add(args.name, fingerprint, source=source, speech_s=speech_s, merge=args.merge)
        print(f"enrolled {speaker.name} ({speaker.id}) from {args.label} of {args.from_transcript}")
        return 0
    if not args.files:
        raise InvalidOptionError("give one or more recordings of the voice, or --from-transcript with --label")
    import numpy as np

    vectors, total = [], 0.0
    for path in args.files:
        try:
            fingerprint, speech_s = fingerprint_from_audio(path, start=args.start, end=args.end)
        except InvalidOptionError as exc:
            raise InvalidOptionError(f"{path}: {exc.message}") from None
        vectors.append(fingerprint)
        total += speech_s
    span = "" if args.start is None and args.end is None else f"@{args.start or 0:g}-{'' if args.end is None else f'{args.end:g}'}"
    source = ", ".join(f"{Path(f).name}{span}" for f in args.files)
    speaker = _library(args).add(args.name, np.stack(vectors), source=source, speech_s=round(total, 2),
                                 merge=args.merge)
    print(f"enrolled {speaker.name} ({speaker.id}) from {len(args.files)} recording(s), {total:.1f} s of speech; "
          f"{len(speaker.enrolments)} enrolment(s) in all")
    return 0


def run_list(args: argparse.Namespace) -> int:
    library = _library(args)
    speakers = library.list()
    if args.json:
        print(json.dumps({"library": str(library.path), "speakers": [s.to_dict() for s in speakers]}, indent=2))
        return 0
    if not speakers:
        print(f"no known voices in {library.path}", file=sys.stderr)
        return 0
    width = max(len(s.name) for s in speakers)
    for s in speakers:
        speech = sum(e.speech_s or 0.0 for e in s.enrolments)
        print(f"{s.name:<{width}}  {s.id}  {len(s.enrolments)} enrolment(s)  {speech:6.1f} s  updated {s.updated_at}")
    return 0


def run_rename(args: argparse.Namespace) -> int:
    speaker = _library(args).rename(args.old, args.new)
    print(f"renamed {args.old} to {speaker.name}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    speaker = _library(args).remove(args.name)
    print(f"removed {speaker.name} ({speaker.id})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    text = json.dumps(_library(args).export(), indent=1) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from saywho.speakers.export import load_export  # lazy: `saywho --help` stays fast (no torch)

    imported = _library(args).import_(load_export(args.file), merge=args.merge)
    print(f"imported {len(imported)} speaker(s): {', '.join(s.name for s in imported)}")
    return 0
