"""``WS /v1/realtime``: OpenAI Realtime transcription sessions (protocol in ``server/realtime.py``)."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, WebSocket

from saywho.asr import whisper as asr_stage
from saywho.models.manager import ModelManager
from saywho.server.deps import key_owner
from saywho.server.realtime import RealtimeConnection, error_event
from saywho.settings import Settings
from saywho.speakers.library import SpeakerLibrary

logger = logging.getLogger(__name__)

router = APIRouter(tags=["realtime"])

# Browsers cannot set headers on a WebSocket: the key may come as this subprotocol (as OpenAI's).
KEY_PROTOCOL = "openai-insecure-api-key."


def _token(ws: WebSocket) -> str:
    auth = ws.headers.get("authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    return token or next((p[len(KEY_PROTOCOL):] for p in ws.scope.get("subprotocols", [])
                          if p.startswith(KEY_PROTOCOL)), "")


def _authorised(ws: WebSocket, keys: list[str]) -> bool:
    if not keys:
        return True
    token = _token(ws)
    return any(hmac.compare_digest(token.encode(), k.encode()) for k in keys)


def _owner(ws: WebSocket, settings: Settings) -> str | None:
    """Who owns the job a session becomes (as for HTTP requests: None without keys or for an admin)."""
    keys = [*settings.api_keys, *settings.admin_keys]
    if not keys:
        return None
    token = _token(ws).encode()
    if any(hmac.compare_digest(token, k.encode()) for k in settings.admin_keys):
        return None
    return key_owner(token)


@router.websocket("/v1/realtime")
async def realtime(ws: WebSocket) -> None:
    app = ws.app
    settings = app.state.settings
    subprotocol = "realtime" if "realtime" in ws.scope.get("subprotocols", []) else None
    await ws.accept(subprotocol=subprotocol)
    if not _authorised(ws, [*settings.api_keys, *settings.admin_keys]):
        await ws.send_json(error_event("missing or incorrect API key: send Authorization: Bearer <key>",
                                       code="invalid_api_key", status=401))
        await ws.close(code=1008)
        return
    active = getattr(app.state, "realtime_sessions", 0)
    if active >= settings.realtime_max_sessions:
        await ws.send_json(error_event(f"all {settings.realtime_max_sessions} live sessions are in use; try again "
                                       "later", code="session_limit_reached", status=429))
        await ws.close(code=1013)
        return
    app.state.realtime_sessions = active + 1
    try:
        if getattr(app.state, "realtime_models", None) is None:
            app.state.realtime_models = ModelManager(asr_stage.load_model, ttl_s=settings.model_ttl_s)
        owner = _owner(ws, settings)
        library = SpeakerLibrary(settings.speaker_library_for(owner))

        def known() -> dict:
            return library.known() if library.exists() else {}

        await RealtimeConnection(ws, settings, app.state.realtime_models, known, jobs=app.state.jobs,
                                 owner=owner).run()
    finally:
        app.state.realtime_sessions -= 1
