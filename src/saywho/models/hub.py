"""Pull models from a Hugging Face-compatible hub or a local mirror (``$HF_ENDPOINT``).

``pull("Systran/faster-whisper-small")`` lists the repository's files (the hub's
``/api/models/{id}/revision/{rev}?blobs=true``), checks the free disk space, downloads
each file (``/{id}/resolve/{rev}/{file}``) into ``<models>/<id>.partial/``, resuming a
file left half-downloaded with an HTTP range request, verifies each file's checksum
(SHA-256 for LFS files, the git blob id for the others), checks that the result is a
CTranslate2 model, and only then moves it into place. A lock file keeps two pulls of
one model apart. Progress goes through the hook: ``hook("download", completed=bytes,
total=bytes)`` and ``hook("verify", ...)``.

Air-gapped users copy a model directory instead (``saywho models pull /path/to/dir``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import logging
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saywho.errors import (
    ConflictError,
    InsufficientStorageError,
    InvalidOptionError,
    ModelDownloadError,
    ModelNotFoundError,
)
from saywho.models.registry import check_model_dir, pulled_dir, pulled_root
from saywho.types import no_progress

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from saywho.types import Hook

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
BLOCK = 1 << 20
# Free space kept beyond the model's size (filesystems misbehave when full).
DISK_MARGIN = 64 << 20


def endpoint() -> str:
    """The hub's base URL: ``$HF_ENDPOINT`` (as huggingface_hub reads it) or the public hub."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


@dataclass(frozen=True, slots=True)
class RemoteFile:
    name: str
    size: int
    sha256: str | None  # LFS files
    blob_id: str | None  # git blob id (sha1 of "blob <size>\0" + content), other files


def check_id(model_id: str) -> None:
    parts = model_id.split("/")
    if len(parts) != 2 or not all(parts) or any(p in (".", "..") or p.startswith(".") for p in parts):
        raise InvalidOptionError(f"'{model_id}' is not a hub id (owner/name) or a model directory", param="model")


