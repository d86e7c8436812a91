"""``GET /v1/models``: installed speech-to-text models and voices, in OpenAI's list shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from saywho.errors import NotFoundError
from saywho.models.registry import bundled_status

router = APIRouter(tags=["models"])

CREATED = 1_700_000_000  # OpenAI's list needs a timestamp; bundled models have no meaningful one


def installed_models() -> list[dict[str, Any]]:
    kinds = {"asr": "speech-to-text", "tts": "text-to-speech"}
    return [
        {"id": row["alias"], "object": "model", "created": CREATED, "owned_by": "saywho",
         "type": kinds[row["kind"]], "description": row["description"]}
        for row in bundled_status()
        if row["kind"] in kinds and row["state"] == "installed"
    ]


@router.get("/v1/models", summary="Installed models and voices")
async def list_models() -> dict[str, Any]:
    return {"object": "list", "data": installed_models()}


@router.get("/v1/models/{model_id}", summary="One installed model")
async def get_model(model_id: str) -> dict[str, Any]:
    for model in installed_models():
        if model["id"] == model_id:
            return model
    raise NotFoundError(f"model '{model_id}' is not installed", param="model")
