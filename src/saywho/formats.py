"""Writers: txt, json, srt, vtt, rttm, verbose_json, diarized_json (and OpenAI's json/text).

Every writer takes a Transcript and returns text. ``json`` is saywho's full result
(and ``transcript_from_dict`` reads it back); ``verbose_json``, ``diarized_json``,
``openai_json`` and ``text`` follow OpenAI's audio API shapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saywho import __version__
from saywho.diarization.assign import join_words
from saywho.errors import InvalidOptionError
from saywho.types import Diarization, Segment, SpeakerInfo, SpeakerTurn, Transcript, Word

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

# Whisper language codes -> the lower-case names OpenAI's verbose_json uses.
_LANGUAGE_NAMES = {
    "en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "nl": "dutch",
    "pt": "portuguese", "ru": "russian", "zh": "chinese", "ja": "japanese", "ko": "korean",
    "pl": "polish", "tr": "turkish", "sv": "swedish", "uk": "ukrainian", "ar": "arabic", "hi": "hindi",
    "cs": "czech", "da": "danish", "fi": "finnish", "el": "greek", "he": "hebrew", "hu": "hungarian",
    "id": "indonesian", "no": "norwegian", "ro": "romanian", "vi": "vietnamese", "ca": "catalan",
}

MAX_CUE_S = 7.0
MAX_CUE_CHARS = 84


def language_name(code: str) -> str:
    return _LANGUAGE_NAMES.get(code, code)


def _ts(seconds: float, sep: str = ",", hours: bool = True) -> str:
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}" if hours or h else f"{m:02d}:{s:02d}{sep}{ms:03d}"


def _clock(seconds: float) -> str:
    """Short time for people: m:ss.s or h:mm:ss.s."""
    tenths = max(0, round(seconds * 10))
    h, rem = divmod(tenths, 36_000)
    m, rem = divmod(rem, 600)
    s = rem / 10
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m}:{s:04.1f}"


def _label(t: Transcript, speaker: str | None) -> str | None:
    return t.speaker_name(speaker)


def write_txt(t: Transcript, **_: Any) -> str:
    """Who said what, one speaker block a line."""
    lines = []
    for seg in t.segments:
        who = _label(t, seg.speaker)
        prefix = f"[{_clock(seg.start)} - {_clock(seg.end)}] "
        lines.append(prefix + (f"{who}: " if who else "") + seg.text.strip())
    return "\n".join(lines) + ("\n" if lines else "")


def write_text(t: Transcript, **_: Any) -> str:
    """OpenAI's ``text``: the transcript, no timing."""
    return t.text.strip() + "\n"


def _cues(t: Transcript) -> list[tuple[float, float, str | None, str]]:
    """Subtitle cues: speaker blocks split into readable pieces."""
    cues = []
    for seg in t.segments:
        who = _label(t, seg.speaker)
        if not seg.words:
            cues.append((seg.start, seg.end, who, seg.text.strip()))
            continue
        piece: list[Word] = []
        for w in seg.words:
            if piece:
                text = join_words([*(x.text for x in piece), w.text], t.language)
                if w.end - piece[0].start > MAX_CUE_S or len(text) > MAX_CUE_CHARS:
                    cues.append((piece[0].start, piece[-1].end, who, join_words((x.text for x in piece), t.language)))
                    piece = []
            piece.append(w)
        if piece:
            cues.append((piece[0].start, piece[-1].end, who, join_words((x.text for x in piece), t.language)))
    return cues


def write_srt(t: Transcript, **_: Any) -> str:
    out = []
    for i, (start, end, who, text) in enumerate(_cues(t), start=1):
        out.append(f"{i}\n{_ts(start)} --> {_ts(end)}\n" + (f"[{who}] " if who else "") + f"{text}\n")
    return "\n".join(out)


def write_vtt(t: Transcript, **_: Any) -> str:
    out = ["WEBVTT\n"]
    for start, end, who, text in _cues(t):
        voice = f"<v {who}>" if who else ""
        out.append(f"{_ts(start, '.')} --> {_ts(end, '.')}\n{voice}{text}\n")
    return "\n".join(out)


def write_rttm(t: Transcript, *, uri: str = "audio", **_: Any) -> str:
    """NIST RTTM of the overlap-aware speaker turns (names replace labels when known)."""
    uri = uri.replace(" ", "_") or "audio"
    turns = t.diarization.turns if t.diarization else ()
    lines = []
    for turn in turns:
        who = (_label(t, turn.speaker) or turn.speaker).replace(" ", "_")
        lines.append(f"SPEAKER {uri} 1 {turn.start:.3f} {turn.duration:.3f} <NA> <NA> {who} <NA> <NA>")
    return "\n".join(lines) + ("\n" if lines else "")


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"