def _open(url: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": "saywho", **(headers or {})})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 404):
            raise ModelNotFoundError(f"the hub at {endpoint()} has no model here ({exc.code}): {url}",
                                     param="model") from None
        raise ModelDownloadError(f"the hub at {endpoint()} answered {exc.code} for {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelDownloadError(
            f"cannot reach the model hub at {endpoint()} ({reason}); offline? Set HF_ENDPOINT to a "
            "mirror, or copy a model directory and pass its path"
        ) from None


def list_files(model_id: str, revision: str = "main") -> list[RemoteFile]:
    """The files of a hub repository, with sizes and checksums."""
    check_id(model_id)
    url = f"{endpoint()}/api/models/{model_id}/revision/{urllib.parse.quote(revision)}?blobs=true"
    with _open(url) as response:
        try:
            info = json.load(response)
        except ValueError:
            raise ModelDownloadError(f"the hub at {endpoint()} sent no JSON for {model_id}") from None
    files = []
    for sibling in info.get("siblings") or ():
        name = sibling.get("rfilename", "")
        if not name or name.startswith((".", "/")) or ".." in name.split("/"):
            continue  # .gitattributes and anything that would leave the model directory
        lfs = sibling.get("lfs") or {}
        files.append(RemoteFile(name=name, size=int(lfs.get("size", sibling.get("size", 0)) or 0),
                                sha256=lfs.get("sha256"), blob_id=sibling.get("blobId")))
    if not any(f.name == "model.bin" for f in files):
        raise ModelNotFoundError(f"'{model_id}' is not a CTranslate2 (faster-whisper) model: no model.bin",
                                 param="model")
    return files


@contextlib.contextmanager
def _pull_lock(model_id: str) -> Iterator[None]:
    root = pulled_root()
    root.mkdir(parents=True, exist_ok=True)
    lock_path = root / (model_id.replace("/", "--") + ".lock")
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(f"'{model_id}' is already being pulled; wait for that pull to finish",
                                param="model") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_pulling(model_id: str) -> bool:
    """Whether another pull of ``model_id`` holds its lock now."""
    try:
        with _pull_lock(model_id):
            return False
    except ConflictError:
        return True


def _verify(path: Path, remote: RemoteFile) -> bool:
    if path.stat().st_size != remote.size and remote.size:
        return False
    if remote.sha256:
        digest = hashlib.sha256()
    elif remote.blob_id:
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(b"blob %d\0" % path.stat().st_size)
    else:
        return True
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest() == (remote.sha256 or remote.blob_id)


def pull(
    model_id: str,
    *,
    revision: str = "main",
    hook: Hook = no_progress,
    disk_free: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free,
) -> Path:
    """Download ``model_id`` (resuming an interrupted pull); returns its directory."""
    check_id(model_id)
    target = pulled_dir(model_id)
    with _pull_lock(model_id):
        files = list_files(model_id, revision)
        partial = target.with_name(target.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        total = sum(f.size for f in files)
        have = sum(min((partial / f.name).stat().st_size, f.size) for f in files if (partial / f.name).is_file())
        needed = total - have + DISK_MARGIN
        free = disk_free(partial)
        if free < needed:
            raise InsufficientStorageError(
                f"not enough disk space for '{model_id}': {_mb(needed)} needed, {_mb(free)} free in {partial.parent}"
            )
        logger.info("pulling %s from %s: %d files, %s (%s already here)", model_id, endpoint(), len(files),
                    _mb(total), _mb(have))
        done = have
        hook("download", completed=done, total=total)
        for remote in files:
            done = _download(model_id, revision, remote, partial, done, total, hook)
        hook("download", completed=total, total=total)
        for i, remote in enumerate(files):
            hook("verify", completed=i, total=len(files))
            if not _verify(partial / remote.name, remote):
                (partial / remote.name).unlink(missing_ok=True)
                raise ModelDownloadError(
                    f"checksum mismatch for {remote.name} of '{model_id}': the file was removed; pull again"
                )
        hook("verify", completed=len(files), total=len(files))
        check_model_dir(partial, name=model_id)
        (partial / ".saywho-source").write_text(json.dumps({"id": model_id, "revision": revision,
                                                            "endpoint": endpoint()}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
    logger.info("pulled %s into %s", model_id, target)
    return target


def _download(model_id: str, revision: str, remote: RemoteFile, partial: Path, done: int, total: int,
              hook: Hook) -> int:
    """One file into ``partial``, resumed from what is there; returns the bytes done so far."""
    path = partial / remote.name
    path.parent.mkdir(parents=True, exist_ok=True)
    have = path.stat().st_size if path.is_file() else 0
    if remote.size and have >= remote.size:
        if have > remote.size:
            path.unlink()  # longer than the file: not a piece of it
            have = 0
        else:
            return done
    url = f"{endpoint()}/{model_id}/resolve/{urllib.parse.quote(revision)}/{urllib.parse.quote(remote.name)}"
    headers = {"Range": f"bytes={have}-"} if have else {}
    with _open(url, headers) as response:
        if have and response.status != 206:  # the server ignored the range: start over
            done -= have
            have = 0
        with open(path, "ab" if have else "wb") as out:
            try:
                while block := response.read(BLOCK):
                    out.write(block)
                    done += len(block)
                    hook("download", completed=min(done, total), total=total)
            except (OSError, http.client.HTTPException) as exc:
                logger.info("download of %s stopped: %s", remote.name, exc)
    got = path.stat().st_size
    if remote.size and got < remote.size:
        raise ModelDownloadError(
            f"the download of {remote.name} of '{model_id}' stopped at {_mb(got)} of {_mb(remote.size)}; "
            "pull again to resume"
        )
    return done


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def copy_local(source: Path) -> tuple[str, Path]:
    """Install a model directory copied by hand (air-gapped machines) as ``local/<name>``."""
    check_model_dir(source, name=str(source))
    model_id = f"local/{source.resolve().name}"
    target = pulled_dir(model_id)
    with _pull_lock(model_id):
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial)
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
    return model_id, target
