"""What routers take from the app: its settings, its inference service, test faults."""

from __future__ import annotations

import hashlib

from fastapi import Request

from saywho.server.inference import InferenceService
from saywho.settings import Settings

FAULT_HEADER = "x-saywho-fault"
FAULTS = ("crash", "hang", "device", "oom")


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def inference_of(request: Request) -> InferenceService:
    return request.app.state.inference


def fault(request: Request) -> str | None:
    """The test-only fault a request asks for (honoured only with ``settings.test_faults``)."""
    if not settings_of(request).test_faults:
        return None
    value = request.headers.get(FAULT_HEADER)
    return value if value in FAULTS else None


def creator_of(request: Request) -> str | None:
    """The owner recorded on what this request creates (None when no keys are in use)."""
    return getattr(request.state, "key_owner", None)


def owner_filter(request: Request) -> str | None:
    """Whose jobs this request may see: its key's, or everyone's (admin key, or no keys)."""
    return None if getattr(request.state, "key_admin", False) else creator_of(request)


def key_owner(key: bytes) -> str:
    """The id a key's jobs are stored under: a hash, so the database holds no key."""
    return hashlib.sha256(key).hexdigest()[:16]
