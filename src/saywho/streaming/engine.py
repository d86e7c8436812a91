"""The live engine: 16 kHz audio in small chunks -> VAD -> utterances -> incremental ASR
with a stable prefix -> online speakers -> typed events.

How it decides, step by step (``LiveSession.feed``; docs/realtime.md says why):

1. **VAD.** Every ``vad_step_s`` of new audio, Silero VAD scores the windows of the pending
   buffer it has not scored yet (``streaming/vad.py``). Silence before speech is dropped,
   so memory stays bounded however long the session runs.
2. **Utterances.** Speech followed by ``silence_duration_ms`` of silence is an utterance;
   it is committed (``SpeechStopped``, ``Committed``). Speech longer than
   ``max_utterance_s`` is cut at the quietest moment of its second half.
3. **Partials with a stable prefix** (LocalAgreement-2, as in whisper_streaming): while
   an utterance grows, it is decoded again every ``partial_interval_s`` of audio (or the
   last decode's time over ``partial_share``, a share that shrinks with the lag), with a
   short encoder context. After the last stable word's end, the words on which two
   consecutive decodes agree (same text, about the same time) are sure; so is a word
   heard once with at least ``stable_probability`` that ends ``edge_guard_s`` before the
   decoded audio (or, in a pause, the speech) ends. The stable words run to the last
   ``bridge_words`` sure words in a row and are sent once as a ``Delta``; the rest is
   the tentative tail (``Delta.partial``). Past ``trim_after_s`` of stable words,
   partials decode only the utterance's end.
4. **Final decode.** After ``early_decode_ms`` of silence (timed from the first quiet
   window: ``speech_spans`` ends a span where a pause began) the utterance is decoded with
   Whisper's full 30 s window (the short context from ``final_short_context_s`` of
   utterance on) and the previous text as the prompt (a decode that loops
   is redone without it: ``asr/loops.py``); the commit reuses that decode when no speech
   came since. Its words beyond the stable ones are the last delta; ``Completed`` holds
   the whole text, without trailing guesses.
5. **Speakers**, on the call after the commit (``Completed`` does not wait for them):
   the utterance is diarized by the offline pipeline and each of its speakers joins the
   closest running speaker or starts one (``streaming/speakers.py``); each turn becomes
   a ``SpeakerSegment`` with the words said in it.

When the caller reports lag (audio waiting behind the engine) above
``max_partial_lag_s``, partial decodes are skipped until it catches up: deltas come
later, the final text is unchanged, and every event carries the lag.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from saywho.asr import whisper as asr_stage
from saywho.asr.loops import clean_prompt, looped, unlooped
from saywho.pipeline import run_asr
from saywho.runtime import trim_heap
from saywho.streaming.events import Committed, Completed, Delta, LiveEvent, SpeechStarted, SpeechStopped
from saywho.streaming.speakers import OnlineSpeakers, join_words, piece_segments, utterance_segments
from saywho.streaming.stable import before_repeat, firm, past, without_trailing_guesses
from saywho.streaming.vad import WINDOW, SpanRules, StreamingVad, speech_spans
from saywho.types import SAMPLE_RATE, TranscribeOptions, Word

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from saywho.models.manager import ModelManager

logger = logging.getLogger(__name__)


# VAD's speech spans are padded by this much on each side: a pause the VAD heard begins
# this long before the end of its span.
VAD_PAD_MS = 100
_VAD_PAD = VAD_PAD_MS * SAMPLE_RATE // 1000  # samples
# Audio kept after the end of speech found by VAD (which already pads VAD_PAD_MS).
END_PADDING_S = 0.3
# A partial that decodes only the end of an utterance starts this long before the last
# stable word ends: the words there are heard again, and matched by time.
TRIM_OVERLAP_S = 1.0


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
    # Partial decodes take at most this share of the time (a decode of 0.5 s: one every
    # 0.5 s / partial_share of audio), leaving the rest to the final decodes and speakers;
    # less as the lag grows (``partial_interval``).
    partial_share: float = 0.8
    # A word heard once with this probability, ending edge_guard_s before the decoded audio,
    # is stable without a second decode (above 1: LocalAgreement-2 only).
    stable_probability: float = 0.8
    edge_guard_s: float = 0.5
    # A run of this many sure words (agreed or confident, before the edge) makes the unsure
    # words before it stable as well (0: only an unbroken run of sure words is stable).
    bridge_words: int = 2
    # A pause this long decodes the utterance at once, as the commit will (reused by it when no
    # speech came since). Never before the pause holds the END_PADDING_S the commit keeps:
    # cut 0.1 s after the speech, tiny.en added "and then we'll see you in the next one."
    early_decode_ms: int = 400
    # Once the stable words reach this far into an utterance, partials decode only its end:
    # from TRIM_OVERLAP_S before the last stable word (a decode of a 14 s utterance takes
    # about three times one of 4 s). Above max_utterance_s: always the whole utterance.
    trim_after_s: float = 4.0
    piece_s: float = 2.0  # speaker pieces inside an utterance
    # Partial decodes: Whisper's encoder reads the utterance (plus 2 s) instead of 30 s, in
    # about a third of the time (TranscribeOptions.short_context). The commit then decodes
    # the utterance again with the 30 s window for the final text: short utterances decoded
    # alone lose words with the short context (live WER 12.1 % against 7.1 % on the dev ASR
    # clips when the final text came from it).
    short_context: bool = True
    # The final decode of an utterance this long uses the short context too (the utterance
    # plus 2 s is most of the 30 s window by then): 0.38 s against 0.55 s for 13 s of speech,
    # and those long decodes are the slowest `completed` events. Shorter utterances keep the
    # full window (see short_context). Infinity: never.
    final_short_context_s: float = 12.0
    # A decode stops once a word ends this close to the end of its audio (partials: the
    # rest lies in the edge guard; final decodes at a pause: in the 0.4 s of pause kept, plus
    # 0.1 s). faster-whisper would decode that rest in a window of its own, from the last
    # word on, in 90 % of partials: a fragment or a guess, for half of a partial's time.
    skip_rest_s: float = 0.5
    identify: bool = True
    cpu_threads: int = 0


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
        self._vad = StreamingVad()  # speech probabilities of _audio's windows
        # A committed utterance whose speakers are found on the next call: (item, audio, words, start s).
        self._speakers_due: tuple[str, np.ndarray, list[Word], float] | None = None
        self._offset = 0  # absolute sample index of _audio[0]
        self._since_vad = 0
        self._in_speech = False
        self._item_id = self._new_id()
        self._previous_item: str | None = None
        self._stable: list[Word] = []
        self._last_hyp: list[Word] = []
        self._hyp_span = (-1, -1)  # absolute samples [start, end) that _last_hyp was decoded from
        # The final decode done when a pause began: (absolute start, speech end, words).
        self._final: tuple[int, int, list[Word]] | None = None
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
        events = self._due_speakers()
        # One VAD step per vad_step_s of audio however the caller groups it (a server that
        # fell behind brings seconds in one call): where utterances begin and end, and so
        # their text, do not depend on the load. Partials only at the call's last step.
        step = max(1, int(self.options.vad_step_s * SAMPLE_RATE))
        done = 0
        while done < len(samples):
            take = min(len(samples) - done, max(1, step - self._since_vad))
            self._audio = np.concatenate([self._audio, samples[done:done + take]])
            self._since_vad += take
            done += take
            if self._since_vad >= step:
                self._since_vad = 0
                events += self._step(lag_s, partials=len(samples) - done < step)  # no step after it
        return events

    def commit(self, *, lag_s: float = 0.0) -> list[LiveEvent]:
        """End the current utterance now (the client's ``input_audio_buffer.commit``). Its
        ``Completed`` does not wait for its speakers: ``flush()`` brings them."""
        if not len(self._audio):
            return []
        events = self._due_speakers()
        if not self._in_speech:
            events.append(SpeechStarted(self._item_id, self._offset / SAMPLE_RATE))
        return events + self._commit(0, len(self._audio), lag_s)

    def finish(self, *, lag_s: float = 0.0) -> list[LiveEvent]:
        """End of the stream: the speech still pending becomes a last utterance. As with
        ``commit``, its speakers come from ``flush()``, after its ``Completed`` has gone out."""
        if self.options.turn_detection:
            return self._due_speakers() + self._step(lag_s, final=True)
        return self.commit(lag_s=lag_s) or self._due_speakers()

    @property
    def speakers_due(self) -> bool:
        """Whether a committed utterance's speaker segments are still to come."""
        return self._speakers_due is not None

    def flush(self) -> list[LiveEvent]:
        """The speaker segments of the last committed utterance, if not sent yet. A commit
        (by VAD in ``feed``, by ``commit`` or by ``finish``) returns ``Completed`` without
        them; the next call (``feed``, ``commit`` or this one) brings them, so that a caller
        can send ``Completed`` first. After ``finish``, call this for the last ones."""
        return self._due_speakers()

    def clear(self) -> None:
        """Drop the pending audio (``input_audio_buffer.clear``)."""
        self._drop(len(self._audio))
        self._reset_item(new_id=self._in_speech)

    # ------------------------------------------------------------------ steps

    def _step(self, lag_s: float, final: bool = False, partials: bool = True) -> list[LiveEvent]:
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
            start = max(0, first - pad + _VAD_PAD)  # VAD already pads
            if not self._in_speech:
                self._in_speech = True
                events.append(SpeechStarted(self._item_id, (self._offset + start) / SAMPLE_RATE))
            silence = len(self._audio) - end + _VAD_PAD  # since the VAD heard the pause begin
            if len(spans) > 1 or silence >= o.silence_duration_ms * SAMPLE_RATE / 1000:
                # Whisper drops a last word cut tight at the VAD's edge: keep some of the pause.
                tail = min(int(END_PADDING_S * SAMPLE_RATE), (spans[1][0] - end) // 2 if len(spans) > 1 else len(self._audio) - end)
                events += self._commit(start, end + tail, lag_s, speech_end=end)
                continue  # more speech may already wait in the buffer
            if final:
                events += self._commit(start, len(self._audio), lag_s, speech_end=end)
                break
            if len(self._audio) - start >= max_len:  # too long: cut in the longest pause heard
                # At most max_len: a caller that fell behind may bring many seconds in one feed.
                events += self._commit(start, start + self._cut_point(start, max_len), lag_s)
                continue
            if partials:
                events += self._partial(start, lag_s, speech_end=end, pause=silence)
            break
        return events

    def _cut_point(self, start: int, length: int) -> int:
        """Where to end an utterance that reached the length limit (samples from ``start``):
        the quietest moment of its second half, where Silero's speech probability (averaged
        over 160 ms) is lowest: in read or fluent speech VAD hears no pause at all, but the
        probability dips between phrases. Not the partial decode's word times: with the
        short encoder context they can be half a second early, and a cut there splits a word."""
        probability = self._vad.update(self._audio)
        first, last = (start + length // 2) // WINDOW, (start + length) // WINDOW
        smooth = np.convolve(probability[max(0, first - 2):last + 2], np.ones(5) / 5, mode="same")[2:-2]
        if len(smooth) < 3:
            return length
        return min(length, (first + int(np.argmin(smooth))) * WINDOW + WINDOW // 2 - start)

    def _speech_spans(self) -> list[tuple[int, int]]:
        o = self.options
        probabilities = self._vad.update(self._audio)
        return speech_spans(probabilities, len(self._audio), SpanRules(
            threshold=o.threshold, min_silence_ms=o.silence_duration_ms, pad_ms=VAD_PAD_MS, min_speech_ms=250))

    def _drop(self, samples: int) -> None:
        self._audio = self._audio[samples:]
        self._offset += samples
        if samples:
            self._vad.reset()  # its windows start where the buffer starts

    def _reset_item(self, *, new_id: bool) -> None:
        self._in_speech = False
        self._stable, self._last_hyp = [], []
        self._hyp_span = (-1, -1)
        self._final = None
        if new_id:
            self._item_id = self._new_id()

    @staticmethod
    def _new_id() -> str:
        return f"item_{uuid.uuid4().hex[:20]}"

    def _asr_options(self, *, short: bool = False, prompt: bool = True, lead: str = "",
                     rest: bool = True) -> TranscribeOptions:
        o = self.options
        text = f"{self._context if prompt else ''} {lead}".strip()
        return TranscribeOptions(model=o.model, language=o.language, diarize=False, vad_filter=False,
                                 condition_on_previous_text=False,
                                 initial_prompt=clean_prompt(text) or None,
                                 cpu_threads=o.cpu_threads, identify=False, short_context=short and o.short_context,
                                 skip_rest_s=o.skip_rest_s if rest else 0.0)

    def _decode(self, audio: np.ndarray, *, short: bool = False, prompt: bool = True, lead: str = "",
                rest: bool = True) -> list[Word]:
        """Words of ``audio``; ``short``: with the short encoder context (partials while the
        speech goes on), else Whisper's 30 s window (the decode that becomes the final text);
        ``prompt``: with the session's previous text as the prompt; ``lead``: the words
        heard before ``audio`` starts, after that prompt; ``rest``: whether the rest after a
        word ending within ``skip_rest_s`` of the end may be left undecoded."""
        options = self._asr_options(short=short, prompt=prompt, lead=lead, rest=rest)
        return list(run_asr(audio, options, manager=self.manager).words)

    def _final_decode(self, audio: np.ndarray, *, paused: bool) -> list[Word]:
        """The committed utterance's words. A decode that loops (``asr.loops``) is done again
        without the prompt, which is what usually starts a loop; if that loops as well, its
        repeated runs are cut to two copies. ``paused``: the audio ends in the pause the VAD
        heard (the rest after the last words may be left undecoded); else it may end in speech
        (a client's commit, the length limit's cut)."""
        duration = len(audio) / SAMPLE_RATE
        words = self._decode(audio, short=duration >= self.options.final_short_context_s, rest=paused)
        if looped(words, duration):
            logger.debug("final decode of %.1f s looped (%d words); decoding again without the prompt",
                         duration, len(words))
            words = self._decode(audio, prompt=False, rest=paused)
            if looped(words, duration):
                words = unlooped(words)
        return words

    def _partial(self, start: int, lag_s: float, speech_end: int, pause: int) -> list[LiveEvent]:
        """A partial decode of the growing utterance, or its final decode once ``pause``
        (samples of quiet since the speech paused) is ``early_decode_ms`` long."""
        o = self.options
        now = self._offset + len(self._audio)
        interval = partial_interval(o, self._decode_s, lag_s)
        paused = pause >= o.early_decode_ms * SAMPLE_RATE / 1000 and \
            len(self._audio) - speech_end >= END_PADDING_S * SAMPLE_RATE
        # The pause's final decode is not done yet (when it is, nothing new is heard until the speech goes on).
        early = paused and (self._final is None or self._final[:2] != (self._offset + start, self._offset + speech_end))
        if paused and not early:
            return []
        if lag_s > o.max_partial_lag_s or (now - self._last_partial_end < interval * SAMPLE_RATE and not early):
            return []
        self._last_partial_end = now
        # Words are matched by time after the last stable word, never by position: a decode
        # that revises a stable word ("hear" -> "heard") must not hold back the words after it.
        stable_end = self._stable[-1].end if self._stable else -1.0
        skip = max(0.0, stable_end - TRIM_OVERLAP_S) if stable_end >= o.trim_after_s else 0.0
        began = time.monotonic()
        if early:  # a pause: the decode the commit needs, done now and kept for it
            skip = 0.0
            end = speech_end + int(END_PADDING_S * SAMPLE_RATE)  # the audio the commit will decode
            hyp = self._final_decode(self._audio[start:end], paused=True)
            self._final = (self._offset + start, self._offset + speech_end, hyp)
        else:
            hyp = self._decode(self._audio[start + int(skip * SAMPLE_RATE):], short=True,
                               lead=join_words(self._stable) if skip else "")
            if looped(hyp, (len(self._audio) - start) / SAMPLE_RATE - skip):  # never sent as stable words
                hyp = unlooped(hyp)
        self._decode_s = time.monotonic() - began
        if skip:
            hyp = [replace(w, start=round(w.start + skip, 3), end=round(w.end + skip, 3)) for w in hyp]
        new = before_repeat(past(hyp, self._stable))  # the words it heard before them may repeat
        edge = (speech_end - start) / SAMPLE_RATE if paused else (len(self._audio) - start) / SAMPLE_RATE - o.edge_guard_s
        agreed = firm(new, past(self._last_hyp, self._stable), edge, o.stable_probability, o.bridge_words)
        self._last_hyp = hyp
        self._hyp_span = (self._offset + start + int(skip * SAMPLE_RATE), now)
        fresh = new[:agreed]
        delta = join_words(fresh)
        if not self._stable:
            delta = delta.lstrip()
        self._stable += fresh
        partial = (join_words(self._stable) + join_words(new[agreed:])).strip()
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
        final = self._final
        if speech_end is not None and final is not None and final[:2] == (self._offset + start, self._offset + speech_end):
            words = list(final[2])  # decoded when the pause began, and no speech came since
        else:
            words = self._final_decode(audio, paused=speech_end is not None) if len(audio) >= int(0.1 * SAMPLE_RATE) else []
        if speech_end is not None:
            words = [w for w in words if w.start < (speech_end - start) / SAMPLE_RATE]
        words = without_trailing_guesses(words)
        tail = past(words, self._stable)
        if tail:
            text = join_words(tail)
            events.append(Delta(item, text if self._stable else text.lstrip(), join_words(words).strip(),
                                round(lag_s, 3)))
        transcript = join_words(words).strip()
        events.append(Completed(item, transcript, t0, t1, round(lag_s, 3)))
        events += self._due_speakers()  # an earlier utterance's, when one buffer held two
        self._speakers_due = (item, audio, words, t0)
        if transcript:
            self._context = f"{self._context} {transcript}".strip()[-1000:]
        self._drop(end)
        self._previous_item = item
        self._reset_item(new_id=True)
        return events

    def _due_speakers(self) -> list[LiveEvent]:
        """The speaker segments of the last committed utterance, if not sent yet. They are
        found on the call after its commit, so that ``Completed`` goes out without waiting
        for the diarization of the utterance."""
        if self._speakers_due is None:
            return []
        due, self._speakers_due = self._speakers_due, None
        events = self._speaker_segments(*due)
        trim_heap()  # the utterance's decode and diarization freed much: resident memory stays flat
        return events

    def _speaker_segments(self, item: str, audio: np.ndarray, words: list[Word], t0: float) -> list[LiveEvent]:
        return list(utterance_segments(self.speakers, item, audio, words, t0, piece_s=self.options.piece_s))

    def _piece_segments(self, item: str, audio: np.ndarray, words: list[Word], t0: float) -> list[LiveEvent]:
        return list(piece_segments(self.speakers, item, audio, words, t0, piece_s=self.options.piece_s))


def partial_interval(options: LiveOptions, decode_s: float, lag_s: float) -> float:
    """Seconds of audio between two partial decodes: ``partial_interval_s``, or the last
    decode's time over its share of the time. Behind the audio, partials give way to the
    final decodes and speakers: the share shrinks with the lag, to a tenth near
    ``max_partial_lag_s`` (beyond it partials stop). A fixed share of 0.8 let a loaded
    2-core machine fall behind on every long utterance (word latency median 4.3-6.1 s
    against 3.0-3.7 s on the same files, the same hour)."""
    share = options.partial_share * max(0.1, 1.0 - lag_s / options.max_partial_lag_s)
    return max(options.partial_interval_s, decode_s / share)


def asr_key(options: LiveOptions) -> str:
    """The model manager key this session's ASR uses (to preload it)."""
    return asr_stage.model_key(replace(TranscribeOptions(), model=options.model, cpu_threads=options.cpu_threads))
