"""``/health`` (alive), ``/health/ready`` (models loadable, worker up), ``/health/deep`` (real inference);
both report per model: installed, loaded, idle since, memory held, TTL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from saywho import __version__
from saywho.errors import SaywhoError
from saywho.models.registry import BUNDLED, ModelNotFoundError, resolve_asr_model
from saywho.server.deps import inference_of, settings_of
from saywho.server.routers.models import model_state, model_states
from saywho.types import TranscribeOptions

router = APIRouter(tags=["health"])

DEEP_SENTENCE = "The quick brown fox jumps over the lazy dog."


@router.get("/health", summary="The process is alive")
async def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


def _installed(name: str) -> str:
    bundled = BUNDLED.get(name)
    if bundled is None:  # a pulled model, a local directory or a hub id
        try:
            path = resolve_asr_model(name)
        except ModelNotFoundError as exc:  # half-downloaded, not a model directory...
            return f"missing: {exc.message}"
        return "installed" if Path(path).is_dir() else "not installed (a hub id: downloaded on first use)"
    try:
        bundled.locate() if name != "base" else None
        return "installed"
    except ModelNotFoundError as exc:
        return f"missing: {exc.message}"


def _model_checks(request: Request, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per model: installed or not, and what the worker holds of it (loaded, idle, memory, TTL)."""
    settings = settings_of(request)
    held = model_states(request)["held"]
    return {name: {"state": _installed(name),
                   **model_state(name, BUNDLED[name].kind if name in BUNDLED else "asr", held, settings)}
            for name in names}


@router.get("/health/ready", summary="Models are loadable and the inference worker is up")
async def ready(request: Request) -> JSONResponse:
    settings = settings_of(request)
    worker = inference_of(request).status()
    models = _model_checks(request, [settings.default_model, "pyannote-segmentation-3.0", "campplus",
                                     settings.default_voice])
    problems = [f"{name}: {m['state']}" for name, m in models.items() if m["state"].startswith("missing")]
    if worker["state"] != "ready":
        problems.insert(0, f"inference worker {worker['state']}" + (f": {worker['reason']}" if worker["reason"] else ""))
    status = "ready" if not problems else ("degraded" if worker["state"] == "degraded" else "not_ready")
    body = {"status": status, "reasons": problems, "worker": worker, "models": models}
    headers = {"Retry-After": str(settings.retry_after_s)} if problems else None
    return JSONResponse(body, status_code=200 if not problems else 503, headers=headers)


@router.get("/health/deep", summary="A short real inference end to end (TTS -> ASR -> diarization)",
            description="Answered from a recent probe (``deep_health_cache_s``): at most one real inference "
                        "per period, however many callers. Behind the API key when keys are set.")
async def deep(request: Request) -> JSONResponse:
    settings = settings_of(request)
    state = request.app.state
    if not hasattr(state, "deep_lock"):
        state.deep_lock, state.deep_probe = asyncio.Lock(), None
    async with state.deep_lock:  # one probe at a time; callers meanwhile get its answer
        cached = state.deep_probe
        if cached is None or time.monotonic() - cached[0] > settings.deep_health_cache_s:
            cached = state.deep_probe = (time.monotonic(), *await _probe(request))
    at, status, body, headers = cached
    # The probe's models, as they are now (the probe itself may be cached).
    models = _model_checks(request, [body.get("model", settings.default_model), "pyannote-segmentation-3.0",
                                     "campplus", settings.default_voice])
    for name, role in zip(models, ("asr", "segmentation", "embedding", "tts"), strict=True):
        models[name] = {"role": role, "probe": body["status"], **models[name]}
    return JSONResponse({**body, "age_s": round(time.monotonic() - at, 1), "models": models},
                        status_code=status, headers=headers)


async def _probe(request: Request) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    settings, inference = settings_of(request), inference_of(request)
    payload = {"voice": settings.default_voice, "input": DEEP_SENTENCE,
               "options": TranscribeOptions(model=settings.default_model, cpu_threads=settings.cpu_threads)}
    started = time.perf_counter()
    try:
        result = await inference.run("deep", payload, deadline_s=settings.request_deadline_s,
                                     model=settings.default_model)
    except SaywhoError as exc:
        body = {"status": "failed", "model": settings.default_model, "error": exc.message, "code": exc.code,
                "latency_ms": round(1000 * (time.perf_counter() - started), 1)}
        headers = {"Retry-After": str(settings.retry_after_s)} if exc.status_code in (429, 503) else None
        return 503, body, headers
    words = set(result["text"].lower().replace(".", "").split())
    expected = set(DEEP_SENTENCE.lower().replace(".", "").split())
    recall = len(words & expected) / len(expected)
    ok = recall >= 0.5
    body = {"status": "ok" if ok else "failed", "model": settings.default_model, "latency_ms": round(1000 * (time.perf_counter() - started), 1),
            "worker_latency_ms": result["latency_ms"], "audio_s": result["audio_s"], "text": result["text"],
            "word_recall": round(recall, 3), "speakers": result["speakers"]}
    return (200 if ok else 503), body, None
