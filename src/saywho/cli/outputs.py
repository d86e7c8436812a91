"""Where the CLI writes: output paths that never collide, the format from ``-o``'s
extension, one ``wrote PATH`` line per file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from saywho.errors import InvalidOptionError

# ``-o`` extensions that name a format when ``-f`` is not given.
FORMAT_OF_EXTENSION = {".txt": "txt", ".json": "json", ".srt": "srt", ".vtt": "vtt", ".rttm": "rttm"}


def format_for(requested: str | None, output: str | None, n_inputs: int, allowed: tuple[str, ...],
               default: str) -> str:
    """``-f`` when given; else the format ``-o FILE``'s extension names; else ``default``."""
    if requested:
        return requested
    if output and n_inputs == 1 and not _is_directory(output):
        guessed = FORMAT_OF_EXTENSION.get(Path(output).suffix.lower())
        if guessed in allowed:
            return guessed
    return default


def _is_directory(output: str) -> bool:
    return Path(output).is_dir() or output.endswith(("/", os.sep))


def targets(files: list[str], output: str | None, extension: str) -> list[Path | None]:
    """One output path per input (None: standard output), or InvalidOptionError.

    One input: ``-o`` is the file, or a directory when it is one (or ends with ``/``).
    Several inputs: ``-o`` must be a directory; each output is named after its input,
    and inputs with the same name keep their paths relative to their common folder so
    that no output overwrites another.
    """
    if output is None:
        return [None] * len(files)
    out = Path(output)
    if len(files) == 1 and not _is_directory(output):
        return [out]
    if len(files) > 1 and not _is_directory(output) and (out.suffix or out.exists()):
        raise InvalidOptionError(f"-o {output}: {len(files)} inputs need a directory (end it with '/'), "
                                 "not one file", param="output")
    names = [Path(f).with_suffix(f".{extension}").name for f in files]
    if len(set(names)) < len(names):
        resolved = [Path(f).resolve() for f in files]
        root = Path(os.path.commonpath([p.parent for p in resolved]))
        names = [str(p.relative_to(root).with_suffix(f".{extension}")) for p in resolved]
        if len(set(names)) < len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise InvalidOptionError(f"the same input is given twice ({', '.join(twice)})", param="files")
    return [out / name for name in names]


def write(target: Path, text: str, *, quiet: bool) -> None:
    """Write one output file (folders made as needed) and say so on stderr."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidOptionError(f"cannot write {target}: {exc.strerror or exc}", param="output") from None
    if not quiet:
        print(f"saywho: wrote {target}", file=sys.stderr)
