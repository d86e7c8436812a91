"""Parsing OpenAI's multipart audio requests into saywho's options (no pipeline logic).

The official clients send arrays as ``name[]`` repeated and objects as ``name[key]``;
curl users send ``name`` repeated or JSON. Both are accepted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData, UploadFile

from saywho.asr.languages import WHISPER_LANGUAGES
from saywho.audio.decode import probe_duration
from saywho.errors import (
    AudioDecodeError,
    AudioTooLongError,
    InvalidOptionError,
    ModelNotFoundError,
    PayloadTooLargeError,
)
from saywho.models.registry import BUNDLED, resolve_asr_model
from saywho.settings import Settings
from saywho.types import SpeakerCount, TranscribeOptions

# OpenAI's speech-to-text model names; they all mean "the server's default model".
OPENAI_STT_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize")

TRANSCRIPTION_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
TRANSLATION_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
# OpenAI format -> saywho writer.
WRITER_FOR = {"json": "openai_json", "text": "text", "srt": "srt", "vtt": "vtt",
              "verbose_json": "verbose_json", "diarized_json": "diarized_json"}
# Formats that carry speakers, hence run diarization.
SPEAKER_FORMATS = ("diarized_json", "srt", "vtt")
GRANULARITIES = ("word", "segment")


@dataclass(frozen=True, slots=True)
class AudioRequest:
    """A parsed transcription / translation / chunk request."""

    file: UploadFile
    options: TranscribeOptions
    response_format: str
    model: str
    granularities: tuple[str, ...] = ("segment",)
    stream: bool = False
    known_speaker_names: tuple[str, ...] = ()
    known_speaker_references: tuple[str, ...] = ()
    chunking_strategy: dict[str, Any] | str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def form_value(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return None
    return value


def form_list(form: FormData, name: str) -> list[str]:
    """``name[]`` repeated, ``name`` repeated, or ``name`` as a JSON array."""
    values = [v for v in (*form.getlist(f"{name}[]"), *form.getlist(name)) if isinstance(v, str)]
    if len(values) == 1 and values[0].lstrip().startswith("["):
        try:
            parsed = json.loads(values[0])
        except json.JSONDecodeError:
            raise InvalidOptionError(f"{name} is not a JSON array", param=name) from None
        if not isinstance(parsed, list):
            raise InvalidOptionError(f"{name} must be an array", param=name)
        return [str(v) for v in parsed]
    return values


def form_object(form: FormData, name: str) -> dict[str, Any] | str | None:
    """``name[key]=value`` fields, or ``name`` as a string or a JSON object."""
    prefix = f"{name}["
    nested = {k[len(prefix):-1]: v for k, v in form.multi_items() if k.startswith(prefix) and k.endswith("]")}
    if nested:
        return nested
    raw = form_value(form, name)
    if raw is None or not raw.strip():
        return None
    if raw.lstrip().startswith("{"):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            raise InvalidOptionError(f"{name} is not valid JSON", param=name) from None
        return parsed
    return raw


def _float(form: FormData, name: str) -> float | None:
    raw = form_value(form, name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidOptionError(f"{name} must be a number, got {raw!r}", param=name) from None
    if not math.isfinite(value):
        raise InvalidOptionError(f"{name} must be a finite number", param=name)
    return value


def _int(form: FormData, name: str) -> int | None:
    raw = form_value(form, name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidOptionError(f"{name} must be an integer, got {raw!r}", param=name) from None


def form_bool(form: FormData, name: str, default: bool = False) -> bool:
    raw = (form_value(form, name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("false", "0", "no", "off"):
        return False
    if raw in ("true", "1", "yes", "on"):
        return True
    raise InvalidOptionError(f"{name} must be true or false, got {raw!r}", param=name)


def stt_model(name: str | None, settings: Settings, *, task: str = "transcribe") -> str:
    """The saywho model for a requested name (OpenAI names -> the default model)."""
    if not name:
        raise InvalidOptionError("model is required (e.g. whisper-1)", param="model")
    if name in OPENAI_STT_MODELS or (name.startswith("gpt-") and "transcribe" in name):
        return settings.translation_model if task == "translate" else settings.default_model
    if len(name) > 4096 or any(len(part.encode()) > 255 for part in name.split("/")):  # no such path can exist
        raise ModelNotFoundError(f"unknown model '{name[:60]}...'", param="model")
    bundled = BUNDLED.get(name)
    if bundled is not None:
        if bundled.kind != "asr":
            raise ModelNotFoundError(f"'{name}' is a {bundled.kind} model, not a speech-to-text model",
                                     param="model")
        return name
    resolved = resolve_asr_model(name)  # a local directory or a hub id; raises ModelNotFoundError otherwise
    if not Path(resolved).is_dir() and not hub_model_cached(resolved):
        raise ModelNotFoundError(f"model '{name}' is not in the local model cache and the server does not "
                                 "download models while answering; fetch it first", param="model")
    return name


def hub_model_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "model.bin"), str)
    except Exception:  # an id huggingface_hub refuses is not cached either
        return False


def language(form: FormData) -> str | None:
    """An ISO 639-1 code Whisper knows, or None (detect)."""
    raw = (form_value(form, "language") or "").strip().lower()
    if not raw:
        return None
    if raw not in whisper_languages():
        raise InvalidOptionError(f"unknown language '{raw[:40]}': use an ISO 639-1 code such as en, de, fr",
                                 param="language")
    return raw


def whisper_languages() -> frozenset[str]:
    return frozenset(WHISPER_LANGUAGES)


def speaker_count(form: FormData) -> SpeakerCount:
    return SpeakerCount(num=_int(form, "num_speakers"), min=_int(form, "min_speakers"),
                        max=_int(form, "max_speakers"))


def chunking_strategy(form: FormData) -> dict[str, Any] | str | None:
    value = form_object(form, "chunking_strategy")
    if value is None or value == "auto":
        return value
    if isinstance(value, dict) and value.get("type") == "server_vad":
        for key in ("prefix_padding_ms", "silence_duration_ms", "threshold"):
            if key in value:
                try:
                    value[key] = float(value[key])
                except (TypeError, ValueError):
                    raise InvalidOptionError(f"chunking_strategy.{key} must be a number",
                                             param="chunking_strategy") from None
        return value
    raise InvalidOptionError("chunking_strategy must be 'auto' or {\"type\": \"server_vad\", ...}",
                             param="chunking_strategy")


def parse_audio_request(
    form: FormData, settings: Settings, *, task: str = "transcribe",
    formats: tuple[str, ...] = TRANSCRIPTION_FORMATS, default_format: str = "json", diarize: bool | None = None,
) -> AudioRequest:
    """Validate an OpenAI-style audio form (the file itself is read by ``read_audio``)."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidOptionError("file is required: send the audio as a multipart file field", param="file")
    model = stt_model(form_value(form, "model"), settings, task=task)
    response_format = form_value(form, "response_format") or default_format
    if response_format not in formats:
        raise InvalidOptionError(
            f"unknown response_format '{response_format}': choose one of {', '.join(formats)}",
            param="response_format",
        )
    granularities = tuple(form_list(form, "timestamp_granularities")) or ("segment",)
    for g in granularities:
        if g not in GRANULARITIES:
            raise InvalidOptionError(f"unknown timestamp granularity '{g}': use word and/or segment",
                                     param="timestamp_granularities")
    temperature = _float(form, "temperature")
    if temperature is not None and not 0.0 <= temperature <= 1.0:
        raise InvalidOptionError("temperature must be between 0 and 1", param="temperature")
    names = tuple(form_list(form, "known_speaker_names"))
    references = tuple(form_list(form, "known_speaker_references"))
    if len(names) != len(references):
        raise InvalidOptionError(
            f"known_speaker_names ({len(names)}) and known_speaker_references ({len(references)}) "
            "must have the same length", param="known_speaker_references",
        )
    if len(set(names)) != len(names):
        raise InvalidOptionError("known_speaker_names must be distinct", param="known_speaker_names")
    speakers = speaker_count(form)
    wants_speakers = response_format in SPEAKER_FORMATS or bool(names) or speakers != SpeakerCount()
    overrides: dict[str, Any] = {"temperature": temperature} if temperature else {}
    options = TranscribeOptions(
        model=model,
        language=language(form),
        task=task,  # type: ignore[arg-type]
        diarize=wants_speakers if diarize is None else diarize,
        speakers=speakers,
        initial_prompt=form_value(form, "prompt") or None,
        cpu_threads=settings.cpu_threads,
        **overrides,
    )
    return AudioRequest(
        file=upload, options=options, response_format=response_format, model=model,
        granularities=granularities, stream=form_bool(form, "stream"),
        known_speaker_names=names, known_speaker_references=references,
        chunking_strategy=chunking_strategy(form),
    )


