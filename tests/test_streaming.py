"""The live engine's parts without models (resampler, online speakers, pieces, pacing),
and ``saywho live`` end to end on speech the tests make themselves."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from saywho.streaming.resample import StreamResampler, pcm16_to_float
from saywho.streaming.sources import paced, pcm_blocks
from saywho.streaming.speakers import OnlineSpeakers
from saywho.streaming.speakers import word_pieces as _pieces
from saywho.types import Word

from .conftest import require_tools


def test_resampler_gives_the_same_samples_however_the_stream_is_cut() -> None:
    from scipy.signal import resample_poly

    rng = np.random.default_rng(0)
    x = rng.standard_normal(24_000 * 2).astype(np.float32) * 0.1
    whole = resample_poly(x, 2, 3)
    r = StreamResampler(24_000)
    cuts = [0, 1, 7, 2400, 2401, 9000, 30_000, len(x)]
    out = np.concatenate([r(x[a:b]) for a, b in itertools.pairwise(cuts)] + [r.flush()])
    assert len(out) == len(whole)
    inner = slice(500, len(whole) - 500)  # the very start and end see padding either way
    np.testing.assert_allclose(out[inner], whole[inner], atol=1e-5)
    assert np.array_equal(StreamResampler(16_000)(x[:10]), x[:10])


def test_pcm16_rejects_odd_bytes_and_pcm_blocks_joins_them() -> None:
    import io

    from saywho.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError):
        pcm16_to_float(b"\x00")
    data = (np.arange(3200, dtype="<i2") * 5).tobytes()
    blocks = list(pcm_blocks(io.BytesIO(data), rate=16_000, block_s=0.0101))  # odd-sized reads
    assert sum(len(b) for b in blocks) == 3200


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_online_speakers_join_start_and_name() -> None:
    rng = np.random.default_rng(1)
    a, b = _unit(rng.standard_normal(192)), _unit(rng.standard_normal(192))
    near = lambda v: _unit(v + 0.3 * _unit(rng.standard_normal(192)))  # noqa: E731
    speakers = OnlineSpeakers(known=lambda: {"Ada": np.stack([a])})
    labels = [speakers.assign(near(a), 2.0), speakers.assign(near(b), 2.0), speakers.assign(near(a), 2.0),
              speakers.assign(near(b), 0.5), speakers.assign(near(b), 2.0)]
    assert labels == ["Speaker_0", "Speaker_1", "Speaker_0", "Speaker_1", "Speaker_1"]
    assert speakers.name_of("Speaker_0") == "Ada" and speakers.name_of("Speaker_1") is None
    # a short unknown voice never starts a speaker of its own
    c = _unit(rng.standard_normal(192))
    assert speakers.assign(c, 0.5) in ("Speaker_0", "Speaker_1")
    assert len(speakers.summary()) == 2


def test_a_voice_kept_apart_from_a_close_speaker_starts_its_own() -> None:
    """Two voices of one utterance never share a running speaker, even when the second is
    short and close enough to join the first's speaker on its own."""
    rng = np.random.default_rng(1)
    a, other = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 192)))
    b = 0.6 * a + 0.8 * other  # cosine 0.6 with a: over JOIN_THRESHOLD
    speakers = OnlineSpeakers()
    first = speakers.assign(a, 3.0)
    assert speakers.assign(b, 0.5) == first  # alone, it joins
    assert speakers.assign(b, 0.5, apart={first}) == "Speaker_1"  # kept apart: its own speaker
    assert speakers.assign(b, 2.0, apart={first}) == "Speaker_1"  # and later speech of it joins that one


def test_pieces_cut_near_the_target_length_at_pauses() -> None:
    words = [Word(start=i * 0.4, end=i * 0.4 + 0.3, text=f" w{i}") for i in range(20)]  # 8 s
    pieces = _pieces(words, 2.0)
    assert [w for p in pieces for w in p] == words
    assert all(p[-1].end - p[0].start <= 2.4 for p in pieces)


def test_paced_holds_blocks_back_and_reports_lag() -> None:
    now = [0.0]
    slept: list[float] = []
    blocks = [np.zeros(1600, dtype=np.float32)] * 3

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    out = list(paced(iter(blocks), clock=lambda: now[0], sleep=sleep))
    assert [round(s, 3) for s in slept] == [0.1, 0.1, 0.1] and all(lag == 0 for _, lag in out)
    now[0] = 0.0
    late = paced(iter(blocks), wait=False, clock=lambda: now[0])
    next(late)
    now[0] = 5.0
    assert next(late)[1] == pytest.approx(4.8)


