"""One way to store options and results: generated from the dataclasses, versioned, lossless."""

from __future__ import annotations

import dataclasses
import json

import pytest

from saywho import serialize
from saywho.errors import InvalidOptionError
from saywho.jobs.store import options_from_dict, options_to_dict, public_options
from saywho.types import (
    Diarization,
    DiarizeOptions,
    Segment,
    SpeakerCount,
    SpeakerInfo,
    SpeakerTurn,
    TranscribeOptions,
    Transcript,
    Word,
)


def _every_field_changed() -> TranscribeOptions:
    """TranscribeOptions with no field at its default (fails when a field is added
    here without a non-default value, so the round trip below covers it)."""
    options = TranscribeOptions(
        model="base", language="fr", task="translate", diarize=False, speakers=SpeakerCount(min=2, max=5),
        initial_prompt="Glossary: saywho", hotwords="saywho", temperature=(0.0, 0.3), condition_on_previous_text=True,
        beam_size=5, vad_filter=False, device="cuda",
        compute_type="float16", cpu_threads=3, identify=False, block_gap_s=0.7, short_context=True, skip_rest_s=0.5,
    )
    defaults = TranscribeOptions()
    same = [f.name for f in dataclasses.fields(options) if getattr(options, f.name) == getattr(defaults, f.name)]
    assert not same, f"give these fields a non-default value in this test: {same}"
    return options


def _transcript() -> Transcript:
    words = (Word(0.0, 0.4, " Hello", 0.9, "Speaker_0"), Word(0.5, 0.9, " there.", 0.8, "Speaker_1"))
    asr = Segment(0, 0.0, 0.9, " Hello there.", words=tuple(dataclasses.replace(w, speaker=None) for w in words),
                  seek=0, tokens=(1, 2, 3), temperature=0.2, avg_logprob=-0.3, compression_ratio=1.1,
                  no_speech_prob=0.01)
    diarization = Diarization(
        duration=1.0, turns=(SpeakerTurn(0.0, 0.45, "Speaker_0"), SpeakerTurn(0.4, 1.0, "Speaker_1")),
        exclusive=(SpeakerTurn(0.0, 0.45, "Speaker_0"), SpeakerTurn(0.45, 1.0, "Speaker_1")),
        speakers=("Speaker_0", "Speaker_1"), fingerprints={"Speaker_0": (0.6, 0.8), "Speaker_1": (1.0, 0.0)},
    )
    return Transcript(
        duration=1.0, language="en", text="Hello there.",
        segments=(Segment(0, 0.0, 0.4, "Hello", words=words[:1], speaker="Speaker_0"),
                  Segment(1, 0.5, 0.9, "there.", words=words[1:], speaker="Speaker_1")),
        words=words, speakers=(SpeakerInfo("Speaker_0", "Ada", 0.45, 0.71), SpeakerInfo("Speaker_1", None, 0.55)),
        asr_segments=(asr,), diarization=diarization, models={"asr": "faster-whisper:tiny.en"}, task="transcribe",
        warnings=("truncated",),
    )


@pytest.mark.parametrize("value", [_every_field_changed(), TranscribeOptions(), DiarizeOptions(SpeakerCount(num=3)),
                                   _transcript()])
def test_every_field_survives_a_json_round_trip(value) -> None:
    data = json.loads(json.dumps(serialize.dump(value)))
    assert data["schema"] == serialize.SCHEMA_VERSION
    assert serialize.load(type(value), data) == value


def test_temperature_as_a_list_comes_back_as_a_tuple() -> None:
    options = TranscribeOptions(temperature=(0.0, 0.5))
    back = serialize.load(TranscribeOptions, json.loads(json.dumps(serialize.dump(options))))
    assert back.temperature == (0.0, 0.5)


def test_a_foreign_schema_or_unknown_field_is_refused() -> None:
    data = serialize.dump(TranscribeOptions())
    with pytest.raises(InvalidOptionError, match="schema"):
        serialize.load(TranscribeOptions, {**data, "schema": 99})
    with pytest.raises(InvalidOptionError, match="unknown fields"):
        serialize.load(TranscribeOptions, {**data, "from_the_future": 1})
    with pytest.raises(InvalidOptionError):
        serialize.load(TranscribeOptions, {**data, "task": "dance"})


def test_jobs_keep_every_option_but_the_servers_threads() -> None:
    options = _every_field_changed()
    stored = json.loads(json.dumps(options_to_dict(options)))
    assert options_from_dict(stored, cpu_threads=2) == dataclasses.replace(options, cpu_threads=2)


def test_jobs_stored_before_the_schema_still_load() -> None:
    legacy = {"model": "base", "language": "de", "task": "transcribe", "diarize": True, "num_speakers": 3,
              "min_speakers": None, "max_speakers": None, "prompt": "hi", "temperature": [0.0, 0.2],
              "identify": False}
    options = options_from_dict(legacy)
    assert (options.model, options.language, options.speakers.num, options.initial_prompt) == ("base", "de", 3, "hi")
    assert options.temperature == (0.0, 0.2) and options.identify is False


def test_the_api_view_uses_openai_field_names() -> None:
    view = public_options(options_to_dict(TranscribeOptions(speakers=SpeakerCount(num=4), initial_prompt="x")))
    assert (view["num_speakers"], view["prompt"]) == (4, "x")
    assert "speakers" not in view and "cpu_threads" not in view and "schema" not in view
