"""The live engine's policies: VAD scored once per window, stable words matched by time,
partials of long utterances trimmed, the pause decode reused by the commit, speakers
after ``completed``, utterances cut where the speech is quietest, trailing guesses dropped."""

from __future__ import annotations

import numpy as np
import pytest

from saywho.types import SAMPLE_RATE, Word

from .conftest import require_tools


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 9 s of synthetic speech: three sentences with pauses between them."""
    require_tools("flite")
    from saywho.evaluation.synth import SENTENCES, conversation

    conv = conversation([("flite:slt", SENTENCES[0]), ("flite:slt", SENTENCES[1]), ("flite:slt", SENTENCES[2])],
                        gap_s=0.8)
    return np.asarray(conv.samples, dtype=np.float32)


def test_streaming_vad_scores_new_windows_only_and_finds_what_faster_whisper_finds(speech) -> None:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from saywho.streaming.vad import WINDOW, SpanRules, StreamingVad, speech_spans

    vad = StreamingVad()
    agree, pauses = 0, 0
    checks = list(range(8000, len(speech), 3200))
    for length in checks:
        probabilities = vad.update(speech[:length])
        assert len(probabilities) == length // WINDOW
        got = speech_spans(probabilities, length, SpanRules())
        want = [(s["start"], s["end"]) for s in get_speech_timestamps(speech[:length], VadOptions(
            threshold=0.5, min_silence_duration_ms=500, speech_pad_ms=100, min_speech_duration_ms=250))]
        if got and want and got[-1][1] < want[-1][1] == length:
            # A pause shorter than 500 ms at the end: faster-whisper runs the speech to the end
            # of the buffer, ours ends where the pause began (padded), and the pause is quiet.
            pauses += 1
            quiet_from = (got[-1][1] - 1600) // WINDOW
            assert quiet_from < len(probabilities) and (probabilities[quiet_from:] < 0.5).all()
            got[-1] = (got[-1][0], length)
        agree += got == want
    assert pauses >= 3  # the sentences' ends, seen as they grow
    # faster-whisper also scores the zero-padded last window: at most the last 32 ms differ now and then
    assert agree >= 0.9 * len(checks)
    assert len(speech_spans(vad.update(speech), len(speech), SpanRules())) == 3  # three sentences
    once = StreamingVad().update(speech)
    np.testing.assert_allclose(vad.probabilities, once, atol=1e-5)  # scored in steps = scored at once


def _scripted(words_of, speech_s: float, **options):
    """A session whose VAD hears speech until ``speech_s`` and whose decoder answers
    ``words_of(audio seconds, decode number, lead)``."""
    from saywho.streaming.engine import LiveOptions, LiveSession

    class Scripted(LiveSession):
        def _speech_spans(self):
            end = min(self._offset + len(self._audio), int(speech_s * SAMPLE_RATE)) - self._offset
            return [(0, end)] if end > 0 else []

        def _decode(self, audio, *, short=False, prompt=True, lead="", rest=True):
            self.decodes.append((len(audio) / SAMPLE_RATE, short, lead))
            return words_of(len(audio) / SAMPLE_RATE, len(self.decodes), lead)

        def _speaker_segments(self, item, audio, words, t0):
            from saywho.streaming import SpeakerSegment

            return [SpeakerSegment(item, "seg_0", "".join(w.text for w in words).strip(), "Speaker_0", None, t0, t0)]

    session = Scripted(LiveOptions(partial_interval_s=0.5, **options))
    session.decodes = []
    return session


def _feed(session, seconds: float) -> list:
    events = []
    for _ in range(int(seconds / 0.1)):
        events += session.feed(np.zeros(1600, dtype=np.float32))
    return events + session.finish() + session.flush()


def test_a_revised_stable_word_does_not_hold_back_the_words_after_it() -> None:
    """Words are 0.4 s apart; from the third decode on the decoder hears word 0 differently
    each time. Matched by position, no two decodes agree again until the commit; matched
    by time after the last stable word, the words after it still come out."""
    from saywho.streaming import Delta

    def words_of(length, n, lead):
        out = []
        for i in range(int(length / 0.4)):
            text = f" w0{'x' * n}" if (i == 0 and n >= 3) else f" w{i}"
            out.append(Word(0.4 * i, 0.4 * i + 0.35, text, 0.5))  # unsure: stable only once two decodes agree
        return out

    from saywho.streaming import Committed

    session = _scripted(words_of, 3.6, trim_after_s=100.0)
    events = _feed(session, 5.0)
    before_commit = events[:next(i for i, e in enumerate(events) if isinstance(e, Committed))]
    sent = [w for e in before_commit if isinstance(e, Delta) for w in e.delta.split()]
    assert sent == [f"w{i}" for i in range(len(sent))]
    assert len(sent) >= 7  # the words after w0 came out while the speech went on, not at the commit


def test_partials_of_a_long_utterance_decode_its_end_with_the_stable_words_as_lead() -> None:
    def words_of(length, n, lead):
        return [Word(0.4 * i, 0.4 * i + 0.35, f" w{i}", 0.95) for i in range(int(length / 0.4))]

    session = _scripted(words_of, 9.0, trim_after_s=4.0)
    _feed(session, 10.0)
    partials = [(length, lead) for length, short, lead in session.decodes if short]
    trimmed = [(length, lead) for length, lead in partials if lead]
    assert trimmed, partials
    # a trimmed partial starts 1 s before the last stable word's end: far shorter than the utterance
    assert all(length <= 3.5 for length, _ in trimmed), trimmed
    assert all(lead.split()[0] == "w0" for _, lead in trimmed)


def test_the_commit_reuses_the_pause_decode_and_completed_comes_before_the_speakers() -> None:
    from saywho.streaming import Completed, SpeakerSegment

    def words_of(length, n, lead):
        return [Word(0.4 * i, 0.4 * i + 0.35, f" w{i}", 0.95) for i in range(int(min(length, 2.0) / 0.4))]

    session = _scripted(words_of, 2.0)
    events = []
    for _ in range(40):
        events += session.feed(np.zeros(1600, dtype=np.float32))
        if any(isinstance(e, Completed) for e in events):
            break
    finals = [d for d in session.decodes if not d[1]]
    assert len(finals) == 1  # the decode made when the pause began is the final one
    assert isinstance(events[-1], Completed) and not any(isinstance(e, SpeakerSegment) for e in events)
    assert session.speakers_due
    later = session.flush()  # what the server calls once `completed` has gone out
    assert [type(e).__name__ for e in later] == ["SpeakerSegment"]
    assert later[0].item_id == events[-1].item_id
    assert not session.speakers_due and not session.flush()
    assert not session.finish()  # nothing is left behind


def test_finish_completes_the_last_utterance_without_waiting_for_its_speakers() -> None:
    """The stream ends while the speech goes on: ``finish`` commits it and returns its
    ``completed`` at once; ``flush`` then brings its speakers (``completed`` never waits for
    the diarization of its utterance, whatever ended it)."""

    def words_of(length, n, lead):
        return [Word(0.0, 0.5, " hello", 0.95)]

    session = _scripted(words_of, 10.0)
    for _ in range(15):
        session.feed(np.zeros(1600, dtype=np.float32))
    kinds = [type(e).__name__ for e in session.finish()]
    assert kinds.count("Completed") == 1 and "SpeakerSegment" not in kinds
    assert session.speakers_due
    assert [type(e).__name__ for e in session.flush()] == ["SpeakerSegment"]
    assert not session.speakers_due and not session.flush()


def test_the_final_decode_starts_early_in_the_pause_and_completed_comes_as_the_silence_ends(speech) -> None:
    """Real VAD on three sentences 0.8 s apart, a VAD step every 0.2 s: each sentence's final
    decode starts at the first step after its pause is ``early_decode_ms`` (400 ms) old, and
    the commit, at the first step after the pause is ``silence_duration_ms`` (500 ms) long,
    reuses it. Before, the speech span ran to the end of the buffer until the VAD closed it
    (544 ms of quiet): the final decode began 0.54-0.74 s into the pause and ``completed``
    came a step later, 0.74-0.94 s in."""
    from saywho.streaming import Committed, Completed
    from saywho.streaming.engine import VAD_PAD_MS, LiveOptions, LiveSession

    class Counted(LiveSession):
        def _decode(self, audio, *, short=False, prompt=True, lead="", rest=True):
            self.decodes.append((self.received_s, short))
            return [Word(0.0, 0.5, " hello", 0.95)]

        def _speaker_segments(self, item, audio, words, t0):
            return []

    session = Counted(LiveOptions(identify=False))
    session.decodes = []
    commits = []  # (speech end heard by VAD, when the final decode began, when completed came)
    for i in range(0, len(speech), 1600):
        for event in session.feed(speech[i:i + 1600]):
            if isinstance(event, Committed):
                speech_end = event.end - 0.3 - VAD_PAD_MS / 1000  # the commit keeps 0.3 s of the pause
                final = [at for at, short in session.decodes if not short]
            if isinstance(event, Completed):
                commits.append((speech_end, final, session.received_s))
                session.decodes.clear()
    assert len(commits) >= 2, commits  # the sentences before the last (the stream goes on)
    for speech_end, finals, completed in commits:
        assert len(finals) == 1, finals  # the pause's decode, reused by the commit
        assert 0.4 <= finals[0] - speech_end < 0.6 + 1e-6
        assert 0.5 <= completed - speech_end < 0.7 + 1e-6


def test_a_long_utterance_is_cut_where_the_speech_is_quietest(speech) -> None:
    """Three sentences without a pause VAD would end them at: the cut lands in the quiet
    between two of them, not at the length limit inside a word."""
    from saywho.streaming.engine import LiveOptions, LiveSession

    session = LiveSession(LiveOptions(identify=False, silence_duration_ms=2000))
    session._audio = speech.copy()
    length = len(speech) - SAMPLE_RATE // 2
    cut = session._cut_point(0, length)
    probability = session._vad.update(session._audio)
    window = cut // 512
    assert length // 2 <= cut < length
    assert probability[max(0, window - 2): window + 3].mean() < 0.35  # a pause, not speech


def test_trailing_guesses_are_dropped_from_the_final_words() -> None:
    from saywho.streaming.stable import without_trailing_guesses

    words = [Word(0.0, 0.4, " apprehension.", 0.9), Word(0.4, 0.42, " and", 0.02), Word(0.42, 0.5, " .", 0.6)]
    assert [w.text for w in without_trailing_guesses(words)] == [" apprehension."]
    assert without_trailing_guesses([Word(0.0, 0.2, " um", 0.05)]) == []
    kept = [Word(0.0, 0.3, " a", 0.05), Word(0.3, 0.6, " word", 0.9)]
    assert without_trailing_guesses(kept) == kept  # only at the end


def test_freed_heap_goes_back_after_each_utterance(monkeypatch) -> None:
    """glibc keeps freed heap; the engine trims it once an utterance's speakers are found,
    so a long session's resident memory stays flat (bench/realtime_load.py)."""
    from saywho.streaming import engine

    trims = []
    monkeypatch.setattr(engine, "trim_heap", lambda: trims.append(1))

    def words_of(length, n, lead):
        return [Word(0.0, 0.5, " hello", 0.95)]

    session = _scripted(words_of, 1.0)
    _feed(session, 2.5)
    assert trims == [1]