@pytest.mark.slow
def test_saywho_live_prints_speaker_lines_and_json(tmp_path) -> None:
    require_tools("flite")
    from saywho.evaluation.synth import SENTENCES, conversation

    wav = conversation([("flite:slt", SENTENCES[0]), ("flite:rms", SENTENCES[1])]).write(tmp_path / "c.wav")
    cmd = [sys.executable, "-m", "saywho", "live", str(wav), "--no-identify"]
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert text.returncode == 0, text.stderr
    lines = [line for line in text.stdout.splitlines() if line.startswith("[")]
    assert lines and all("Speaker_" in line for line in lines)
    # raw PCM on stdin, JSON lines
    from saywho.audio.decode import load_audio

    pcm = (load_audio(wav).samples * 32767).astype("<i2").tobytes()
    out = subprocess.run([*cmd[:4], "-", "--json", "--no-identify"], input=pcm, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    kinds = {e["type"] for e in events}
    assert {"SpeechStarted", "Committed", "SpeakerSegment", "Completed"} <= kinds
    # a source that does not exist: one line, non-zero
    bad = subprocess.run([*cmd[:4], str(tmp_path / "missing.wav")], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_live_labels_map_onto_final_speakers_by_shared_time() -> None:
    from saywho.streaming.handoff import carried_names, map_labels
    from saywho.types import SpeakerTurn as T

    live = [T(0, 4, "Speaker_0"), T(4, 9, "Speaker_1"), T(9, 12, "Speaker_0"), T(12, 13, "Speaker_2")]
    final = [T(0, 4.5, "Speaker_1"), T(4.5, 9, "Speaker_0"), T(9, 13, "Speaker_1")]
    assert map_labels(live, final) == {"Speaker_0": "Speaker_1", "Speaker_1": "Speaker_0"}
    assert carried_names(live, final, {"Speaker_0": "Ada", "Speaker_2": "Bo"}) == {"Speaker_1": "Ada"}
    assert map_labels([], final) == {}
    # the live session split one voice: the unnamed part does not take the name's speaker
    split = [T(0, 3, "Speaker_0"), T(3, 10, "Speaker_1")]
    assert carried_names(split, [T(0, 10, "Speaker_0")], {"Speaker_0": "Ada"}) == {"Speaker_0": "Ada"}


def test_live_turns_hold_their_speakers_words_and_keep_wordless_speech() -> None:
    from saywho.streaming.speakers import live_turns
    from saywho.types import SpeakerTurn as T

    words = [Word(0.1, 0.4, " So", 0.9), Word(0.5, 0.9, " I", 0.9), Word(1.0, 1.4, " think.", 0.9),
             Word(2.1, 2.5, " Yes", 0.9), Word(2.6, 3.0, " right.", 0.9)]
    # Speaker_1 holds 1.8-3.2 s; Speaker_0 holds the start, in two turns that touch, and a
    # backchannel under Speaker_1 (overlap) that the ASR did not transcribe.
    turns = [T(0.0, 0.95, "Speaker_0"), T(0.95, 1.5, "Speaker_0"), T(1.8, 3.2, "Speaker_1"), T(2.2, 2.6, "Speaker_0")]
    exclusive = [T(0.0, 1.5, "Speaker_0"), T(1.8, 3.2, "Speaker_1")]
    got = [(t.start, t.end, t.speaker, "".join(w.text for w in held)) for t, held in live_turns(turns, exclusive, words)]
    assert got == [(0.0, 1.5, "Speaker_0", " So I think."), (1.8, 3.2, "Speaker_1", " Yes right."),
                   (2.2, 2.6, "Speaker_0", "")]


def test_each_utterance_is_diarized_and_its_speakers_keep_their_running_labels(monkeypatch) -> None:
    """Two utterances of the same two voices: the second's local labels (swapped) map back
    onto the labels the first one started; text goes with the turn that says it."""
    from saywho.streaming import SpeakerSegment, engine, speakers
    from saywho.types import Diarization
    from saywho.types import SpeakerTurn as T

    rng = np.random.default_rng(0)
    a, b = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 192)))
    utterances = iter([
        Diarization(4.0, (T(0.0, 2.0, "Speaker_0"), T(2.2, 4.0, "Speaker_1")),
                    (T(0.0, 2.0, "Speaker_0"), T(2.2, 4.0, "Speaker_1")), ("Speaker_0", "Speaker_1"),
                    {"Speaker_0": tuple(a), "Speaker_1": tuple(b)}),
        Diarization(4.0, (T(0.0, 1.0, "Speaker_0"), T(1.2, 4.0, "Speaker_1")),
                    (T(0.0, 1.0, "Speaker_0"), T(1.2, 4.0, "Speaker_1")), ("Speaker_0", "Speaker_1"),
                    {"Speaker_0": tuple(b), "Speaker_1": tuple(a)}),
    ])
    monkeypatch.setattr(speakers, "diarize", lambda audio: next(utterances))
    session = engine.LiveSession(engine.LiveOptions(identify=False))
    words = [Word(0.2, 0.8, " one", 0.9), Word(2.5, 3.0, " two", 0.9)]
    audio = np.zeros(64000, dtype=np.float32)
    first = [(e.speaker, e.text, e.start) for e in session._speaker_segments("item_a", audio, words, 10.0)
             if isinstance(e, SpeakerSegment)]
    second = [(e.speaker, e.text, e.start) for e in session._speaker_segments("item_b", audio, words, 20.0)
              if isinstance(e, SpeakerSegment)]
    assert first == [("Speaker_0", "one", 10.0), ("Speaker_1", "two", 12.2)]
    assert second == [("Speaker_1", "one", 20.0), ("Speaker_0", "two", 21.2)]


