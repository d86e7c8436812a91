"""The app factory: ``create_app(settings)`` -> FastAPI.

Routers are thin and listed in ``ROUTERS`` (extend the list, or pass ``routers=``);
``app.state.settings`` and ``app.state.inference`` are what they use. The inference
worker starts with the app (lifespan) and stops with it.
"""

from __future__ import annotations

import asyncio
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
from saywho.server.deps import key_owner
from saywho.server.errors import error_body
from saywho.server.inference import InferenceService
from saywho.server.job_bridge import WorkerTranscriber
from saywho.server.openapi import complete_openapi
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
# Past the limit, at most this much more is read (and dropped) before answering 413.
MAX_DRAIN_BYTES = 16 << 20


def create_app(
    settings: Settings | None = None,
    *,
    routers: Sequence[APIRouter] | None = None,
    inference: InferenceService | None = None,
) -> FastAPI:
    """Build the app. ``inference`` may be injected (tests); by default one is made from settings."""
    settings = settings or Settings()
    service = inference or InferenceService(settings)
    transcriber = WorkerTranscriber(service, settings)  # jobs run in the supervised worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        transcriber.loop = asyncio.get_running_loop()
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
    app.state.jobs = JobService.from_settings(settings, transcriber)  # tests may swap its transcriber
    errors.install(app)
    app.openapi = lambda: complete_openapi(app, settings)  # type: ignore[method-assign]
    for router in routers if routers is not None else ROUTERS:
        app.include_router(router)
    # Outermost last: CORS answers pre-flights before auth, auth before reading bodies.
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD)
    if settings.api_keys or settings.admin_keys:
        app.add_middleware(ApiKeyMiddleware, keys=tuple(settings.api_keys), admin_keys=tuple(settings.admin_keys))
    else:
        bound = () if settings.host in ("0.0.0.0", "::", "") else (settings.host,)
        app.add_middleware(TrustedHostMiddleware, hosts=(*LOOPBACK_HOSTS, *bound, *settings.trusted_hosts))
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
    """``Authorization: Bearer <key>`` on ``/v1/*`` and ``/health/deep`` when keys are configured
    (``/health`` and ``/health/ready`` stay open: they run nothing)."""

    def __init__(self, app: Any, keys: tuple[str, ...], admin_keys: tuple[str, ...] = ()) -> None:
        self.app = app
        self.keys = tuple(k.encode() for k in (*keys, *admin_keys))
        self.admin_keys = tuple(k.encode() for k in admin_keys)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        protected = path.startswith("/v1/") or path == "/health/deep"
        if scope["type"] != "http" or not protected or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"")
        token = auth[7:].strip() if auth[:7].lower() == b"bearer " else b""
        if not any(hmac.compare_digest(token, key) for key in self.keys):
            await _send_error(send, 401, "missing or incorrect API key: send Authorization: Bearer <key>",
                              "invalid_api_key", {"WWW-Authenticate": "Bearer"})
            return
        # Each key owns what it creates (request.state.key_owner); an admin key sees everything.
        state = scope.setdefault("state", {})
        state["key_owner"] = key_owner(token)
        state["key_admin"] = any(hmac.compare_digest(token, key) for key in self.admin_keys)
        await self.app(scope, receive, send)


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class TrustedHostMiddleware:
    """With no API key, only requests whose ``Host`` names this server are served (a web page
    cannot reach it by DNS rebinding): loopback names, the bound address, ``trusted_hosts``."""

    def __init__(self, app: Any, hosts: tuple[str, ...]) -> None:
        self.app = app
        self.hosts = {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.hosts:
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"]).get(b"host", b"").decode("latin-1").strip().lower()
        host = raw[1:raw.index("]")] if raw.startswith("[") and "]" in raw else raw.rsplit(":", 1)[0] if \
            raw.count(":") == 1 else raw
        if host in self.hosts:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _send_error(send, 400, f"the Host header {raw[:100]!r} is not one this server answers to; "
                          "add it to SAYWHO_TRUSTED_HOSTS (or set an API key)", "untrusted_host")


class _BodyTooLarge(Exception):
    """Raised inside a request's ``receive`` once the body passes the limit."""


class UploadLimitMiddleware:
    """413 for a body over the limit, counted byte by byte as it arrives (a Content-Length
    over the limit is refused before reading; a chunked body stops at the limit)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(receive, send, f"the request body is {int(length)} bytes")
            return
        received = 0
        started = False

        async def counting_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._refuse(receive, send, f"the request body is over {self.max_bytes} bytes")

    async def _refuse(self, receive: Any, send: Any, what: str) -> None:
        # Drain (and drop) what the client still sends, so that it reads our answer instead of a reset.
        drained, more = 0, True
        while more and drained < MAX_DRAIN_BYTES:
            message = await receive()
            drained += len(message.get("body", b""))
            more = message.get("more_body", False) and message["type"] == "http.request"
        await _send_error(send, 413, f"{what}; the upload limit is {self.max_bytes - MULTIPART_OVERHEAD} bytes",
                          "payload_too_large")