def decode_data_url(url: str, *, param: str = "known_speaker_references") -> bytes:
    """The bytes of a ``data:[<type>][;base64],<data>`` URL (raises InvalidOptionError)."""
    if not url.startswith("data:") or "," not in url:
        raise InvalidOptionError("expected a data URL such as data:audio/wav;base64,...", param=param)
    header, data = url[5:].split(",", 1)
    if not header.endswith(";base64"):
        raise InvalidOptionError("the data URL must be base64-encoded (data:audio/...;base64,...)", param=param)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidOptionError("the data URL holds invalid base64", param=param) from None
    if not raw:
        raise InvalidOptionError("the data URL is empty", param=param)
    return raw


@dataclass(frozen=True, slots=True)
class AudioUpload:
    """An upload checked cheaply in the HTTP process: its bytes and the duration its header
    declares (None when it declares none). The worker decodes it, within the limit."""

    data: bytes
    duration: float | None


async def read_audio(upload: UploadFile, settings: Settings, *, param: str = "file") -> AudioUpload:
    """Read an upload and probe it off the event loop: 413 / 400 on bad input, no decoding."""
    data = await upload.read()
    await upload.close()
    return await probe_bytes(data, settings, param=param)


async def probe_bytes(data: bytes, settings: Settings, *, param: str = "file") -> AudioUpload:
    """Admission before any decode: size, emptiness, a readable audio stream, the declared duration."""
    if len(data) > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"the upload is {len(data)} bytes; the limit is {settings.max_upload_bytes}", param=param
        )
    if not data:
        raise AudioDecodeError("the uploaded file is empty", param=param)
    try:
        duration = await asyncio.to_thread(probe_duration, data)
    except AudioDecodeError as exc:
        raise AudioDecodeError(exc.message.replace("<upload>", "the upload"), param=param) from None
    if duration is not None and duration > settings.max_duration_s:
        raise AudioTooLongError(
            f"the audio lasts {duration:.0f} s; the limit is {settings.max_duration_s:.0f} s", param=param
        )
    return AudioUpload(data, duration)


def deadline_for(settings: Settings, *uploads: AudioUpload) -> float:
    """The inference deadline for these uploads (the duration limit where none is declared)."""
    seconds = sum(u.duration if u.duration is not None else settings.max_duration_s for u in uploads)
    return settings.deadline_for(seconds)


async def known_speakers(request: AudioRequest, settings: Settings) -> dict[str, AudioUpload]:
    """name -> probed reference clip, for ``known_speaker_names[]``/``known_speaker_references[]``."""
    known = {}
    for i, (name, url) in enumerate(zip(request.known_speaker_names, request.known_speaker_references, strict=True)):
        param = f"known_speaker_references[{i}]"
        known[name] = await probe_bytes(decode_data_url(url, param=param), settings, param=param)
    return known


def audio_payload(upload: AudioUpload, known: dict[str, AudioUpload], settings: Settings,
                  owner: str | None = None) -> dict[str, Any]:
    """What the worker needs to decode a request's audio itself (bytes, not samples), and the
    speaker library of the request's key (``owner``) to name voices from."""
    return {"audio": upload.data, "known": {name: ref.data for name, ref in known.items()},
            "max_duration_s": settings.max_duration_s, "library_path": str(settings.speaker_library_for(owner))}
