"""A second ASR pass for quiet speech that diarization found and ASR did not.

faster-whisper's Silero VAD filter drops speech far below the loudest voice of a
recording (a far-field speaker, a soft backchannel). Diarization raises quiet windows
before segmentation (``segmentation.MAX_WINDOW_GAIN``) and finds such speech; this pass
decodes those stretches once more, raised to a normal level, and adds their words.
Loud stretches without words are left alone: there ASR has already judged them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from saywho.asr.whisper import AsrResult
from saywho.asr.whisper import transcribe as transcribe_audio
from saywho.types import SAMPLE_RATE, Segment, SpeakerTurn, TranscribeOptions, Word

if TYPE_CHECKING:
    from typing import Any

# A stretch of speech (diarization) at least this long with no word of ASR in it...
MIN_MISSED_S = 0.4
# ...whose peak is at most this share of the recording's peak, is decoded again.
QUIET_SHARE = 0.25
# The stretch is decoded with this much audio around it, raised to this peak, by at
# most MAX_GAIN.
PAD_S = 0.3
TARGET_PEAK = 0.5
MAX_GAIN = 32.0
# Decoded text is kept only if Whisper believes it is speech (hallucinations on noise
# have a high no-speech probability or a low mean log-probability).
MAX_NO_SPEECH_PROB = 0.6
MIN_AVG_LOGPROB = -1.0


def missed_regions(
    audio: np.ndarray, words: tuple[Word, ...], turns: tuple[SpeakerTurn, ...]
) -> list[tuple[float, float]]:
    """Quiet stretches of speech in ``turns`` that no word of ``words`` falls into."""
    if not len(audio) or not turns:
        return []
    peak = float(np.max(np.abs(audio)))
    if peak <= 0.0:
        return []
    spans: list[list[float]] = []
    for turn in sorted(turns, key=lambda t: t.start):  # the union of everyone's speech
        if spans and turn.start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], turn.end)
        else:
            spans.append([turn.start, turn.end])
    centres = np.array([(w.start + w.end) / 2 for w in words]) if words else np.zeros(0)
    out = []
    for a, b in spans:
        if b - a < MIN_MISSED_S or ((centres >= a - PAD_S) & (centres <= b + PAD_S)).any():
            continue
        piece = audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
        if len(piece) and float(np.max(np.abs(piece))) <= QUIET_SHARE * peak:
            out.append((a, b))
    return out


def transcribe_quiet(
    model: Any, audio: np.ndarray, regions: list[tuple[float, float]], options: TranscribeOptions
) -> tuple[tuple[Segment, ...], tuple[Word, ...]]:
    """Segments and words (recording times) decoded from each region, raised in level."""
    segments: list[Segment] = []
    words: list[Word] = []
    duration = len(audio) / SAMPLE_RATE
    single = replace(options, vad_filter=False, condition_on_previous_text=False, initial_prompt="")
    for a, b in regions:
        start, end = max(0.0, a - PAD_S), min(duration, b + PAD_S)
        piece = audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)].astype(np.float32)
        gain = min(MAX_GAIN, TARGET_PEAK / max(float(np.max(np.abs(piece))), 1e-9))
        result: AsrResult = transcribe_audio(model, piece * np.float32(gain), single)
        for seg in result.segments:
            if seg.no_speech_prob > MAX_NO_SPEECH_PROB or seg.avg_logprob < MIN_AVG_LOGPROB or not seg.words:
                continue
            moved = tuple(replace(w, start=round(w.start + start, 3), end=round(w.end + start, 3)) for w in seg.words)
            segments.append(replace(seg, start=round(seg.start + start, 3), end=round(seg.end + start, 3), words=moved))
            words.extend(moved)
    return tuple(segments), tuple(words)


def merged(result: AsrResult, segments: tuple[Segment, ...], words: tuple[Word, ...]) -> AsrResult:
    """``result`` with the quiet pass's segments and words put in time order."""
    if not segments:
        return result
    all_segments = sorted((*result.segments, *segments), key=lambda s: s.start)
    return replace(
        result,
        segments=tuple(replace(s, id=i) for i, s in enumerate(all_segments)),
        words=tuple(sorted((*result.words, *words), key=lambda w: w.start)),
    )