def _words(*spec: tuple[str, float]) -> list[Word]:
    """Words 0.4 s apart: (text, probability) each."""
    return [Word(0.4 * i, 0.4 * i + 0.35, f" {text}", p) for i, (text, p) in enumerate(spec)]


def test_sure_words_make_an_unsure_word_before_them_stable() -> None:
    from saywho.streaming.stable import firm

    new = _words(("well", 0.38), ("there", 0.98), ("is", 0.95), ("much", 0.4), ("more", 0.9), ("here", 0.99))
    # "well" alone held back everything: now the run "there is" makes it stable
    assert firm(new, [], edge=10.0, probability=0.8, bridge=0) == 0
    assert firm(new, [], edge=10.0, probability=0.8, bridge=2) == 6
    # the run must end before the edge: "more here" ends after it, so "much" stays tentative
    assert firm(new, [], edge=2.0, probability=0.8, bridge=2) == 3
    # unsure words after the last run of sure ones stay tentative
    tail = _words(("well", 0.38), ("there", 0.98), ("is", 0.95), ("much", 0.4), ("more", 0.5))
    assert firm(tail, [], edge=10.0, probability=0.8, bridge=2) == 3


def test_words_heard_by_the_last_decode_are_matched_by_text_and_time() -> None:
    from saywho.streaming.stable import firm, heard_before

    old = _words(("neither", 0.2), ("does", 0.5), ("i", 0.5), ("i", 0.4))
    new = _words(("neither", 0.3), ("did", 0.5), ("i", 0.5), ("i", 0.5), ("thought", 0.5))
    assert heard_before(new, old) == [True, False, True, True, False]
    assert firm(new, old, edge=10.0, probability=0.8, bridge=0) == 1  # the agreed prefix alone
    assert firm(new, old, edge=10.0, probability=0.8, bridge=2) == 4  # "did" between agreed words
    late = [Word(w.start + 2.0, w.end + 2.0, w.text, w.probability) for w in old]
    assert heard_before(new[1:], late) == [False, False, False, False]  # same text 2 s later: another word


