"""For orchestrators that chunk long recordings themselves.

``POST /v1/audio/diarize-chunk``: one chunk -> segments with local labels, the speakers
detected, one fingerprint per speaker (to cluster across chunks), words and models.
``POST /v1/audio/transcribe-with-speakers``: one recording -> merged speaker segments
in milliseconds.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from saywho.server import forms
from saywho.server.deps import fault, inference_of, owner_filter, settings_of

router = APIRouter(tags=["chunks"])


async def _run(request: Request, kind: str) -> Any:
    settings, inference = settings_of(request), inference_of(request)
    form = await request.form()
    parsed = forms.parse_audio_request(form, settings, formats=("json",), diarize=True)
    upload = await forms.read_audio(parsed.file, settings)
    known = await forms.known_speakers(parsed, settings)
    payload = {**forms.audio_payload(upload, known, settings, owner_filter(request)), "options": parsed.options, "fault": fault(request)}
    return await inference.run(kind, payload, deadline_s=forms.deadline_for(settings, upload, *known.values()),
                               model=parsed.model)


@router.post("/v1/audio/diarize-chunk", summary="Per-chunk worker: local speakers, fingerprints, words")
async def diarize_chunk(request: Request) -> dict[str, Any]:
    return await _run(request, "diarize_chunk")


@router.post("/v1/audio/transcribe-with-speakers", summary="Merged transcript: speaker segments in ms")
async def transcribe_with_speakers(request: Request) -> dict[str, Any]:
    transcript = await _run(request, "transcribe")
    return {
        "duration": transcript.duration,
        "language": transcript.language,
        "speakers_detected": [s.display for s in transcript.speakers],
        "segments": [
            {"start_ms": round(s.start * 1000), "end_ms": round(s.end * 1000),
             "speaker": transcript.speaker_name(s.speaker), "text": s.text.strip()}
            for s in transcript.segments
        ],
        "models": transcript.models,
    }
