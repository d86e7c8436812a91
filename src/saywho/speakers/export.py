"""Speaker names, fingerprint vectors and the JSON export format of the library."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from saywho.errors import InvalidOptionError
from saywho.speakers.identify import EMBEDDING_DIM, EMBEDDING_MODEL

if TYPE_CHECKING:
    import os

EXPORT_FORMAT = "saywho-speakers"
EXPORT_VERSION = 1
MAX_NAME_LENGTH = 100


def check_name(name: str) -> str:
    """The name with white space folded; InvalidOptionError when empty or too long."""
    if not isinstance(name, str):
        raise InvalidOptionError("a speaker name must be text", param="name")
    clean = " ".join(name.split())
    if not clean:
        raise InvalidOptionError("a speaker name cannot be empty", param="name")
    if len(name) > MAX_NAME_LENGTH:  # the raw text, as the API schema says
        raise InvalidOptionError(f"a speaker name has at most {MAX_NAME_LENGTH} characters", param="name")
    return clean


def unit_vectors(fingerprints: Sequence[float] | np.ndarray) -> np.ndarray:
    """(192,) or (k, 192) -> (k, 192) unit-norm float32; InvalidOptionError otherwise."""
    m = np.asarray(fingerprints, dtype=np.float64)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] != EMBEDDING_DIM:
        raise InvalidOptionError(f"a fingerprint must have {EMBEDDING_DIM} values, got shape {np.shape(fingerprints)}",
                                 param="fingerprints")
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    if not np.all(np.isfinite(m)) or np.any(norms == 0):
        raise InvalidOptionError("a fingerprint must be finite and non-zero", param="fingerprints")
    return (m / norms).astype(np.float32)


def parse_export(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Validate an export document; InvalidOptionError saying what is wrong."""
    if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
        raise InvalidOptionError(f"not a saywho speaker export (expected \"format\": \"{EXPORT_FORMAT}\")",
                                 param="file")
    if data.get("version") != EXPORT_VERSION:
        raise InvalidOptionError(f"unsupported speaker export version {data.get('version')!r}", param="file")
    speakers = data.get("speakers")
    if not isinstance(speakers, list):
        raise InvalidOptionError("speaker export: 'speakers' must be a list", param="file")
    entries = []
    seen: set[str] = set()
    for i, s in enumerate(speakers):
        try:
            name = check_name(s["name"])
            if name.casefold() in seen:
                raise InvalidOptionError(f"the name '{name}' appears twice")
            seen.add(name.casefold())
            prints = []
            for fp in s["fingerprints"]:
                prints.append({
                    "vector": unit_vectors(fp["vector"])[0],
                    "model": str(fp.get("model") or EMBEDDING_MODEL),
                    "source": str(fp.get("source") or "import"),
                    "speech_s": None if fp.get("speech_s") is None else float(fp["speech_s"]),
                    "created_at": fp.get("created_at"),
                })
            if not prints:
                raise InvalidOptionError("no fingerprints")
        except (KeyError, TypeError, ValueError) as exc:
            detail = exc.message if isinstance(exc, InvalidOptionError) else f"{type(exc).__name__}: {exc}"
            raise InvalidOptionError(f"speaker export: entry {i} is malformed ({detail})", param="file") from None
        entries.append({"name": name, "fingerprints": prints,
                        "created_at": s.get("created_at"), "updated_at": s.get("updated_at")})
    return entries


def load_export(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an export JSON file (InvalidOptionError when it is not JSON)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidOptionError(f"{path}: no such file", param="file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidOptionError(f"{path}: not a JSON speaker export ({exc})", param="file") from None


