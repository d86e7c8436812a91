"""The same audio and options give the same transcript whatever the thread policy."""

from __future__ import annotations

import numpy as np
import pytest

from saywho.diarization.assign import join_words
from saywho.types import TranscribeOptions


def test_a_repeated_full_stop_is_joined_once() -> None:
    assert join_words([" Thank", " you", " for", " watching.", "."]) == "Thank you for watching."
    assert join_words(["Well", "...", " ok", "!", "!"]) == "Well... ok!"


def test_default_decoding_is_deterministic() -> None:
    # Temperatures above 0 sample from a per-thread random generator.
    assert TranscribeOptions().temperature == 0.0


@pytest.mark.slow
def test_same_file_same_text_under_different_thread_settings() -> None:
    from saywho.evaluation.synth import available, speak
    from saywho.pipeline import transcribe

    if not available("flite:slt"):
        pytest.skip("flite not installed")
    speech = speak("flite:slt", "What joy there is in living. The birch canoe slid on the smooth planks.")
    audio = np.concatenate([speech, np.zeros(16_000 * 8, np.float32)])  # trailing silence invites "Thank you."
    texts = {threads: transcribe(audio, TranscribeOptions(diarize=False, cpu_threads=threads, beam_size=5)).text
             for threads in (1, 2)}
    assert texts[1] == texts[2]
    assert "smooth planks" in texts[1].lower() and "thank you" not in texts[1].lower()


def test_decoding_options_reach_faster_whisper() -> None:
    """CLI flags (and OpenAI's ``prompt`` / ``temperature`` form fields, test_server_unit) become
    the keyword arguments faster-whisper's ``transcribe`` gets."""
    from types import SimpleNamespace

    from saywho.asr.whisper import transcribe as run_asr
    from saywho.cli.app import build_parser
    from saywho.cli.transcribe import options_from_args

    args = build_parser().parse_args([
        "transcribe", "a.wav", "--model", "tiny.en", "--beam-size", "5", "--temperature", "0,0.2",
        "--initial-prompt", "Glossary: saywho", "--hotwords", "saywho", "--no-vad", "--condition-on-previous-text"])
    options = options_from_args(args)
    seen: dict[str, object] = {}

    class FakeWhisper:
        model = SimpleNamespace(is_multilingual=False)

        def transcribe(self, audio: np.ndarray, **kwargs: object):
            seen.update(kwargs)
            return iter(()), SimpleNamespace(language="en", language_probability=1.0)

    run_asr(FakeWhisper(), np.zeros(16_000, np.float32), options)
    assert seen["beam_size"] == 5 and seen["temperature"] == (0.0, 0.2)
    assert seen["initial_prompt"] == "Glossary: saywho" and seen["hotwords"] == "saywho"
    assert seen["vad_filter"] is False and seen["condition_on_previous_text"] is True
    assert seen["word_timestamps"] is True
