"""The dashboard: ``/`` and its static files (plain HTML, CSS and JS; no build step, no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from saywho.errors import NotFoundError

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parents[1] / "static"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=MEDIA_TYPES[".html"], headers={"Cache-Control": "no-cache"})


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    path = (STATIC / name).resolve()
    if path.parent != STATIC or path.suffix not in MEDIA_TYPES or not path.is_file():
        raise NotFoundError(f"no static file '{name}'")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