def openai_json(t: Transcript, **_: Any) -> dict[str, Any]:
    return {"text": t.text, "usage": {"type": "duration", "seconds": round(t.duration, 3)}}


def verbose_json(t: Transcript, *, granularities: Sequence[str] = ("segment",), **_: Any) -> dict[str, Any]:
    """OpenAI's ``verbose_json`` (whisper-1 shape); words when granularity ``word``."""
    body: dict[str, Any] = {
        "task": t.task,
        "language": language_name(t.language),
        "duration": round(t.duration, 3),
        "text": t.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {
                "id": s.id, "seek": s.seek, "start": s.start, "end": s.end, "text": s.text,
                "tokens": list(s.tokens), "temperature": s.temperature, "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob,
            }
            for s in t.asr_segments
        ]
    if "word" in granularities:
        body["words"] = [{"word": w.text.strip(), "start": w.start, "end": w.end} for w in t.words]
    body["usage"] = {"type": "duration", "seconds": round(t.duration, 3)}
    return body


def openai_speaker_labels(t: Transcript) -> dict[str, str]:
    """Labels as OpenAI gives them: known names, else A, B, ... in order of appearance."""
    labels: dict[str, str] = {}
    letters = 0
    order = [s.label for s in t.speakers] or list(dict.fromkeys(s.speaker for s in t.segments if s.speaker))
    for label in order:
        name = next((s.name for s in t.speakers if s.label == label and s.name), None)
        if name:
            labels[label] = name
        else:
            labels[label] = _letters(letters)
            letters += 1
    return labels