class _ScriptedSession:
    """A ``LiveSession`` whose VAD hears speech until ``speech_s`` and whose decoder knows
    the words (0.4 s apart); the word cut by the end of the audio is misheard, unsure."""

    @staticmethod
    def make(speech_s: float, **options):
        from saywho.streaming.engine import LiveOptions, LiveSession
        from saywho.types import SAMPLE_RATE

        class Scripted(LiveSession):
            decodes: list[float]

            def _speech_spans(self):
                end = min(self._offset + len(self._audio), int(speech_s * SAMPLE_RATE)) - self._offset
                return [(0, end)] if end > 0 else []

            def _decode(self, audio, **kwargs):
                length = len(audio) / SAMPLE_RATE
                self.decodes.append(length)
                words = []
                for i in range(int(speech_s / 0.4)):
                    start, end = 0.4 * i, 0.4 * i + 0.35
                    if end <= length:
                        words.append(Word(start, end, f" w{i}", 0.95))
                    elif start < length:
                        words.append(Word(start, length, f" x{i}", 0.3))
                return words

            def _speaker_segments(self, item, audio, words, t0):
                return []

        session = Scripted(LiveOptions(partial_interval_s=0.5, **options))
        session.decodes = []
        return session


def _run_scripted(session, seconds: float):
    """Feed silence-valued blocks (the scripted VAD decides); each delta's words with the
    length of the decode that sent them, and each transcript with the decodes so far."""
    from saywho.streaming import Completed, Delta

    sent, completed = [], []
    for _ in range(int(seconds / 0.1)):
        for event in session.feed(np.zeros(1600, dtype=np.float32)):
            if isinstance(event, Delta) and event.delta:
                sent += [(word, session.decodes[-1], len(session.decodes)) for word in event.delta.split()]
            elif isinstance(event, Completed):
                completed.append((event.transcript, len(session.decodes)))
    return sent, completed


def test_confident_words_are_stable_after_one_decode_and_the_commit_reuses_the_pause_decode() -> None:
    session = _ScriptedSession.make(3.2)
    sent, completed = _run_scripted(session, 4.5)
    assert [w for w, _, _ in sent] == [f"w{i}" for i in range(8)]  # never the misheard "x" words
    # each word goes out with the first decode that heard it 0.5 s (edge_guard_s) before the
    # audio's end, or the pause after it: no second decode waited for (decodes come every 0.6 s)
    for word, decoded_s, _ in sent:
        end = 0.4 * int(word[1:]) + 0.35
        assert decoded_s <= min(end + 0.5, 3.2 + 0.2) + 0.6 + 1e-6, (word, decoded_s)
    # one utterance; the decode made in the pause is the final one: no decode after it
    assert [t for t, _ in completed] == [" ".join(f"w{i}" for i in range(8))]
    decodes_at_commit = completed[0][1]
    assert session.decodes[decodes_at_commit - 1] >= 3.2  # it heard the whole speech
    assert len(session.decodes) == decodes_at_commit


def test_local_agreement_only_waits_for_two_decodes() -> None:
    session = _ScriptedSession.make(3.2, stable_probability=2.0, early_decode_ms=10_000)
    sent, completed = _run_scripted(session, 4.5)
    assert all(k >= 2 for _, _, k in sent)
    first = {w: 0.4 * int(w[1:]) + 0.35 for w, _, _ in sent}
    # a word waits until a second decode agrees: its emitting decode saw it with time to spare
    assert all(decoded_s >= first[w] + 0.5 for w, decoded_s, _ in sent[:-1]), sent
    assert [t for t, _ in completed] == [" ".join(f"w{i}" for i in range(8))]


def test_audio_that_arrives_late_in_one_block_still_makes_utterances_of_at_most_the_limit() -> None:
    """A caller that fell behind hands over many seconds at once (the server joins queued
    appends): continuous speech is still committed in pieces of at most max_utterance_s."""
    from saywho.streaming import Committed

    session = _ScriptedSession.make(40.0, max_utterance_s=15.0)
    events = session.feed(np.zeros(16_000, dtype=np.float32))  # 1 s, in time
    events += session.feed(np.zeros(16_000 * 24, dtype=np.float32), lag_s=24.0)  # 24 s in one block
    events += session.finish()
    items = [e for e in events if isinstance(e, Committed)]
    assert len(items) >= 2
    assert all(e.end - e.start <= 15.0 + 1e-6 for e in items), [(e.start, e.end) for e in items]
    assert items[-1].end == pytest.approx(25.0, abs=0.01)


def test_an_utterance_without_words_has_no_speaker_pieces() -> None:
    """A committed utterance whose words were all dropped (heard after the speech's end)
    gives no segments, rather than an IndexError in the speaker step."""
    from saywho.streaming.speakers import piece_segments, utterance_segments

    audio = np.zeros(16_000, dtype=np.float32)
    assert piece_segments(OnlineSpeakers(), "item_0", audio, [], 0.0) == []
    assert utterance_segments(OnlineSpeakers(), "item_0", audio, [], 0.0) == []