def test_an_unsure_first_word_no_longer_holds_back_the_utterance() -> None:
    """Every decode hears the first word differently and unsure, the rest confidently: with
    bridging the words after it come out while the speech goes on, without it only at the commit."""
    from saywho.streaming import Committed, Delta

    def words_of(length, n, lead):
        return _words(*[(f"w0{'x' * n}", 0.3) if i == 0 else (f"w{i}", 0.95) for i in range(int(length / 0.4))])

    def sent_before_commit(bridge):
        events = _feed(_scripted(words_of, 3.6, trim_after_s=100.0, bridge_words=bridge), 5.0)
        head = events[:next(i for i, e in enumerate(events) if isinstance(e, Committed))]
        return [w for e in head if isinstance(e, Delta) for w in e.delta.split()]

    assert sent_before_commit(0) == []
    sent = sent_before_commit(2)
    assert len(sent) >= 6 and sent[1:] == [f"w{i}" for i in range(1, len(sent))]


def test_partials_give_way_as_the_lag_grows() -> None:
    from saywho.streaming.engine import LiveOptions, partial_interval

    o = LiveOptions(partial_interval_s=0.5, partial_share=0.8, max_partial_lag_s=2.0)
    assert partial_interval(o, 0.2, 0.0) == 0.5  # fast decodes: the fixed interval
    assert partial_interval(o, 0.8, 0.0) == pytest.approx(1.0)  # 0.8 s decodes take 80 % of the time
    assert partial_interval(o, 0.8, 1.0) == pytest.approx(2.0)  # 1 s behind: 40 %
    assert partial_interval(o, 0.8, 1.9) == pytest.approx(10.0)  # near the limit: a tenth of it


