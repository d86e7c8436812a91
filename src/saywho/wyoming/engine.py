"""The models behind the Wyoming server: speech -> text and a voice name, text -> speech.

``LocalEngine`` holds its own models in this process (a ``ModelManager`` that keeps
them loaded) and does the blocking work; the server calls it from worker threads,
never on the event loop. Under ``saywho serve`` the HTTP server's models live in its
supervised worker process, whose slots long transcriptions may hold for minutes; voice
commands get their own small set here instead (tiny.en, CAM++ and the Piper voice:
about 200 MB) so that they never queue behind an upload. The speaker library is
shared: both read the same SQLite file on every request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from saywho import tts
from saywho.asr import whisper as asr_stage
from saywho.diarization import embedding
from saywho.errors import InvalidOptionError, ModelNotFoundError, SpeakerLibraryError
from saywho.models import registry
from saywho.models.manager import ModelManager
from saywho.speakers.identify import IDENTIFY_THRESHOLD, similarity_matrix, speech_frames, speech_spans
from saywho.speakers.library import SpeakerLibrary
from saywho.types import TranscribeOptions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

logger = logging.getLogger(__name__)

# A voice command holds little speech; CAM++ fingerprints of under ~1 s are too noisy to
# name anyone (same-voice scores fall quickly under 2 s), so shorter speech stays unnamed.
MIN_UTTERANCE_SPEECH_S = 1.0
# Peak below this (-80 dBFS) is digital silence.
_SILENCE_PEAK = 1e-4


@dataclass(frozen=True, slots=True)
class SpeakerMatch:
    """Who spoke an utterance: the library name (None when nobody scored high enough)
    and the best cosine score against the library (None when there was nothing to compare)."""

    name: str | None
    score: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": self.score}


NOBODY = SpeakerMatch(None, None)


@dataclass(frozen=True, slots=True)
class Heard:
    text: str
    language: str
    duration: float
    speaker: SpeakerMatch


def _load(key: str) -> Any:
    kind, _, name = key.partition("|")
    if kind == "asr":
        return asr_stage.load_model(key)
    if kind == "tts":
        return tts.load_voice(name)
    raise ModelNotFoundError(f"unknown model key {key!r}")


def is_multilingual(model: str) -> bool:
    return not model.endswith(".en")


class LocalEngine:
    """Speech-to-text with the speaker's name, and Piper speech, on models held in this process.

    Safe to call from several threads; callers bound how many run at once.
    """

    def __init__(
        self,
        *,
        model: str = registry.DEFAULT_ASR_MODEL,
        voice: str = "en_US-joe-medium",
        speakers_db: str | None = None,
        cpu_threads: int = 0,
        threshold: float = IDENTIFY_THRESHOLD,
    ) -> None:
        self.model = model
        self.voice = voice
        self.library = SpeakerLibrary(speakers_db)
        self.cpu_threads = cpu_threads
        self.threshold = threshold
        self.manager = ModelManager(_load, ttl_s=-1)

    # ---------------------------------------------------------------- models

    def asr_models(self) -> list[str]:
        """Installed speech models (the default first)."""
        installed = [r["alias"] for r in registry.bundled_status() if r["kind"] == "asr" and r["state"] == "installed"]
        if self.model not in installed:
            installed.insert(0, self.model)  # a local directory or hub id the user chose
        return [self.model, *(m for m in installed if m != self.model)]

    def choose_model(self, name: str | None, language: str | None) -> str:
        """The model for a ``transcribe`` request: the one named if installed, else the default;
        a multilingual one when the language is not English and one is installed."""
        models = self.asr_models()
        chosen = name if name in models else self.model
        if language and language != "en" and not is_multilingual(chosen):
            chosen = next((m for m in models if is_multilingual(m)), chosen)
        return chosen

    def preload(self) -> None:
        """Load the default speech model, the voice and CAM++ now rather than on the first request."""
        self.manager.preload(self._asr_key(self.model))
        if self.voice in tts.installed_voices():
            self.manager.preload(f"tts|{self.voice}")
        embedding.get_model()

    def _asr_key(self, model: str) -> str:
        return asr_stage.model_key(TranscribeOptions(model=model, cpu_threads=self.cpu_threads))

    # ---------------------------------------------------------------- speech to text

    def transcribe(
        self,
        samples: np.ndarray,
        *,
        model: str | None = None,
        language: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Heard:
        """Text of a 16 kHz mono utterance and who spoke it. ``on_text`` sees each segment's text as decoded."""
        model = model or self.model
        language = language if is_multilingual(model) else "en"
        options = TranscribeOptions(model=model, language=language, diarize=False, cpu_threads=self.cpu_threads)
        with self.manager.acquire(self._asr_key(model)) as whisper:
            result = asr_stage.transcribe(
                whisper, samples, options, on_segment=(lambda s: on_text(s.text.strip())) if on_text else None
            )
        text = " ".join(s.text.strip() for s in result.segments if s.text.strip())
        speaker = self.identify(samples) if text else NOBODY
        return Heard(text=text, language=result.language, duration=result.duration, speaker=speaker)

    def identify(self, samples: np.ndarray) -> SpeakerMatch:
        """The library's best match for the voice of an utterance (NOBODY on too little speech)."""
        try:
            known = self.library.known() if self.library.exists() else {}
        except SpeakerLibraryError as exc:
            logger.warning("speaker stays anonymous: %s", exc.message)
            return NOBODY
        if not known:
            return NOBODY
        fingerprint = utterance_fingerprint(samples)
        if fingerprint is None:
            return NOBODY
        _, names, scores = similarity_matrix({"utterance": fingerprint}, known)  # (1, num_names)
        best = int(np.argmax(scores[0]))
        score = round(float(scores[0, best]), 4)
        return SpeakerMatch(names[best] if score >= self.threshold else None, score)

    # ---------------------------------------------------------------- text to speech

    def resolve_voice(self, name: str | None) -> str:
        installed = tts.installed_voices()
        if not installed:
            raise ModelNotFoundError("no text-to-speech voice is installed (pip install 'saywho[tts]')")
        if name in installed:
            return name
        return self.voice if self.voice in installed else installed[0]

    def voice_rate(self, voice: str) -> int:
        with self.manager.acquire(f"tts|{voice}") as piper_voice:
            return int(piper_voice.config.sample_rate)

    def synthesize(self, text: str, voice: str) -> Iterator[bytes]:
        """16-bit mono PCM at ``voice_rate(voice)``, one piece per sentence as Piper makes it."""
        if not text.strip():
            raise InvalidOptionError("nothing to say: the text is empty", param="text")
        from piper.config import SynthesisConfig

        with self.manager.acquire(f"tts|{voice}") as piper_voice:
            for chunk in piper_voice.synthesize(text, syn_config=SynthesisConfig()):
                yield chunk.audio_int16_bytes


def utterance_fingerprint(samples: np.ndarray) -> np.ndarray | None:
    """A unit-norm CAM++ fingerprint (192,) of the speech in a short clip, as enrolment makes
    it (VAD speech only, peak-normalised); None when it holds under ``MIN_UTTERANCE_SPEECH_S``."""
    audio = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak < _SILENCE_PEAK:
        return None
    audio = audio * np.float32(0.5 / peak)
    spans = speech_spans(audio)
    if sum(b - a for a, b in spans) < MIN_UTTERANCE_SPEECH_S:
        return None
    features = embedding.fbank(audio)  # (T, 80)
    frames = speech_frames(len(features), spans)  # speech frames, gaps cut out
    return embedding.embed_frame_sets(features, [frames])[0]

