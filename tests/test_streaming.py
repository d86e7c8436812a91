"""The live engine's parts without models (resampler, online speakers, pieces, pacing),
and ``saywho live`` end to end on speech the tests make themselves."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from saywho.streaming.engine import _pieces
from saywho.streaming.resample import StreamResampler, pcm16_to_float
from saywho.streaming.sources import paced, pcm_blocks
from saywho.streaming.speakers import OnlineSpeakers
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