def test_the_words_after_the_stable_ones_are_found_by_text_at_the_seam() -> None:
    """A later decode that places the last stable word 0.4 s later does not send it again;
    a word said twice is still heard twice; a decode without the word falls back to time."""
    from saywho.streaming.stable import past

    def at(*items):  # (text, start, end)
        return [Word(s, e, f" {t}", 0.9) for t, s, e in items]

    stable = at(("well", 0.0, 0.3), ("so", 0.4, 0.6))
    later = at(("well", 0.0, 0.4), ("so", 0.6, 1.0), ("i", 1.1, 1.2), ("don't", 1.2, 1.4))
    assert [w.text for w in past(later, stable)] == [" i", " don't"]  # by time alone: " so" again
    hello = at(("hello", 0.0, 0.46))
    twice = at(("hello", 0.0, 0.44), ("hello", 0.78, 1.06), ("i", 1.4, 1.5))
    assert [w.text for w in past(twice, hello)] == [" hello", " i"]
    revised = at(("well", 0.0, 0.4), ("sew", 0.5, 0.6), ("i", 1.1, 1.2))
    assert [w.text for w in past(revised, stable)] == [" i"]  # "so" heard differently: by time
    far = at(("so", 5.0, 5.2), ("i", 5.3, 5.4))
    assert [w.text for w in past(far, stable)] == [" so", " i"]  # the same text 4.6 s later: said again
    assert past(later, []) == later


def test_a_partial_that_says_a_run_of_words_twice_is_cut_before_the_second_copy() -> None:
    from saywho.streaming.stable import before_repeat

    words = _words(*[(t, 0.9) for t in ["oh", "i'm", "from", "chicago", "oh", "i'm", "from", "chicago", "i'm", "in"]])
    assert [w.text.strip() for w in before_repeat(words)] == ["oh", "i'm", "from", "chicago"]
    said = _words(*[(t, 0.9) for t in ["hello", "hello", "i", "didn't", "know"]])
    assert before_repeat(said) == said  # a word or two said again is speech, not a loop


def test_words_that_echo_the_stable_ones_are_still_sent() -> None:
    """Said: "x y z", then (another voice) "x y z q r". A decode hears the stable "x y z"
    again before the echo: the echo is speech, not a loop, and goes out before the commit."""
    from saywho.streaming import Committed, Delta

    texts = ["x", "y", "z", "x", "y", "z", "q", "r", "s", "t"]

    def words_of(length, n, lead):  # nothing heard before 2.8 s: then the echo comes in one decode
        return _words(*[(texts[i], 0.95) for i in range(min(len(texts), int(length / 0.4)))]) if length >= 2.8 else []

    session = _scripted(words_of, 6.0, trim_after_s=100.0)
    events = [e for _ in range(38) for e in session.feed(np.zeros(1600, dtype=np.float32))]  # 3.8 s: speech goes on
    assert not any(isinstance(e, Committed) for e in events)
    assert [w for e in events if isinstance(e, Delta) for w in e.delta.split()][:6] == texts[:6]