def _letters(n: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: no cap on the number of speakers."""
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(65 + r) + out
    return out


def diarized_json(t: Transcript, **_: Any) -> dict[str, Any]:
    """OpenAI's ``diarized_json`` (gpt-4o-transcribe-diarize shape)."""
    labels = openai_speaker_labels(t)
    return {
        "task": "transcribe",
        "duration": round(t.duration, 3),
        "text": t.text,
        "segments": [
            {
                "type": "transcript.text.segment",
                "id": f"seg_{s.id}",
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "speaker": labels.get(s.speaker or "", s.speaker or "A"),
            }
            for s in t.segments
        ],
        "usage": {"type": "duration", "seconds": round(t.duration, 3)},
    }


def _word_dict(w: Word) -> dict[str, Any]:
    return {"word": w.text, "start": w.start, "end": w.end, "probability": w.probability, "speaker": w.speaker}


def _turns(turns: Iterable[SpeakerTurn]) -> list[dict[str, Any]]:
    return [{"start": round(x.start, 3), "end": round(x.end, 3), "speaker": x.speaker} for x in turns]


def transcript_to_dict(t: Transcript) -> dict[str, Any]:
    """saywho's full result: speakers, segments with words, turns, models."""
    d = t.diarization
    return {
        "saywho_version": __version__,
        "task": t.task,
        "language": t.language,
        "duration": t.duration,
        "text": t.text,
        "speakers": [
            {"label": s.label, "name": s.name, "display": s.display, "speech_s": s.speech_s, "score": s.score}
            for s in t.speakers
        ],
        "segments": [
            {"id": s.id, "start": s.start, "end": s.end, "speaker": s.speaker,
             "name": _label(t, s.speaker), "text": s.text, "words": [_word_dict(w) for w in s.words]}
            for s in t.segments
        ],
        "asr_segments": [
            {"id": s.id, "seek": s.seek, "start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens),
             "temperature": s.temperature, "avg_logprob": s.avg_logprob,
             "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}
            for s in t.asr_segments
        ],
        "diarization": None if d is None else {
            "duration": d.duration,
            "speakers": list(d.speakers),
            "turns": _turns(d.turns),
            "exclusive_turns": _turns(d.exclusive),
            "fingerprints": {k: [round(float(x), 6) for x in v] for k, v in d.fingerprints.items()},
        },
        "models": t.models,
        "warnings": list(t.warnings),
    }


def transcript_from_dict(data: dict[str, Any]) -> Transcript:
    """Read saywho's ``json`` back into a Transcript (raises InvalidOptionError if malformed)."""
    try:
        segments = tuple(
            Segment(
                id=s["id"], start=s["start"], end=s["end"], text=s["text"], speaker=s.get("speaker"),
                words=tuple(Word(w["start"], w["end"], w["word"], w.get("probability", 1.0), w.get("speaker"))
                            for w in s.get("words", ())),
            )
            for s in data["segments"]
        )
        asr_segments = tuple(
            Segment(id=s["id"], start=s["start"], end=s["end"], text=s["text"], seek=s.get("seek", 0),
                    tokens=tuple(s.get("tokens", ())), temperature=s.get("temperature", 0.0),
                    avg_logprob=s.get("avg_logprob", 0.0), compression_ratio=s.get("compression_ratio", 0.0),
                    no_speech_prob=s.get("no_speech_prob", 0.0))
            for s in data.get("asr_segments", ())
        )
        d = data.get("diarization")
        diarization = None
        if d is not None:
            diarization = Diarization(
                duration=d["duration"],
                turns=tuple(SpeakerTurn(x["start"], x["end"], x["speaker"]) for x in d["turns"]),
                exclusive=tuple(SpeakerTurn(x["start"], x["end"], x["speaker"]) for x in d["exclusive_turns"]),
                speakers=tuple(d["speakers"]),
                fingerprints={k: tuple(v) for k, v in d.get("fingerprints", {}).items()},
            )
        return Transcript(
            duration=data["duration"],
            language=data["language"],
            text=data["text"],
            segments=segments,
            words=tuple(w for s in segments for w in s.words),
            speakers=tuple(SpeakerInfo(s["label"], s.get("name"), s.get("speech_s", 0.0), s.get("score"))
                           for s in data.get("speakers", ())),
            asr_segments=asr_segments,
            diarization=diarization,
            models=dict(data.get("models", {})),
            task=data.get("task", "transcribe"),
            warnings=tuple(data.get("warnings", ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidOptionError(f"not a saywho JSON result ({type(exc).__name__}: {exc})") from None


def write_json(t: Transcript, **_: Any) -> str:
    return _json(transcript_to_dict(t))


@dataclass(frozen=True, slots=True)
class Writer:
    name: str
    extension: str
    media_type: str
    render: Callable[..., str]


def _dumps(fn: Callable[..., dict[str, Any]]) -> Callable[..., str]:
    return lambda t, **kw: _json(fn(t, **kw))


WRITERS: dict[str, Writer] = {
    w.name: w
    for w in (
        Writer("txt", "txt", "text/plain; charset=utf-8", write_txt),
        Writer("json", "json", "application/json", write_json),
        Writer("srt", "srt", "application/x-subrip; charset=utf-8", write_srt),
        Writer("vtt", "vtt", "text/vtt; charset=utf-8", write_vtt),
        Writer("rttm", "rttm", "text/plain; charset=utf-8", write_rttm),
        Writer("verbose_json", "json", "application/json", _dumps(verbose_json)),
        Writer("diarized_json", "json", "application/json", _dumps(diarized_json)),
        # OpenAI's plain formats (the server's response_format=json / text).
        Writer("openai_json", "json", "application/json", _dumps(openai_json)),
        Writer("text", "txt", "text/plain; charset=utf-8", write_text),
    )
}

# Who spoke when alone (``saywho diarize``): RTTM as pyannote writes it, JSON, plain lines.
DIARIZATION_FORMATS = ("rttm", "json", "txt")


def render_diarization(d: Diarization, fmt: str, *, uri: str = "audio") -> str:
    """A Diarization as ``rttm`` (overlap-aware turns, NIST RTTM), ``json`` (turns,
    exclusive turns, speakers with their speech time and fingerprints) or ``txt``
    (``start end speaker`` per turn, seconds)."""
    if fmt == "rttm":
        return write_rttm(Transcript(duration=d.duration, language="", text="", segments=(), words=(),
                                     diarization=d), uri=uri)
    if fmt == "txt":
        return "".join(f"{t.start:.3f}\t{t.end:.3f}\t{t.speaker}\n" for t in d.turns)
    if fmt == "json":
        talk: dict[str, float] = {}
        for t in d.turns:
            talk[t.speaker] = talk.get(t.speaker, 0.0) + t.duration
        return _json({
            "uri": uri,
            "duration": round(d.duration, 3),
            "speakers": [{"label": s, "speech_s": round(talk.get(s, 0.0), 3),
                          "fingerprint": list(d.fingerprints.get(s, ()))} for s in d.speakers],
            "turns": _turns(d.turns),
            "exclusive_turns": _turns(d.exclusive),
        })
    raise InvalidOptionError(f"unknown format '{fmt}': choose one of {', '.join(DIARIZATION_FORMATS)}",
                             param="format")


CLI_FORMATS = ("txt", "json", "srt", "vtt", "rttm", "verbose_json", "diarized_json")


def get_writer(name: str) -> Writer:
    try:
        return WRITERS[name]
    except KeyError:
        raise InvalidOptionError(
            f"unknown format '{name}': choose one of {', '.join(CLI_FORMATS)}", param="response_format"
        ) from None


def render(t: Transcript, fmt: str, **options: Any) -> str:
    """Render a transcript in the named format."""
    return get_writer(fmt).render(t, **options)
