"""The complete OpenAPI document: multipart bodies, every status code the server sends.

The routers read their multipart forms themselves (``server/forms.py``), so FastAPI
cannot see those bodies, and its generated 422 is never sent (validation errors are
400s with the OpenAI error body). ``complete_openapi`` rewrites FastAPI's document:
the forms below as request bodies, the error schema on every 4xx/5xx a route can
answer, the bearer scheme when keys are configured. Schemathesis checks the result
against the live server (``tests/test_openapi_fuzz.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from saywho.server import forms
from saywho.server.routers.jobs import RESULT_FORMATS
from saywho.types import MAX_SPEAKERS

if TYPE_CHECKING:
    from fastapi import FastAPI

    from saywho.settings import Settings

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}},
    }},
}

ERROR_TEXT = {
    400: "Invalid request: a field, the audio or the multipart framing (OpenAI error body)",
    401: "Missing or wrong API key (when keys are configured)",
    404: "No such resource or model",
    409: "Conflict: a speaker name already taken, or a name found in several keys' libraries (say ?owner=)",
    405: "Method not allowed",
    413: "The upload is over the limit (counted as it arrives, whatever Content-Length says)",
    429: "Full: too many requests or jobs; see Retry-After",
    503: "Inference is restarting or degraded; see Retry-After",
    507: "Not enough disk space to accept the job",
}


def _speakers_fields() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 1, "maximum": MAX_SPEAKERS}
    return {"num_speakers": count, "min_speakers": count, "max_speakers": count}


def audio_form(formats: tuple[str, ...], *, model_required: bool = True, job: bool = False) -> dict[str, Any]:
    """The multipart schema of an OpenAI-style audio request."""
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "the audio (anything ffmpeg reads)"},
        "model": {"type": "string", "minLength": 1, "description": "whisper-1 (the default model), a bundled alias, or a cached id"},
        "language": {"type": "string", "enum": sorted(forms.whisper_languages()),
                     "description": "ISO 639-1 code; detected when absent"},
        "prompt": {"type": "string"},
        "response_format": {"type": "string", "enum": list(formats)},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "timestamp_granularities[]": {"type": "array", "items": {"type": "string", "enum": list(forms.GRANULARITIES)}},
        "stream": {"type": "boolean"},
        "known_speaker_names[]": {"type": "array", "items": {"type": "string"}},
        "known_speaker_references[]": {"type": "array", "items": {"type": "string", "pattern": "^data:"},
                                       "description": "data:audio/...;base64,... (one per name, 1 MB at most)"},
        "chunking_strategy": {"type": "string", "enum": ["auto"]},
        **_speakers_fields(),
    }
    if job:
        properties["diarize"] = {"type": "boolean", "description": "find speakers (default true)"}
        for streaming_only in ("stream", "known_speaker_names[]", "known_speaker_references[]", "chunking_strategy"):
            properties.pop(streaming_only)
    required = ["file", "model"] if model_required else ["file"]
    return {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": required, "properties": properties}}}}


# What ``speakers.export.check_name`` accepts: something besides Python's white space, 100 characters at most.
NAME = {"type": "string", "maxLength": 100,
        "pattern": "[^\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"}

SPEAKER_FORM = {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["name", "file"], "properties": {
        "name": NAME, "file": {"type": "string", "format": "binary"},
        "start": {"type": "number", "minimum": 0}, "end": {"type": "number", "minimum": 0},
        "merge": {"type": "boolean"}}}},
    "application/json": {"schema": {"type": "object", "required": ["name", "label", "transcript_json"],
                                    "properties": {"name": NAME,
                                                   "label": {"type": "string", "minLength": 1},
                                                   "transcript_json": {"type": "object"},
                                                   "merge": {"type": "boolean"}}}},
}}

TEXT_TYPES = ("text/plain", "text/vtt", "application/x-subrip")

# path -> (request body, extra 2xx content types, extra error statuses)
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/audio/transcriptions"): audio_form(forms.TRANSCRIPTION_FORMATS),
    ("post", "/v1/audio/translations"): audio_form(forms.TRANSLATION_FORMATS),
    ("post", "/v1/audio/diarize-chunk"): audio_form(("json",)),
    ("post", "/v1/audio/transcribe-with-speakers"): audio_form(("json",)),
    ("post", "/v1/jobs"): audio_form(forms.TRANSCRIPTION_FORMATS, model_required=False, job=True),
    ("post", "/v1/speakers"): SPEAKER_FORM,
    ("put", "/v1/jobs/{job_id}/speakers/{label}"): {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "properties": {"name": {"type": ["string", "null"], "maxLength": 100},
                                                    "enrol": {"type": "boolean"}}}}}},
    ("patch", "/v1/speakers/{speaker_id}"): {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "required": ["name"], "properties": {"name": NAME}}}}},
}

INFERENCE = ("/v1/audio/", "/health/deep")

_TEXT = {t: {"schema": {"type": "string"}} for t in TEXT_TYPES}
# Routes whose success is not (only) JSON.
CONTENT: dict[str, dict[str, Any]] = {
    "/v1/audio/transcriptions": {"application/json": {"schema": {"type": "object"}}, **_TEXT,
                                 "text/event-stream": {"schema": {"type": "string"}}},
    "/v1/audio/translations": {"application/json": {"schema": {"type": "object"}}, **_TEXT,
                               "text/event-stream": {"schema": {"type": "string"}}},
    "/v1/jobs/{job_id}/result": {"application/json": {"schema": {"type": "object"}}, **_TEXT},
    "/v1/jobs/{job_id}/events": {"text/event-stream": {"schema": {"type": "string"}}},
    "/v1/jobs/{job_id}/audio": {"audio/*": {"schema": {"type": "string", "format": "binary"}},
                                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    "/": {"text/html": {"schema": {"type": "string"}}},
    "/static/{name}": {t: {"schema": {"type": "string"}} for t in ("text/html", "text/javascript", "text/css",
                                                                    "image/svg+xml", "image/png")},
    "/v1/audio/speech": {t: {"schema": {"type": "string", "format": "binary"}}
                         for t in ("audio/mpeg", "audio/ogg", "audio/aac", "audio/flac", "audio/wav", "audio/pcm")},
}


def statuses_for(method: str, path: str, operation: dict[str, Any], *, keys: bool) -> set[int]:
    """The error statuses this route can answer."""
    codes = {400}
    if keys and (path.startswith("/v1/") or path == "/health/deep"):
        codes.add(401)
    if "{" in path or path.startswith("/v1/audio/") or path in ("/v1/jobs", "/v1/speakers"):
        codes.add(404)  # /v1/jobs: an unknown `after`; /v1/speakers: an unknown `owner`
    if (path.startswith("/v1/speakers") and method != "get") or path == "/v1/speakers/{speaker_id}":
        codes.add(409)
    if method in ("post", "put", "patch"):
        codes.add(413)
    if path.startswith(INFERENCE) or (path == "/v1/speakers" and method == "post"):
        codes |= {429, 503}
    if path == "/v1/jobs" and method == "post":
        codes |= {429, 507}
    if path == "/health/ready" or (path.startswith("/v1/models/") and path.endswith(("/unload", "/ttl"))):
        codes.add(503)  # the worker answers unload and TTL changes: 503 while it restarts
    return codes


def complete_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's document with the multipart bodies and every status code (cached on the app)."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(name, None)
    keys = bool(settings.api_keys or settings.admin_keys)
    if keys:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            body = BODIES.get((method, path))
            if body is not None:
                operation["requestBody"] = body
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in sorted(statuses_for(method, path, operation, keys=keys)):
                responses[str(status)] = {"description": ERROR_TEXT[status], "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            if keys and (path.startswith("/v1/") or path == "/health/deep"):
                operation["security"] = [{"bearer": []}]
            if path.startswith("/health/"):  # their 503 is the health report itself
                responses["503"] = {"description": "Not ready / the probe failed (the same report)",
                                    "content": {"application/json": {"schema": {"type": "object"}}}}
            for parameter in operation.get("parameters", []):
                if (path, parameter["name"]) == ("/v1/jobs/{job_id}/result", "format"):
                    parameter["schema"] = {"type": "string", "enum": list(RESULT_FORMATS), "default": "json"}
            content = CONTENT.get(path)
            if content is not None:
                ok = next(v for k, v in responses.items() if k.startswith("2"))
                ok["content"] = content
    app.openapi_schema = spec
    return spec
