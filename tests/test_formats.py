"""Writers: every format, OpenAI shapes, and the saywho json round trip."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from saywho.errors import InvalidOptionError
from saywho.formats import CLI_FORMATS, WRITERS, render, transcript_from_dict, transcript_to_dict
from saywho.types import Diarization, Segment, SpeakerInfo, SpeakerTurn, Transcript, Word


def _transcript(names: dict[str, str] | None = None) -> Transcript:
    names = names or {}
    w = [Word(0.5, 0.9, " Hello", 0.9, "Speaker_0"), Word(1.0, 1.4, " there.", 0.8, "Speaker_0"),
         Word(2.0, 2.5, " Hi", 0.95, "Speaker_1"), Word(2.6, 3.1, " Bob!", 0.9, "Speaker_1")]
    segs = (Segment(0, 0.5, 1.4, "Hello there.", tuple(w[:2]), "Speaker_0"),
            Segment(1, 2.0, 3.1, "Hi Bob!", tuple(w[2:]), "Speaker_1"))
    asr = (Segment(0, 0.0, 3.2, " Hello there. Hi Bob!", tuple(w), None, 0, (50364, 2425), 0.0, -0.2, 1.1, 0.01),)
    turns = (SpeakerTurn(0.4, 1.5, "Speaker_0"), SpeakerTurn(1.9, 3.2, "Speaker_1"))
    d = Diarization(3.5, turns, turns, ("Speaker_0", "Speaker_1"), {"Speaker_0": (1.0, 0.0), "Speaker_1": (0.0, 1.0)})
    speakers = tuple(SpeakerInfo(lab, names.get(lab), 1.1, 0.8 if lab in names else None)
                     for lab in ("Speaker_0", "Speaker_1"))
    return Transcript(3.5, "en", "Hello there. Hi Bob!", segs, tuple(w), speakers, asr, d,
                      {"asr": "faster-whisper:tiny.en"})


def test_every_cli_format_renders() -> None:
    t = _transcript()
    for fmt in CLI_FORMATS:
        assert render(t, fmt).strip()


def test_txt_shows_who_said_what() -> None:
    assert render(_transcript(), "txt") == (
        "[0:00.5 - 0:01.4] Speaker_0: Hello there.\n[0:02.0 - 0:03.1] Speaker_1: Hi Bob!\n"
    )


def test_names_replace_labels_everywhere() -> None:
    t = _transcript({"Speaker_1": "Alice"})
    assert "Alice: Hi Bob!" in render(t, "txt")
    assert "[Alice] Hi Bob!" in render(t, "srt")
    assert "<v Alice>Hi Bob!" in render(t, "vtt")
    assert " Alice <NA>" in render(t, "rttm")
    segs = json.loads(render(t, "diarized_json"))["segments"]
    assert [s["speaker"] for s in segs] == ["A", "Alice"]


def test_srt_and_vtt_timing() -> None:
    srt = render(_transcript(), "srt")
    assert srt.startswith("1\n00:00:00,500 --> 00:00:01,400\n[Speaker_0] Hello there.\n")
    vtt = render(_transcript(), "vtt")
    assert vtt.startswith("WEBVTT\n") and "00:00:02.000 --> 00:00:03.100" in vtt


def test_rttm_lines() -> None:
    lines = render(_transcript(), "rttm", uri="meeting").splitlines()
    assert lines[0] == "SPEAKER meeting 1 0.400 1.100 <NA> <NA> Speaker_0 <NA> <NA>"


def test_verbose_json_is_openai_shaped() -> None:
    body = json.loads(render(_transcript(), "verbose_json", granularities=("word", "segment")))
    assert body["task"] == "transcribe" and body["language"] == "english" and body["duration"] == 3.5
    seg = body["segments"][0]
    assert set(seg) == {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                        "compression_ratio", "no_speech_prob"}
    assert body["words"][0] == {"word": "Hello", "start": 0.5, "end": 0.9}
    assert "words" not in json.loads(render(_transcript(), "verbose_json"))


def test_verbose_and_diarized_json_parse_with_openai_types() -> None:
    openai_types = pytest.importorskip("openai.types.audio")
    openai_types.TranscriptionVerbose.model_validate_json(render(_transcript(), "verbose_json",
                                                                 granularities=("word", "segment")))
    d = openai_types.TranscriptionDiarized.model_validate_json(render(_transcript(), "diarized_json"))
    assert [s.speaker for s in d.segments] == ["A", "B"]
    assert d.segments[0].type == "transcript.text.segment"


def test_json_round_trip() -> None:
    t = _transcript({"Speaker_0": "Bob"})
    again = transcript_from_dict(json.loads(render(t, "json")))
    # The ASR's own segments are stored without words (the words live in the speaker segments).
    expected = replace(t, asr_segments=tuple(replace(s, words=()) for s in t.asr_segments))
    assert again == expected


def test_transcript_to_dict_has_words_with_speakers() -> None:
    d = transcript_to_dict(_transcript())
    assert d["segments"][1]["words"][0] == {"word": " Hi", "start": 2.0, "end": 2.5, "probability": 0.95,
                                            "speaker": "Speaker_1"}
    assert d["diarization"]["speakers"] == ["Speaker_0", "Speaker_1"]


def test_unknown_format_and_bad_json() -> None:
    with pytest.raises(InvalidOptionError, match="unknown format"):
        render(_transcript(), "docx")
    with pytest.raises(InvalidOptionError):
        transcript_from_dict({"segments": "nope"})
    assert set(CLI_FORMATS) <= set(WRITERS)


def test_speaker_letters_have_no_cap() -> None:
    from saywho.formats import _letters

    assert [_letters(i) for i in (0, 1, 25, 26, 27)] == ["A", "B", "Z", "AA", "AB"]
