"""The ``info`` answer to ``describe``: the speech models with their languages and the voices."""

from __future__ import annotations

import importlib.metadata
import logging

from wyoming.info import AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice

from saywho import __version__
from saywho.models.registry import BUNDLED

logger = logging.getLogger(__name__)

SAYWHO = Attribution(name="saywho", url="https://pypi.org/project/saywho/")
WHISPER = Attribution(name="OpenAI Whisper via faster-whisper (SYSTRAN)", url="https://github.com/SYSTRAN/faster-whisper")
PIPER = Attribution(name="rhasspy (Piper)", url="https://github.com/rhasspy/piper")


def whisper_languages(model: str) -> list[str]:
    """Languages of a Whisper model: English for ``*.en``, else every language Whisper knows."""
    if model.endswith(".en"):
        return ["en"]
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return sorted(_LANGUAGE_CODES)


def voice_languages(voice: str) -> list[str]:
    """Piper voices are named ``<lang>_<REGION>-<name>-<quality>``."""
    code = voice.split("-", 1)[0]
    return [code] if "_" in code else ["en_US"]


def build_info(asr_models: list[str], voices: list[str], *, stream_transcript: bool = True) -> Info:
    """What this server offers; the first model and voice are the defaults."""
    models = [
        AsrModel(
            name=name,
            attribution=WHISPER,
            installed=True,
            description=BUNDLED[name].description if name in BUNDLED else f"faster-whisper {name}",
            version=_package_version(name),
            languages=whisper_languages(name),
        )
        for name in asr_models
    ]
    tts_voices = [
        TtsVoice(
            name=voice,
            attribution=PIPER,
            installed=True,
            description=BUNDLED[voice].description if voice in BUNDLED else voice,
            version=_package_version(voice),
            languages=voice_languages(voice),
        )
        for voice in voices
    ]
    asr = AsrProgram(
        name="saywho",
        attribution=SAYWHO,
        installed=True,
        description="faster-whisper speech-to-text that also names the speaker from saywho's library "
        "(transcript data: speaker.name, speaker.score)",
        version=__version__,
        models=models,
        supports_transcript_streaming=stream_transcript,
        requires_external_vad=True,
    )
    programs = [
        TtsProgram(
            name="saywho-piper",
            attribution=SAYWHO,
            installed=True,
            description="Piper text-to-speech (bundled voice)",
            version=__version__,
            voices=tts_voices,
            supports_synthesize_streaming=True,
        )
    ] if tts_voices else []
    return Info(asr=[asr], tts=programs)


def _package_version(name: str) -> str | None:
    """The version of the package that ships a bundled model (None for a user's own directory)."""
    model = BUNDLED.get(name)
    if model is None:
        return None
    package = model.package.split("/", 1)[0].split(" ", 1)[0]
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
