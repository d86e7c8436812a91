"""The ``saywho`` command line: the parser and error handling; one module per subcommand in ``saywho.cli``.

Errors from the exception tree become one line on stderr and a non-zero exit code;
no tracebacks unless ``SAYWHO_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING

from saywho import __version__
from saywho.errors import InvalidOptionError, SaywhoError
from saywho.runtime import configure_openmp

if TYPE_CHECKING:
    from collections.abc import Sequence

# Subcommand modules in help order; a module that is not installed is skipped.
COMMANDS = ("transcribe", "diarize", "live", "models", "speakers", "serve", "wyoming", "eval")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="saywho",
        description="Who said what: diarized transcripts offline on a CPU.",
    )
    parser.add_argument("--version", action="version", version=f"saywho {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"saywho.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("saywho.cli."):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # First thing: building the parser imports the commands, and some of them import
    # torch (and with it OpenMP, which reads OMP_WAIT_POLICY once, as it loads). Called
    # after it, a busy machine still got spinning threads: `saywho diarize` on torch took
    # 190 s of CPU for 2 minutes of audio instead of 20 s (bench/diarization_speed.py).
    configure_openmp()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:
        logging.getLogger("faster_whisper").setLevel(logging.ERROR)
    try:
        return int(args.func(args) or 0)
    except InvalidOptionError as exc:
        print(f"saywho: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except SaywhoError as exc:
        print(f"saywho: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("saywho: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:  # the last resort: still one line
        if os.environ.get("SAYWHO_DEBUG"):
            raise
        message = str(exc).splitlines()[0] if str(exc) else ""
        print(f"saywho: internal error: {type(exc).__name__}: {message} (set SAYWHO_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
