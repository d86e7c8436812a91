"""Speaker count: estimation (AHC / NME-SC), hints honoured exactly, short-speech
speakers kept, soft segmentation onset; dev-set checks when ../shared is present."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from saywho.diarization import clustering, segmentation, voices
from saywho.types import SpeakerCount

diarization = importlib.import_module("saywho.diarization.pipeline")
ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "dev" / "diarization"


def _voices(num_voices, per_voice, noise=0.15, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.linalg.qr(rng.normal(size=(192, num_voices)))[0].T
    x = np.concatenate([c + noise * rng.normal(size=(per_voice, 192)) / np.sqrt(192) * 4 for c in centers])
    return x, np.repeat(np.arange(num_voices), per_voice)


@pytest.mark.parametrize("k", [2, 4, 6, 8])
def test_nme_sc_estimates_the_count(k):
    x, truth = _voices(k, 8, seed=k)
    labels = clustering.spectral(x)
    assert labels.max() + 1 == k
    assert len(set(zip(labels, truth, strict=True))) == k


def test_nme_sc_honours_hints():
    x, _ = _voices(4, 8)
    assert clustering.spectral(x, SpeakerCount(num=3)).max() + 1 == 3
    assert clustering.spectral(x, SpeakerCount(max=2)).max() + 1 == 2
    assert clustering.spectral(x, SpeakerCount(min=5)).max() + 1 == 5


def test_a_short_speech_speaker_is_kept_when_distinct():
    """A voice with 0.5 s of speech is its own speaker when it sounds unlike the rest."""
    x, truth = _voices(3, 6)
    weights = np.where(truth == 2, 0.5 / 6, 1.0)
    labels = clustering.cluster(x, weights=weights, min_cluster_weight=0.25)
    assert labels.max() + 1 == 3


def test_fold_small_keeps_the_hinted_count():
    x, truth = _voices(3, 6)
    w = np.where(truth == 2, 0.01, 1.0)
    assert clustering.fold_small(x, truth, w, 2.0, SpeakerCount(num=3)).max() + 1 == 3
    assert clustering.fold_small(x, truth, w, 2.0, SpeakerCount()).max() + 1 == 2


def test_every_hinted_speaker_gets_a_piece():
    similarity = np.array([[0.9, 0.1, 0.5], [0.8, 0.2, 0.1], [0.7, 0.6, 0.0], [0.2, 0.9, 0.1]])
    labels = diarization._fill_empty_speakers(np.array([0, 0, 0, 1]), similarity, np.ones(4))
    assert set(labels.tolist()) == {0, 1, 2}


def test_a_starved_hinted_speaker_gets_speech():
    frames = 200
    scores = np.zeros((frames, 3))
    scores[:, 0] = 5
    scores[50:90, 1] = 2  # speaker 1 is always outvoted by speaker 0
    scores[150:, 2] = 6
    count = np.ones(frames, dtype=np.int64)
    speaking = diarization._top_speakers(scores, count)
    exclusive = diarization._top_speakers(scores, count)
    assert speaking[:, 1].sum() == 0
    speaking, exclusive = diarization._force_speech(scores, speaking, exclusive, count, 0.017, 0.5)
    assert exclusive[:, 1].sum() == 40 and speaking[:, 1].sum() == 40
    assert np.all(speaking.sum(axis=1) <= 1)


def test_a_hinted_speaker_with_a_few_strong_frames_still_gets_its_minimum():
    frames = 200
    scores = np.zeros((frames, 2))
    scores[:, 0] = 5
    scores[100:105, 1] = 2  # five frames (85 ms) of evidence only
    count = np.ones(frames, dtype=np.int64)
    speaking = exclusive = diarization._top_speakers(scores, count)
    speaking, exclusive = diarization._force_speech(scores, speaking, exclusive, count, 0.017, 0.5)
    assert exclusive[:, 1].sum() * 0.017 >= 0.5  # grown around its strongest frames
    assert exclusive[100:105, 1].all() and np.all(exclusive.sum(axis=1) == 1)


def _unit_voices(similarities):
    """Unit vectors whose dot products with the first are ``similarities``."""
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(192, len(similarities) + 1)))[0].T
    out = [basis[0]]
    for i, s in enumerate(similarities, start=1):
        out.append(s * basis[0] + np.sqrt(1 - s * s) * basis[i])
    return np.array(out)


def test_a_short_stray_of_a_voice_joins_it():
    """A speaker with little speech that sounds like another (a split-off piece of
    that voice) is merged into it; a short but distinct voice stays its own speaker."""
    v = _unit_voices([0.55, 0.1])  # speaker 1 like speaker 0, speaker 2 unlike it
    into = voices.merge_strays(np.array([12.0, 1.2, 1.2]), v, max_speech_s=2.0, min_similarity=0.4)
    assert into.tolist() == [0, 0, 2]
    # The same voice with plenty of speech is not a stray: nothing merged.
    assert voices.merge_strays(np.array([12.0, 6.0, 1.2]), v, max_speech_s=2.0, min_similarity=0.4) is None


def test_strays_chain_and_never_empty_the_recording():
    v = _unit_voices([0.6, 0.6])
    v[2] = (v[1] + 0.2 * v[2]) / np.linalg.norm(v[1] + 0.2 * v[2])  # 2 is most like 1
    into = voices.merge_strays(np.array([5.0, 1.5, 0.8]), v, max_speech_s=2.0, min_similarity=0.4)
    assert into.tolist() == [0, 0, 0]  # 2 joins 1, then 1 (with 2) joins 0
    # One short speaker alone, or speakers without speech, are left as they are.
    assert voices.merge_strays(np.array([1.0, 0.0]), _unit_voices([0.9]), max_speech_s=2.0, min_similarity=0.4) is None


def test_speaker_voices_weight_pieces_by_clean_speech():
    fingerprints = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    found = voices.speaker_voices(fingerprints, np.array([3.0, 1.0, 0.0]), np.array([0, 0, 1]), 3)
    assert np.allclose(found[0], np.array([3.0, 1.0]) / np.sqrt(10))
    assert np.allclose(found[1], [0.0, 1.0]) and np.allclose(found[2], 0.0)  # speaker 2 has no piece


def test_soft_onset_binarization():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 50, 7)).astype(np.float32)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    hard = segmentation.binarize(log_probs, None)
    assert hard.shape == (4, 50, 3) and hard.sum(-1).max() <= 2
    low = segmentation.binarize(log_probs, 0.2)
    assert low.sum(-1).max() <= segmentation.MAX_SPEAKERS_PER_FRAME
    # A lower onset marks at least as much speech as a higher one.
    assert low.sum() >= segmentation.binarize(log_probs, 0.6).sum()


# --- the dev set (real models, cached per run) ------------------------------------


def _bench():
    sys.path.insert(0, str(ROOT / "bench"))
    import diarcache

    return diarcache


@pytest.fixture(scope="module")
def dev_runs():
    if not DEV.is_dir():
        pytest.skip("../shared (the dev set) is absent")
    pytest.importorskip("pyannote.metrics")
    diarcache = _bench()
    clips = diarcache.dev_clips(DEV)
    runs = []
    for clip in clips:
        free, hinted = diarization.diarize_counts(clip.audio, (SpeakerCount(), SpeakerCount(num=clip.num_speakers())))
        runs.append((clip, free, hinted))
    return diarcache, runs


@pytest.mark.slow
def test_dev_count_is_close(dev_runs):
    _, runs = dev_runs
    counts = [(len(free.speakers), clip.num_speakers()) for clip, free, _ in runs]
    # The goal (issue 13): exact on >= 5 of 7, never off by more than 1.
    assert all(abs(a - b) <= 1 for a, b in counts), counts
    assert sum(a == b for a, b in counts) >= 5, counts


@pytest.mark.slow
@pytest.mark.xfail(reason="goal not reached: the segmentation's speaker count alone costs 15.2 % "
                   "(bench/diarization_diagnose.py, count floor)", strict=False)
def test_dev_der_meets_the_goal(dev_runs):
    diarcache, runs = dev_runs
    pooled = diarcache.pooled([diarcache.der_components(clip, free.turns) for clip, free, _ in runs])
    assert pooled <= 0.15, pooled  # 23.3 % now


@pytest.mark.slow
def test_dev_num_speakers_gives_that_many_speakers_with_speech(dev_runs):
    diarcache, runs = dev_runs
    for clip, _, hinted in runs:
        speech = {}
        for t in hinted.exclusive:
            speech[t.speaker] = speech.get(t.speaker, 0.0) + t.duration
        assert len(hinted.speakers) == clip.num_speakers(), clip.uri
        assert all(speech.get(s, 0.0) >= 0.5 for s in hinted.speakers), (clip.uri, speech)
    # A hint never makes things worse: pooled DER with the true counts no worse than without
    # (24.1 vs 24.1 %; a quarter point allowed for one borderline frame decision).
    free = diarcache.pooled([diarcache.der_components(clip, free.turns) for clip, free, _ in runs])
    hinted = diarcache.pooled([diarcache.der_components(clip, hinted.turns) for clip, _, hinted in runs])
    assert hinted <= free + 0.0025, (hinted, free)


SPARSE_SPOTS = (("jfk", 2.0, 1.0), ("1089-134686-0001", 9.0, 0.05), ("1221-135766-0002", 17.0, 1.0), ("jfk", 25.0, 0.03))


def _sparse_quiet(dev_dir) -> np.ndarray:
    """30 s with four 1.2 s real utterance snippets, two of them 26 and 30 dB quieter."""
    from scipy.io import wavfile

    sr = 16_000
    audio = np.zeros(30 * sr, dtype=np.float32)
    for name, at, gain in SPARSE_SPOTS:
        _, data = wavfile.read(dev_dir / "asr" / f"{name}.wav")
        x = data.astype(np.float32) / 32768.0
        snippet = x[sr // 2 : sr // 2 + int(1.2 * sr)] * gain * 0.5 / max(float(np.abs(x).max()), 1e-6)
        audio[int(at * sr) : int(at * sr) + len(snippet)] = snippet
    audio += (1e-4 * np.random.default_rng(0).normal(size=len(audio))).astype(np.float32)
    return audio


@pytest.mark.slow
def test_sparse_quiet_utterances_are_found(dev_dir):
    """Four short real utterance snippets scattered over 30 s, two of them quiet: each
    gets speech (segmentation.MAX_WINDOW_GAIN), silence still gets none."""
    d = diarization.diarize(_sparse_quiet(dev_dir))
    for _, at, _ in SPARSE_SPOTS:
        covered = sum(max(0.0, min(at + 1.2, t.end) - max(at, t.start)) for t in d.exclusive)
        assert covered >= 0.3, (at, d.exclusive)
    assert sum(t.end - t.start for t in d.turns) < 4 * 1.2 + 2.0  # the noise between them is no speech
    assert diarization.diarize(np.zeros(30 * 16_000, dtype=np.float32)).turns == ()


@pytest.mark.slow
def test_quiet_utterances_get_their_words(dev_dir, tmp_path):
    """ASR's VAD drops the quiet snippets; the quiet pass (asr.quiet) decodes them again."""
    from saywho import transcribe
    from saywho.audio.decode import write_wav

    write_wav(tmp_path / "sparse.wav", _sparse_quiet(dev_dir))
    t = transcribe(tmp_path / "sparse.wav")
    for _, at, _ in SPARSE_SPOTS:
        inside = [w for w in t.words if at - 0.3 <= (w.start + w.end) / 2 <= at + 1.5]
        assert inside and all(w.speaker for w in inside), (at, [(w.start, w.text) for w in t.words])
    assert [w.start for w in t.words] == sorted(w.start for w in t.words)
    assert [s.id for s in t.asr_segments] == list(range(len(t.asr_segments)))


@pytest.mark.slow
def test_dev_two_speaker_files_pooled_der_at_most_20_percent(dev_runs):
    """The three original dev files (sample, dev00, dev01): pooled DER (no collar,
    overlap scored) <= 20 % with the defaults (19.9 % now)."""
    diarcache, runs = dev_runs
    two = [(clip, free) for clip, free, _ in runs if clip.uri in ("sample", "dev00", "dev01")]
    assert len(two) == 3
    per_file = {clip.uri: diarcache.der_components(clip, free.turns) for clip, free in two}
    pooled = diarcache.pooled(list(per_file.values()))
    assert pooled <= 0.20, {k: round(diarcache.pooled([v]), 3) for k, v in per_file.items()}