def test_the_final_decode_of_a_long_utterance_reads_a_short_encoder_context() -> None:
    """Utterances of ``final_short_context_s`` (12 s) or more are finally decoded with the
    short encoder context (the utterance plus 2 s is most of the 30 s window by then, in
    two thirds of the time); shorter ones with the whole window."""
    from saywho.streaming import Completed

    def words_of(length, n, lead):
        return [Word(0.4 * i, 0.4 * i + 0.35, f" w{i}", 0.95) for i in range(int(min(length, 13.0) / 0.4))]

    for speech_s, short in [(13.0, True), (5.0, False)]:
        session = _scripted(words_of, speech_s, max_utterance_s=15.0)
        events = _feed(session, speech_s + 1.0)
        assert any(isinstance(e, Completed) for e in events)
        finals = [d for d in session.decodes if d[0] >= speech_s]  # the decodes that heard it all
        assert finals and all(s == short for _, s, _ in finals), (speech_s, session.decodes)


def test_a_decode_leaves_the_rest_after_a_word_near_the_end_undecoded(speech, monkeypatch) -> None:
    """faster-whisper decodes the audio after an unfinished last segment in a window of its
    own; with ``skip_rest_s`` a decode whose word ends that close to the end stops there:
    the same words up to it, one window fewer (real tiny.en on partials cut mid-speech)."""
    from dataclasses import replace

    import faster_whisper.transcribe as fw

    from saywho.pipeline import run_asr
    from saywho.streaming import LiveOptions, LiveSession

    windows: list[int] = []
    generate = fw.WhisperModel.generate_with_fallback

    def counted(self, *args, **kwargs):
        windows[-1] += 1
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(fw.WhisperModel, "generate_with_fallback", counted)
    options = LiveSession(LiveOptions())._asr_options(short=True)
    assert options.skip_rest_s == 0.5 and options.short_context
    saved = 0
    for end in range(int(1.5 * SAMPLE_RATE), len(speech), int(0.7 * SAMPLE_RATE)):
        windows.append(0)
        every = run_asr(speech[:end], replace(options, skip_rest_s=0.0)).words
        windows.append(0)
        stopped = run_asr(speech[:end], options).words
        assert stopped == every[:len(stopped)]
        assert windows[-1] <= windows[-2]
        if stopped and stopped[-1].end >= end / SAMPLE_RATE - 0.5:
            assert windows[-1] == 1
        saved += windows[-2] - windows[-1]
    assert saved >= 3
    # A client's commit or the length limit's cut may end in speech: its final decode reads it all.
    assert LiveSession(LiveOptions())._asr_options(rest=False).skip_rest_s == 0.0


def test_utterances_do_not_depend_on_how_the_audio_is_grouped(speech) -> None:
    """A server that fell behind feeds seconds at once: the VAD still steps every 0.2 s of
    audio, so the utterances (their times and their text) are those of 100 ms feeds."""
    from saywho.streaming import Completed, LiveOptions, LiveSession

    def completed(block_s: float) -> list[tuple[str, float, float]]:
        session, block, out = LiveSession(LiveOptions(identify=False)), int(block_s * SAMPLE_RATE), []
        for i in range(0, len(speech), block):
            out += session.feed(speech[i:i + block])
        out += session.finish()
        return [(e.transcript, e.start, e.end) for e in out if isinstance(e, Completed)]

    paced = completed(0.1)
    assert len(paced) == 3 and all(text for text, _, _ in paced)
    assert completed(1.3) == paced
    assert completed(0.07) == paced


def test_a_call_that_brings_a_step_and_a_half_still_gets_its_partial() -> None:
    """Partials run at the last VAD step a call brings, even when audio remains after it."""
    from saywho.streaming import LiveOptions, LiveSession

    session = LiveSession(LiveOptions(identify=False))
    seen: list[bool] = []
    session._step = lambda lag_s, final=False, partials=True: seen.append(partials) or []  # type: ignore[method-assign]
    session.feed(np.zeros(int(0.5 * SAMPLE_RATE), np.float32))  # steps at 0.2 and 0.4 s, 0.1 s left over
    assert seen == [False, True]
    session.feed(np.zeros(int(0.1 * SAMPLE_RATE), np.float32))  # completes the step at 0.6 s
    assert seen == [False, True, True]
