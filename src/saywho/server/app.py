"""The app factory: ``create_app(settings)`` -> FastAPI.

Routers are thin and listed in ``ROUTERS`` (extend the list, or pass ``routers=``);
``app.state.settings`` and ``app.state.inference`` are what they use. The inference
worker starts with the app (lifespan) and stops with it.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from saywho import __version__
from saywho.jobs.service import JobService
from saywho.server import errors
from saywho.server.errors import error_body
from saywho.server.inference import InferenceService
from saywho.server.routers import (
    chunks,
    dashboard,
    health,
    jobs,
    models,
    realtime,
    speakers,
    speech,
    transcriptions,
)
from saywho.settings import Settings

logger = logging.getLogger(__name__)

ROUTERS: list[APIRouter] = [health.router, models.router, transcriptions.router, speech.router, chunks.router,
                             speakers.router, jobs.router, dashboard.router, realtime.router]

# Multipart framing around the file: allowed on top of max_upload_bytes.
MULTIPART_OVERHEAD = 1 << 20


def create_app(
    settings: Settings | None = None,
    *,
    routers: Sequence[APIRouter] | None = None,
    inference: InferenceService | None = None,
) -> FastAPI:
    """Build the app. ``inference`` may be injected (tests); by default one is made from settings."""
    settings = settings or Settings()
    service = inference or InferenceService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        service.start()
        app.state.jobs.start()  # resumes what a previous process left unfinished
        try:
            yield
        finally:
            app.state.jobs.stop()
            service.stop()

    app = FastAPI(title="saywho", version=__version__, lifespan=lifespan,
                  description="Who said what: OpenAI-compatible speech-to-text with speakers, and text-to-speech.")
    app.state.settings = settings
    app.state.inference = service
    app.state.jobs = JobService.from_settings(settings)  # tests may swap its transcriber
    errors.install(app)
    for router in routers if routers is not None else ROUTERS:
        app.include_router(router)
    # Outermost last: CORS answers pre-flights before auth, auth before reading bodies.
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD)
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=tuple(settings.api_keys))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["Retry-After"])
    return app


async def _send_error(send: Any, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(message, status, code=code)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware:
    """``Authorization: Bearer <key>`` on ``/v1/*`` when keys are configured (health stays open)."""

    def __init__(self, app: Any, keys: tuple[str, ...]) -> None:
        self.app = app
        self.keys = tuple(k.encode() for k in keys)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/") or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"")
        token = auth[7:].strip() if auth[:7].lower() == b"bearer " else b""
        if not any(hmac.compare_digest(token, key) for key in self.keys):
            await _send_error(send, 401, "missing or incorrect API key: send Authorization: Bearer <key>",
                              "invalid_api_key", {"WWW-Authenticate": "Bearer"})
            return
        await self.app(scope, receive, send)


class UploadLimitMiddleware:
    """413 for a body whose Content-Length is over the limit, without reading it into memory."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                # Drain what the client sends so that it reads our answer instead of a reset.
                more = True
                while more:
                    message = await receive()
                    more = message.get("more_body", False) and message["type"] == "http.request"
                await _send_error(send, 413, f"the request body is {int(length)} bytes; the upload limit is "
                                  f"{self.max_bytes - MULTIPART_OVERHEAD} bytes", "payload_too_large")
                return
        await self.app(scope, receive, send)
