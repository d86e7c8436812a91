"""The live engine: 16 kHz audio in small chunks -> VAD -> utterances -> incremental ASR
with a stable prefix -> online speakers -> typed events.

How it decides, step by step (``LiveSession.feed``):

1. **VAD.** Every ``vad_step_s`` of new audio, Silero VAD (bundled with faster-whisper)
   runs over the pending buffer: the audio since the last committed utterance, which is
   at most ``max_utterance_s`` plus a pause long. Silence before speech is dropped, so
   memory stays bounded however long the session runs.
2. **Utterances.** Speech followed by ``silence_duration_ms`` of silence is an
   utterance; it is committed (``SpeechStopped``, ``Committed``). Speech longer than
   ``max_utterance_s`` is committed at that length.
3. **Partials with a stable prefix** (LocalAgreement-2, as in whisper_streaming): while
   an utterance grows, it is decoded again every ``partial_interval_s`` of audio (or 1.2x
   the last decode's time, when decodes are slower than that, so the engine keeps up); the words on
   which two consecutive decodes agree are stable and sent once as a ``Delta``; the
   rest is the tentative tail (``Delta.partial``). Waiting for a second decode costs a
   whole decode interval, so a word is also stable after one decode when Whisper gave it
   at least ``stable_probability`` and it ends ``edge_guard_s`` before the decoded audio
   does (the words Whisper revises are the last ones, cut by the end of the audio), or
   before the end of speech once VAD hears a pause.
4. **Final decode** of the committed utterance (the previous utterances' text as the
   prompt, its repeated runs cut to one copy; Whisper's full 30 s window; a decode that
   loops is redone without the prompt: ``asr/loops.py``); its words beyond the stable
   prefix are the last delta; ``Completed`` holds the whole text. Partials use a short encoder context
   (``short_context``: the utterance plus 2 s), about a third of the decode time. After
   ``early_decode_ms`` of silence the utterance is decoded at once; with ``short_context``
   off, that decode is the final one when the pause then ends it (it heard all the
   speech), so the commit does not wait for a second decode.
5. **Speakers.** The committed utterance is diarized by the offline pipeline
   (segmentation, fingerprints, clustering: the speakers inside it and their turns,
   overlap included); each of its speakers joins the closest running speaker of the
   session or starts a new one (``streaming/speakers.py``; two voices of one utterance
   never join the same running speaker), and each turn becomes a
   ``SpeakerSegment`` with the words said in it (a turn without words keeps empty text:
   speech the ASR did not transcribe). Where the segmentation finds no speech in it, the
   words are grouped into pieces of about 2 s and each piece's fingerprint is assigned.

When the caller reports lag (audio waiting behind the engine) above
``max_partial_lag_s``, partial decodes are skipped until it catches up: deltas come
later, the final text is unchanged, and every event carries the lag.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from saywho.asr import whisper as asr_stage
from saywho.asr.loops import clean_prompt, looped, unlooped
from saywho.diarization import embedding
from saywho.diarization.assign import speech_time
from saywho.diarization.pipeline import diarize
from saywho.pipeline import run_asr
from saywho.streaming.events import (
    Committed,
    Completed,
    Delta,
    LiveEvent,
    SpeakerSegment,
    SpeechStarted,
    SpeechStopped,
)
from saywho.streaming.speakers import SAME_VOICE, OnlineSpeakers, live_turns
from saywho.types import SAMPLE_RATE, TranscribeOptions, Word

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from saywho.models.manager import ModelManager

logger = logging.getLogger(__name__)


# Audio kept after the end of speech found by VAD (which already pads 100 ms).
END_PADDING_S = 0.3


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """One live session's settings (OpenAI's ``turn_detection`` fields where they exist)."""

    model: str = "tiny.en"
    language: str | None = None
    prompt: str | None = None
    # server_vad: utterances end on silence. False: only ``commit()`` (or the length limit) ends one.
    turn_detection: bool = True
    threshold: float = 0.5  # Silero speech probability
    prefix_padding_ms: int = 500  # audio kept before detected speech (OpenAI's default: 300)
    silence_duration_ms: int = 500  # silence that ends an utterance
    vad_step_s: float = 0.2
    partial_interval_s: float = 0.5
    max_utterance_s: float = 15.0
    max_partial_lag_s: float = 2.0
    # A word heard once with this probability, ending edge_guard_s before the decoded audio,
    # is stable without a second decode (above 1: LocalAgreement-2 only).
    stable_probability: float = 0.8
    edge_guard_s: float = 0.5
    early_decode_ms: int = 200  # a pause this long decodes at once (reused by the commit without short_context)
    piece_s: float = 2.0  # speaker pieces inside an utterance
    # Partial decodes: Whisper's encoder reads the utterance (plus 2 s) instead of 30 s, in
    # about a third of the time (TranscribeOptions.short_context). The commit then decodes
    # the utterance again with the 30 s window for the final text: short utterances decoded
    # alone lose words with the short context (live WER 12.1 % against 7.1 % on the dev ASR
    # clips when the final text came from it).
    short_context: bool = True
    identify: bool = True
    cpu_threads: int = 0


def _norm(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def _join(words: list[Word] | tuple[Word, ...]) -> str:
    return "".join(w.text for w in words)


class LiveSession:
    """One live stream. Not thread-safe: feed it from one thread (the model manager is shared safely)."""

    def __init__(
        self,
        options: LiveOptions | None = None,
        *,
        manager: ModelManager | None = None,
        known: Callable[[], Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        self.options = options or LiveOptions()
        self.manager = manager
        self.speakers = OnlineSpeakers(known=known if self.options.identify else None)
        self._audio = np.zeros(0, dtype=np.float32)  # pending audio (16 kHz)
        self._offset = 0  # absolute sample index of _audio[0]
        self._since_vad = 0
        self._in_speech = False
        self._item_id = self._new_id()
        self._previous_item: str | None = None
        self._stable: list[Word] = []
        self._last_hyp: list[Word] = []
        self._hyp_span = (-1, -1)  # absolute samples [start, end) that _last_hyp was decoded from
        self._last_partial_end = 0  # absolute sample at which the last partial decode ended
        self._decode_s = 0.0  # how long the last partial decode took (partials never come faster)
        self._context = (self.options.prompt or "").strip()

    # ------------------------------------------------------------------ public

    @property
    def received_s(self) -> float:
        return (self._offset + len(self._audio)) / SAMPLE_RATE

    @property
    def pending_s(self) -> float:
        return len(self._audio) / SAMPLE_RATE

    def feed(self, samples: np.ndarray, *, lag_s: float = 0.0) -> list[LiveEvent]:
        """Add 16 kHz mono float32 audio; returns the events it caused."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._audio = np.concatenate([self._audio, samples])
        self._since_vad += len(samples)
        if self._since_vad < self.options.vad_step_s * SAMPLE_RATE:
            return []
        self._since_vad = 0
        return self._step(lag_s)

    def commit(self, *, lag_s: float = 0.0) -> list[LiveEvent]:
        """End the current utterance now (the client's ``input_audio_buffer.commit``)."""
        if not len(self._audio):
            return []
        events: list[LiveEvent] = []
        if not self._in_speech:
            events.append(SpeechStarted(self._item_id, self._offset / SAMPLE_RATE))
        events += self._commit(0, len(self._audio), lag_s)
        return events

    def finish(self, *, lag_s: float = 0.0) -> list[LiveEvent]:
        """End of the stream: the speech still pending becomes a last utterance."""
        if self.options.turn_detection:
            return self._step(lag_s, final=True)
        return self.commit(lag_s=lag_s)

    def clear(self) -> None:
        """Drop the pending audio (``input_audio_buffer.clear``)."""
        self._offset += len(self._audio)
        self._audio = np.zeros(0, dtype=np.float32)
        self._reset_item(new_id=self._in_speech)

    # ------------------------------------------------------------------ steps

    def _step(self, lag_s: float, final: bool = False) -> list[LiveEvent]:
        o = self.options
        max_len = int(o.max_utterance_s * SAMPLE_RATE)
        if not o.turn_detection:
            return self._commit(0, len(self._audio), lag_s) if len(self._audio) >= max_len else []
        events: list[LiveEvent] = []
        pad = int(o.prefix_padding_ms * SAMPLE_RATE / 1000)
        while len(self._audio):
            spans = self._speech_spans()
            if not spans:
                if self._in_speech and self._last_hyp:  # VAD changed its mind, but words were heard
                    events += self._commit(0, len(self._audio), lag_s)
                    break
                if self._in_speech:  # VAD changed its mind: nothing to transcribe
                    events.append(SpeechStopped(self._item_id, self.received_s))
                    self._reset_item(new_id=True)
                self._drop(max(0, len(self._audio) - pad))
                break
            first, end = spans[0]
            start = max(0, first - pad + int(0.1 * SAMPLE_RATE))  # VAD already pads 100 ms
            if not self._in_speech:
                self._in_speech = True
                events.append(SpeechStarted(self._item_id, (self._offset + start) / SAMPLE_RATE))
            silence = len(self._audio) - end
            if len(spans) > 1 or silence >= o.silence_duration_ms * SAMPLE_RATE / 1000:
                # Whisper drops a last word cut tight at the VAD's edge: keep some of the pause.
                tail = min(int(END_PADDING_S * SAMPLE_RATE), (spans[1][0] - end) // 2 if len(spans) > 1 else silence)
                events += self._commit(start, end + tail, lag_s, speech_end=end)
                continue  # more speech may already wait in the buffer
            if final:
                events += self._commit(start, len(self._audio), lag_s, speech_end=end)
                break
            if len(self._audio) - start >= max_len:  # too long: cut in the longest pause heard
                # At most max_len: a caller that fell behind may bring many seconds in one feed.
                events += self._commit(start, start + self._cut_point(max_len), lag_s)
                continue
            events += self._partial(start, lag_s, speech_end=end)
            break
        return events

    def _cut_point(self, length: int) -> int:
        """Where to end an utterance that reached the length limit (samples from its start):
        the middle of the longest pause between words in its second half, else its end."""
        words = self._last_hyp
        gaps = [(b.start - a.end, (a.end + b.start) / 2) for a, b in pairwise(words)
                if a.end * SAMPLE_RATE >= length / 2]
        if not gaps:
            return length
        return min(length, int(max(gaps)[1] * SAMPLE_RATE))

    def _speech_spans(self) -> list[tuple[int, int]]:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        o = self.options
        stamps = get_speech_timestamps(self._audio, VadOptions(
            threshold=o.threshold, min_silence_duration_ms=o.silence_duration_ms, speech_pad_ms=100,
            min_speech_duration_ms=250))
        return [(s["start"], s["end"]) for s in stamps]

    def _drop(self, samples: int) -> None:
        self._audio = self._audio[samples:]
        self._offset += samples

    def _reset_item(self, *, new_id: bool) -> None:
        self._in_speech = False
        self._stable, self._last_hyp = [], []
        self._hyp_span = (-1, -1)
        if new_id:
            self._item_id = self._new_id()

    @staticmethod
    def _new_id() -> str:
        return f"item_{uuid.uuid4().hex[:20]}"

    def _asr_options(self, *, short: bool = False, prompt: bool = True) -> TranscribeOptions:
        o = self.options
        return TranscribeOptions(model=o.model, language=o.language, diarize=False, vad_filter=False,
                                 condition_on_previous_text=False,
                                 initial_prompt=(clean_prompt(self._context) if prompt else "") or None,
                                 cpu_threads=o.cpu_threads, identify=False, short_context=short and o.short_context)

    def _decode(self, audio: np.ndarray, *, short: bool = False, prompt: bool = True) -> list[Word]:
        """Words of ``audio``; ``short``: with the short encoder context (partials while the
        speech goes on), else Whisper's 30 s window (the decode that becomes the final text);
        ``prompt``: with the session's previous text as the prompt."""
        return list(run_asr(audio, self._asr_options(short=short, prompt=prompt), manager=self.manager).words)

    def _final_decode(self, audio: np.ndarray) -> list[Word]:
        """The committed utterance's words. A decode that loops (``asr.loops``) is done again
        without the prompt, which is what usually starts a loop; if that loops as well, its
        repeated runs are cut to two copies."""
        duration = len(audio) / SAMPLE_RATE
        words = self._decode(audio)
        if looped(words, duration):
            logger.debug("final decode of %.1f s looped (%d words); decoding again without the prompt",
                         duration, len(words))
            words = self._decode(audio, prompt=False)
            if looped(words, duration):
                words = unlooped(words)
        return words

    def _partial(self, start: int, lag_s: float, speech_end: int) -> list[LiveEvent]:
        o = self.options
        now = self._offset + len(self._audio)
        interval = max(o.partial_interval_s, 1.2 * self._decode_s)
        paused = len(self._audio) - speech_end >= o.early_decode_ms * SAMPLE_RATE / 1000
        early = paused and self._hyp_span[1] < self._offset + speech_end  # the last decode missed the speech end
        if lag_s > o.max_partial_lag_s or (now - self._last_partial_end < interval * SAMPLE_RATE and not early):
            return []
        self._last_partial_end = now
        began = time.monotonic()
        hyp = self._decode(self._audio[start:], short=True)
        self._decode_s = time.monotonic() - began
        if looped(hyp, (len(self._audio) - start) / SAMPLE_RATE):  # never sent as stable words
            hyp = unlooped(hyp)
        agreed = 0
        for a, b in zip(self._last_hyp, hyp, strict=False):
            if _norm(a.text) != _norm(b.text):
                break
            agreed += 1
        # Heard once, but confidently and away from where the audio (or the speech) ends.
        edge = (speech_end - start) / SAMPLE_RATE if paused else (len(self._audio) - start) / SAMPLE_RATE - o.edge_guard_s
        while agreed < len(hyp) and hyp[agreed].probability >= o.stable_probability and hyp[agreed].end <= edge:
            agreed += 1
        self._last_hyp = hyp
        self._hyp_span = (self._offset + start, now)
        fresh = hyp[len(self._stable):agreed] if agreed > len(self._stable) else []
        self._stable += fresh
        delta = _join(fresh)
        if not self._stable and not fresh:
            delta = ""
        elif len(self._stable) == len(fresh):
            delta = delta.lstrip()
        partial = (_join(self._stable) + _join(hyp[len(self._stable):])).strip()
        if not delta and not partial:
            return []
        return [Delta(self._item_id, delta, partial, round(lag_s, 3))]

    def _commit(self, start: int, end: int, lag_s: float, speech_end: int | None = None) -> list[LiveEvent]:
        """Utterance = pending audio [start, end): decode it, name its speakers, drop it.

        ``speech_end``: where VAD heard the speech end; words Whisper finds after it (in the
        pause kept for the last word) are hallucinations ("and", "Thank you.") and dropped."""
        item = self._item_id
        t0, t1 = (self._offset + start) / SAMPLE_RATE, (self._offset + end) / SAMPLE_RATE
        audio = self._audio[start:end]
        events: list[LiveEvent] = [SpeechStopped(item, t1), Committed(item, self._previous_item, t0, t1)]
        heard = speech_end is not None and self._hyp_span[0] == self._offset + start \
            and self._hyp_span[1] >= self._offset + speech_end \
            and not self.options.short_context  # the last partial heard all the speech, with the full window
        if heard:
            words = list(self._last_hyp)
        else:
            words = self._final_decode(audio) if len(audio) >= int(0.1 * SAMPLE_RATE) else []
        if speech_end is not None:
            words = [w for w in words if w.start < (speech_end - start) / SAMPLE_RATE]
        stable_n = len(self._stable)
        tail = words[stable_n:] if len(words) > stable_n else []
        if tail:
            text = _join(tail)
            events.append(Delta(item, text.lstrip() if not stable_n else text, _join(words).strip(),
                                round(lag_s, 3)))
        transcript = _join(words).strip()
        events += self._speaker_segments(item, audio, words, t0)
        events.append(Completed(item, transcript, t0, t1, round(lag_s, 3)))
        if transcript:
            self._context = f"{self._context} {transcript}".strip()[-1000:]
        self._drop(end)
        self._previous_item = item
        self._reset_item(new_id=True)
        return events

    def _speaker_segments(self, item: str, audio: np.ndarray, words: list[Word], t0: float) -> list[LiveEvent]:
        """The utterance diarized offline (its speakers, turns, fingerprints), its speakers
        mapped onto the session's running ones, one segment per mapped turn."""
        if not words:
            return []
        found = diarize(audio)
        talk = speech_time(found.exclusive)
        mapping: dict[str, str] = {}
        vectors: dict[str, np.ndarray] = {}
        for local in sorted(found.speakers, key=lambda s: -talk.get(s, 0.0)):  # the most speech first
            vector = np.asarray(found.fingerprints.get(local, ()), dtype=np.float32)  # unit norm
            if not vector.any():
                continue
            vectors[local] = vector
            apart = {mapping[o] for o in mapping if float(vectors[o] @ vector) < SAME_VOICE}
            mapping[local] = self.speakers.assign(vector, talk.get(local, 0.0), apart=apart)
        logger.debug("utterance %.2f-%.2f s: speech %s -> %s", t0, t0 + len(audio) / SAMPLE_RATE,
                     {k: round(v, 2) for k, v in talk.items()}, mapping)
        if not mapping:  # no speech the segmentation model trusts: the words' own fingerprints
            return self._piece_segments(item, audio, words, t0)
        fallback = next(iter(mapping.values()))
        found = found.relabel({local: mapping.get(local, fallback) for local in found.speakers})
        events: list[LiveEvent] = []
        for turn, held in live_turns(found.turns, found.exclusive, words):
            events.append(SpeakerSegment(
                item, f"seg_{len(events)}", _join(held).strip(), turn.speaker, self.speakers.name_of(turn.speaker),
                round(t0 + turn.start, 3), round(t0 + turn.end, 3)))
        return events

    def _piece_segments(self, item: str, audio: np.ndarray, words: list[Word], t0: float) -> list[LiveEvent]:
        """Words grouped into pieces of about ``piece_s``, each piece's fingerprint assigned."""
        pieces = _pieces(words, self.options.piece_s)
        features = embedding.fbank(audio)  # (T, 80)
        centers = embedding.feature_frame_centers(len(features))  # (T,)
        frame_sets = [np.flatnonzero((centers >= p[0].start) & (centers < p[-1].end)) for p in pieces]
        vectors = embedding.embed_frame_sets(features, frame_sets)  # (pieces, 192); too short: zeros
        found: list[str | None] = []
        for piece, vector in zip(pieces, vectors, strict=True):
            if np.linalg.norm(vector) > 0:
                found.append(self.speakers.assign(vector, piece[-1].end - piece[0].start))
            else:  # too short to fingerprint: the speaker before it (or after it)
                found.append(found[-1] if found else None)
        fallback = next((x for x in found if x is not None), None) or self.speakers.last_label() or "Speaker_0"
        labels = [x or fallback for x in found]
        events: list[LiveEvent] = []
        run: list[Word] = []
        for i, piece in enumerate(pieces):
            run += piece
            if i + 1 == len(pieces) or labels[i + 1] != labels[i]:
                events.append(SpeakerSegment(
                    item, f"seg_{len(events)}", _join(run).strip(), labels[i], self.speakers.name_of(labels[i]),
                    round(t0 + run[0].start, 3), round(t0 + run[-1].end, 3)))
                run = []
        return events


def _pieces(words: list[Word], piece_s: float) -> list[list[Word]]:
    """Words grouped into pieces of about ``piece_s`` seconds, cut at the longest pause near that length."""
    pieces: list[list[Word]] = [[words[0]]]
    for prev, word in pairwise(words):
        current = pieces[-1]
        length = word.start - current[0].start
        gap = word.start - prev.end
        if length >= piece_s or (gap >= 0.3 and length >= piece_s / 2):
            pieces.append([word])
        else:
            current.append(word)
    return pieces


def asr_key(options: LiveOptions) -> str:
    """The model manager key this session's ASR uses (to preload it)."""
    return asr_stage.model_key(replace(TranscribeOptions(), model=options.model, cpu_threads=options.cpu_threads))
