"""``/v1/models``: installed models (OpenAI's list shape, plus state), aliases, pull, delete,
unload and the default model, changeable at run time.

- ``GET /v1/models``: every installed model with ``size_bytes``, ``state``, ``loaded``
  (held by the inference worker, with ``idle_s``, ``idle_since``, ``unload_in_s``,
  ``memory_bytes``, ``ttl_s``), and each accepted
  alias (``whisper-1``...) with the model it maps to; ``default`` names the default.
- ``POST /v1/models/{id}``: pull from the hub (``$HF_ENDPOINT``) as server-sent
  events: ``progress`` (phase, bytes, total, elapsed, speed), ``log``, then ``done`` or
  ``error`` (an OpenAI-shaped error body).
- ``DELETE /v1/models/{id}``, ``POST /v1/models/{id}/unload``,
  ``PUT /v1/models/{id}/ttl?ttl_s=S`` (a model's own idle TTL), ``PUT /v1/default-model?model=ID``.

Loaded state comes from the worker's last report (it reports after every load, unload
and job), so listing never waits behind a running transcription.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from saywho.errors import ConflictError, InvalidOptionError, NotFoundError, SaywhoError
from saywho.models import hub
from saywho.models.registry import installed_models as installed_rows
from saywho.models.registry import remove_model, require_installed
from saywho.server.deps import inference_of, settings_of
from saywho.server.errors import error_body
from saywho.server.forms import OPENAI_STT_MODELS
from saywho.server.streams import event_source, sse

router = APIRouter(tags=["models"])

CREATED = 1_700_000_000  # OpenAI's list needs a timestamp; bundled models have no meaningful one
KINDS = {"asr": "speech-to-text", "tts": "text-to-speech", "segmentation": "diarization",
         "embedding": "speaker-embedding"}
OPENAI_TTS_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


def installed_models() -> list[dict[str, Any]]:
    return [
        {"id": r.id, "object": "model", "created": CREATED, "owned_by": "saywho", "type": KINDS[r.kind],
         "description": r.description, "source": r.source, "state": r.state, "size_bytes": r.size_bytes}
        for r in installed_rows()
        if r.state != "missing"
    ]


def model_states(request: Request) -> dict[str, Any]:
    """Per model name, what the inference worker holds (from its last report; never waits for it)."""
    report = getattr(inference_of(request), "models_status", None)  # stand-in services hold no models
    status = (report() if report is not None else None) or {"loaded": [], "rss_bytes": None}
    held: dict[str, dict[str, Any]] = {}
    for row in status["loaded"]:
        name = row.get("name") or row["key"].split("|")[1]
        held.setdefault(name, row)
    return {"held": held, "rss_bytes": status.get("rss_bytes")}


def model_state(model_id: str, kind: str, held: dict[str, dict[str, Any]], settings: Any) -> dict[str, Any]:
    """``loaded``, ``in_use``, ``idle_s``, ``idle_since`` (epoch seconds), ``unload_in_s``,
    ``memory_bytes`` and ``ttl_s`` of one model. Diarization models are loaded once per worker
    and kept (no TTL): their ``loaded`` is ``None``."""
    ttl = settings.model_ttls.get(model_id, settings.model_ttl_s)
    if kind in ("segmentation", "embedding"):
        return {"loaded": None, "ttl_s": None}
    row = held.get(model_id)
    if row is None:
        return {"loaded": False, "in_use": 0, "idle_s": None, "idle_since": None, "unload_in_s": None,
                "memory_bytes": 0, "ttl_s": ttl}
    idle_since = None if row["in_use"] else round(time.time() - row["idle_s"], 1)
    return {"loaded": True, "in_use": row["in_use"], "idle_s": row["idle_s"], "idle_since": idle_since,
            "unload_in_s": row["unload_in_s"], "memory_bytes": row["memory_bytes"], "ttl_s": row["ttl_s"]}


@router.get("/v1/models", summary="Installed models with state, accepted aliases, the default")
async def list_models(request: Request) -> dict[str, Any]:
    settings = settings_of(request)
    states = model_states(request)
    kinds = {v: k for k, v in KINDS.items()}
    data = []
    for model in await run_in_threadpool(installed_models):
        model.update(model_state(model["id"], kinds[model["type"]], states["held"], settings))
        model["default"] = model["id"] == settings.default_model
        data.append(model)
    aliases = [{"id": name, "object": "model", "created": CREATED, "owned_by": "saywho", "type": "alias",
                "maps_to": settings.translation_model if name == "whisper-1-translate" else settings.default_model}
               for name in OPENAI_STT_MODELS]
    aliases += [{"id": name, "object": "model", "created": CREATED, "owned_by": "saywho", "type": "alias",
                 "maps_to": settings.default_voice} for name in OPENAI_TTS_MODELS]
    return {"object": "list", "data": data + aliases, "default": settings.default_model,
            "translation_model": settings.translation_model, "ttl_s": settings.model_ttl_s,
            "worker_rss_bytes": states["rss_bytes"]}


@router.put("/v1/default-model", summary="Make an installed model the default speech model (until restart)",
            responses={404: {"description": "No such installed model"}})
async def set_default(request: Request, model: Annotated[str, Query(min_length=1, max_length=200)]) -> dict[str, Any]:
    name = model
    await run_in_threadpool(require_installed, name)  # raises for unknown or half-downloaded ids
    settings_of(request).default_model = name
    return {"default": name}


@router.post("/v1/models/{model_id:path}/unload", summary="Unload an idle model from memory now")
async def unload(request: Request, model_id: str) -> dict[str, Any]:
    """``unloaded`` is false when the model was not loaded, or is in use (it then unloads after its TTL)."""
    await _require_model(model_id)
    dropped = await inference_of(request).control("unload", {"model": model_id})
    return {"id": model_id, "unloaded": bool(dropped)}


@router.put("/v1/models/{model_id:path}/ttl", summary="Set a model's own idle TTL (until restart)",
            responses={404: {"description": "No such installed model"}})
async def set_ttl(request: Request, model_id: str,
                  ttl_s: Annotated[float | None, Query(ge=-1, le=7 * 86400,
                                                       description="seconds; -1 keeps it loaded; "
                                                                   "absent: back to the default")] = None,
                  ) -> dict[str, Any]:
    await _require_model(model_id)
    settings = settings_of(request)
    if ttl_s is None:
        settings.model_ttls.pop(model_id, None)  # a restarted worker gets the settings again
    else:
        settings.model_ttls[model_id] = ttl_s
    await inference_of(request).control("ttl", {"model": model_id, "ttl_s": ttl_s})
    return {"id": model_id, "ttl_s": settings.model_ttls.get(model_id, settings.model_ttl_s),
            "own": model_id in settings.model_ttls}


@router.api_route("/v1/models/{model_id:path}/ttl", methods=["GET", "POST", "DELETE", "PATCH"],
                  include_in_schema=False)
async def ttl_other_methods(model_id: str) -> None:
    """``POST /v1/models/x/ttl`` would otherwise be read as a pull of the hub id ``x/ttl``."""
    raise StarletteHTTPException(405, "Method Not Allowed")


async def _require_model(model_id: str) -> dict[str, Any]:
    for model in await run_in_threadpool(installed_models):
        if model["id"] == model_id:
            return model
    raise NotFoundError(f"model '{model_id}' is not installed", param="model")


@router.get("/v1/models/{model_id:path}", summary="One installed model")
async def get_model(request: Request, model_id: str) -> dict[str, Any]:
    model = await _require_model(model_id)
    kinds = {v: k for k, v in KINDS.items()}
    model.update(model_state(model_id, kinds[model["type"]], model_states(request)["held"], settings_of(request)))
    model["default"] = model_id == settings_of(request).default_model
    return model


@router.delete("/v1/models/{model_id:path}", summary="Delete a pulled model")
async def delete_model(request: Request, model_id: str) -> dict[str, Any]:
    if model_id == settings_of(request).default_model:
        raise InvalidOptionError(f"'{model_id}' is the default model: choose another default first",
                                 param="model")
    await run_in_threadpool(remove_model, model_id)
    return {"id": model_id, "object": "model", "deleted": True}


@router.post("/v1/models/{model_id:path}", summary="Pull a model from the hub (server-sent events)")
async def pull_model(request: Request, model_id: str) -> Any:
    """Validation errors come back as 4xx JSON; once the pull runs, progress streams as SSE:
    ``download`` and ``verify`` (checksums), then ``check`` (the inference worker loads the
    model and decodes a second of silence), then ``done`` with the check's timings."""
    hub.check_id(model_id)
    if hub.is_pulling(model_id):
        raise ConflictError(f"'{model_id}' is already being pulled; wait for that pull to finish", param="model")
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    started = time.monotonic()
    last = {"phase": "", "at": 0.0}

    def hook(step: str, *, completed: float | None = None, total: float | None = None) -> None:
        now = time.monotonic()
        if step != last["phase"]:
            loop.call_soon_threadsafe(queue.put_nowait, ("log", {"message": f"{step}: started"}))
        elif now - last["at"] < 0.2 and completed != total:
            return
        last.update(phase=step, at=now)
        elapsed = now - started
        loop.call_soon_threadsafe(queue.put_nowait, ("progress", {
            "phase": step, "completed": completed, "total": total, "elapsed_s": round(elapsed, 2),
            "bytes_per_s": round((completed or 0) / elapsed) if step == "download" and elapsed > 0 else None}))

    def work() -> None:
        try:
            target = hub.pull(model_id, hook=hook)
            event = ("done", {"id": model_id, "path": str(target), "elapsed_s": round(time.monotonic() - started, 2)})
        except SaywhoError as exc:
            event = ("error", error_body(exc.message, exc.status_code, code=exc.code, param=exc.param))
        loop.call_soon_threadsafe(queue.put_nowait, event)

    async def events() -> Any:
        yield sse({"message": f"pulling {model_id} from {hub.endpoint()}"}, event="log")
        task = loop.run_in_executor(None, work)
        while True:
            kind, data = await queue.get()
            if kind == "done":
                yield sse({"message": "check: loading it in the inference worker"}, event="log")
                yield sse({"phase": "check", "completed": 0, "total": 1, "bytes_per_s": None,
                           "elapsed_s": round(time.monotonic() - started, 2)}, event="progress")
                kind, data = await check(data)
                yield sse(data["log"], event="log")
                data = data["event"]
            yield sse(data, event=kind)
            if kind in ("done", "error"):
                break
        await task

    async def check(done: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The installed model, loaded and run once in the inference worker."""
        settings = settings_of(request)
        try:
            result = await inference_of(request).run("check_model", {"model": model_id},
                                                     deadline_s=settings.request_deadline_s)
        except SaywhoError as exc:
            message = (f"'{model_id}' was downloaded but does not load: {exc.message}; "
                       f"remove it with DELETE /v1/models/{model_id}")
            return "error", {"log": {"message": f"check: {exc.message}"},
                             "event": error_body(message, exc.status_code, code=exc.code, param="model")}
        note = (f"check: loads in {result['load_ms'] / 1000:.1f} s and decodes in {result['decode_ms'] / 1000:.1f} s"
                f" ({'multilingual' if result['multilingual'] else 'English-only'})")
        done = {**done, "check": result, "elapsed_s": round(time.monotonic() - started, 2)}
        return "done", {"log": {"message": note}, "event": done}

    return event_source(events())
