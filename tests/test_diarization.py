"""Unit tests of the diarization stage: segmentation, fbank, clustering, the pipeline."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
import torch

from saywho.diarization import clustering, embedding, segmentation
from saywho.errors import InvalidOptionError
from saywho.types import SAMPLE_RATE, DiarizeOptions, SpeakerCount

diarize_module = importlib.import_module("saywho.diarization.pipeline")  # the module, not saywho.diarize()


# --- segmentation: powerset and frame timing ---------------------------------------


def test_powerset_mapping_is_pyannotes_order():
    mapping = segmentation.powerset_mapping()
    assert mapping.shape == (7, 3)
    expected = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]]
    assert mapping.tolist() == expected


def test_powerset_to_multilabel_takes_the_most_likely_class():
    log_probs = torch.full((1, 3, 7), -10.0)
    log_probs[0, 0, 0] = 0.0  # silence
    log_probs[0, 1, 2] = 0.0  # speaker 2 alone
    log_probs[0, 2, 5] = 0.0  # speakers 1 and 3
    activity = segmentation.powerset_to_multilabel(log_probs)
    assert activity[0].tolist() == [[0, 0, 0], [0, 1, 0], [1, 0, 1]]


def test_frame_timing_matches_the_receptive_field():
    timing = segmentation.frame_timing()
    assert segmentation.num_frames(160_000) == 589
    assert timing.duration == pytest.approx(991 / 16_000)  # 0.0619375 s
    assert timing.step == pytest.approx(270 / 16_000)  # 0.016875 s
    assert timing.start == pytest.approx(0.0)
    # The last frame of a 10 s window ends inside the window.
    assert timing.start + 588 * timing.step + timing.duration <= 10.0


def test_window_starts_cover_the_recording():
    assert segmentation.window_starts(16_000, step_s=1.25).tolist() == [0]  # shorter than a window
    starts = segmentation.window_starts(int(23.3 * SAMPLE_RATE), step_s=2.5)
    assert starts[0] == 0
    assert starts[-1] + 10 * SAMPLE_RATE >= int(23.3 * SAMPLE_RATE)
    assert np.all(np.diff(starts) == int(2.5 * SAMPLE_RATE))


def test_sinc_filterbank_shapes():
    bank = segmentation.ParamSincFilterbank()
    filters = bank.filters()
    assert filters.shape == (80, 1, 251)
    # Cosine filters are symmetric, sine filters antisymmetric.
    assert torch.allclose(filters[:40], filters[:40].flip(-1), atol=1e-6)
    assert torch.allclose(filters[40:], -filters[40:].flip(-1), atol=1e-6)


# --- fbank ----------------------------------------------------------------------------


def test_fbank_shape_and_known_value():
    t = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    feats = embedding.fbank(tone)
    assert feats.shape == (1 + (SAMPLE_RATE - 400) // 160, 80)  # 98 frames
    # A 1 kHz tone peaks in mel bin 27 of Kaldi's 80 bins (20 Hz - 8 kHz).
    assert int(feats.mean(0).argmax()) == 27
    # Reference value from kaldi-native-fbank 1.23 (dither 0, povey, snip edges) for this tone.
    assert float(feats[10, 27]) == pytest.approx(6.25953, abs=2e-3)


def test_fbank_in_blocks_equals_fbank_at_once(monkeypatch):
    # Long inputs are computed a block of frames at a time (bounded memory); the frames
    # are independent, so the blocks must give the features of the whole.
    audio = (0.1 * np.random.default_rng(0).standard_normal(SAMPLE_RATE * 13 + 77)).astype(np.float32)
    monkeypatch.setattr(embedding, "FBANK_BLOCK_FRAMES", 10**9)
    whole = embedding.fbank(audio)
    for block in (1, 97, 300, len(whole) - 1, len(whole)):
        monkeypatch.setattr(embedding, "FBANK_BLOCK_FRAMES", block)
        assert torch.allclose(embedding.fbank(audio), whole, rtol=0, atol=1e-5), block  # BLAS rounding


def test_fbank_of_too_short_audio_is_empty():
    assert embedding.fbank(np.zeros(100, dtype=np.float32)).shape == (0, 80)


def test_masked_frames_follow_the_mask():
    mask = np.zeros(589)
    mask[100:200] = 1  # 1.6875 s .. 3.375 s (frame centres)
    timing = segmentation.frame_timing()
    frames = embedding.masked_frames(mask, float(timing.center(0)), timing.step, 998)
    centers = embedding.feature_frame_centers(998)[frames]
    assert len(frames) == pytest.approx(100 * timing.step / 0.01, abs=2)
    assert centers.min() >= float(timing.center(99.5)) - 1e-9
    assert centers.max() <= float(timing.center(199.5)) + 1e-9


# --- clustering -----------------------------------------------------------------------


def _voices(num_voices: int, per_voice: int, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprints scattered around ``num_voices`` nearly orthogonal directions."""
    rng = np.random.default_rng(seed)
    centers = np.linalg.qr(rng.normal(size=(192, num_voices)))[0].T  # orthonormal rows
    x = np.concatenate([c + noise * rng.normal(size=(per_voice, 192)) / np.sqrt(192) * 4 for c in centers])
    return x, np.repeat(np.arange(num_voices), per_voice)


def test_cluster_finds_the_voices_without_a_count():
    x, truth = _voices(5, 8)
    labels = clustering.cluster(x)
    assert labels.max() + 1 == 5
    # Same partition as the truth.
    assert len({(a, b) for a, b in zip(labels, truth, strict=True)}) == 5


def test_cluster_has_no_fixed_cap_on_speakers():
    x, _ = _voices(25, 4)
    assert clustering.cluster(x).max() + 1 == 25


def test_cluster_honours_num_min_max():
    x, _ = _voices(4, 6)
    assert clustering.cluster(x, SpeakerCount(num=2)).max() + 1 == 2
    assert clustering.cluster(x, SpeakerCount(num=6)).max() + 1 == 6
    assert clustering.cluster(x, SpeakerCount(max=3)).max() + 1 == 3
    assert clustering.cluster(x, SpeakerCount(min=5)).max() + 1 == 5
    assert clustering.cluster(x, SpeakerCount(min=2, max=8)).max() + 1 == 4
    # More speakers asked than fingerprints: as many as there are.
    assert clustering.cluster(x[:3], SpeakerCount(num=5)).max() + 1 == 3


def test_cluster_never_merges_far_apart_fingerprints():
    x, truth = _voices(2, 10, noise=0.1)
    labels = clustering.cluster(x)
    assert set(labels[truth == 0]).isdisjoint(labels[truth == 1])
    # Even with a large minimum weight, two heavy clusters stay apart.
    labels = clustering.cluster(x, weights=np.ones(len(x)), min_cluster_weight=5)
    assert labels.max() + 1 == 2


def test_small_clusters_are_folded_into_the_closest_speaker():
    x, truth = _voices(3, 6)
    weights = np.where(truth == 2, 0.1, 1.0)  # voice 2 carries almost no speech
    labels = clustering.cluster(x, weights=weights, min_cluster_weight=2.0)
    assert labels.max() + 1 == 2


def test_cluster_edge_cases_and_validation():
    assert clustering.cluster(np.zeros((0, 192))).shape == (0,)
    assert clustering.cluster(np.ones((1, 192))).tolist() == [0]
    with pytest.raises(InvalidOptionError):
        clustering.cluster(np.ones((3, 192)), SpeakerCount(min=4, max=2))
    with pytest.raises(InvalidOptionError):
        clustering.cluster(np.ones((3, 192)), SpeakerCount(num=0))


def test_cannot_link_assignment_gives_distinct_clusters():
    # Both local speakers of window 0 prefer cluster 0; only one may have it.
    similarity = np.array([[[0.9, 0.1], [0.8, 0.7], [0.0, 0.0]]])
    active = np.array([[True, True, False]])
    labels = clustering.assign_distinct(similarity, active)
    assert labels.tolist() == [[0, 1, -1]]


# --- the pipeline (real models) ---------------------------------------------------------


@pytest.mark.slow
def test_frame_counts_favour_a_second_speaker_heard_by_a_third_of_the_windows():
    from saywho.diarization import pipeline
    from saywho.diarization.frames import frame_counts

    assert (pipeline.SPEECH_COUNT_AT, pipeline.OVERLAP_COUNT_AT) == (0.5, 0.3)
    mean = np.array([0.0, 0.5, 0.625, 1.0, 1.25, 1.375, 2.0, 2.25, 2.5])
    assert frame_counts(mean, 0.5, 0.3).tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert frame_counts(mean, 0.5, 0.5).tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 3]  # plain rounding
    assert frame_counts(np.zeros(0), 0.5, 0.3).tolist() == []


def test_silence_gives_an_empty_diarization():
    result = diarize_module.diarize(np.zeros(5 * SAMPLE_RATE, dtype=np.float32))
    assert result.turns == () and result.speakers == () and result.duration == pytest.approx(5.0)
    noise = (1e-6 * np.random.default_rng(0).normal(size=3 * SAMPLE_RATE)).astype(np.float32)
    assert diarize_module.diarize(noise).speakers == ()
    assert diarize_module.diarize(np.zeros(0, dtype=np.float32)).turns == ()


def _tone_speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Vowel-like harmonic bursts: not speech, but enough to exercise the code paths."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SAMPLE_RATE) / k for k in range(1, 12))
    envelope = (np.sin(2 * np.pi * 2.5 * t) > -0.3).astype(float)
    return (0.1 * wave * envelope + 0.001 * rng.normal(size=len(t))).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("seconds", [0.2, 3.0])
def test_short_clips_do_not_fail(seconds):
    result = diarize_module.diarize(_tone_speech(seconds))
    assert result.duration == pytest.approx(seconds)
    for turn in result.turns + result.exclusive:
        assert 0.0 <= turn.start < turn.end <= seconds + 1e-6
    assert set(result.fingerprints) == set(result.speakers)


@pytest.mark.slow
def test_pipeline_on_real_speech(dev_dir):
    from scipy.io import wavfile

    _sr, data = wavfile.read(dev_dir / "diarization" / "sample.wav")
    audio = (data.astype(np.float32) / 32768.0)[: 15 * SAMPLE_RATE]
    events = []
    result = diarize_module.diarize(audio, hook=lambda step, **kw: events.append((step, kw)))
    assert {step for step, _ in events} == {"segmentation", "embeddings", "clustering"}
    assert result.speakers == tuple(f"Speaker_{i}" for i in range(len(result.speakers)))
    assert 1 <= len(result.speakers) <= 3
    # Labels in order of first appearance.
    firsts = [min(t.start for t in result.turns if t.speaker == s) for s in result.speakers]
    assert firsts == sorted(firsts)
    # Exclusive turns never overlap.
    ends = [(t.start, t.end) for t in sorted(result.exclusive, key=lambda t: t.start)]
    assert all(a[1] <= b[0] + 1e-6 for a, b in itertools.pairwise(ends))
    for vector in result.fingerprints.values():
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
    # Quiet far-field gain must not change the answer.
    quiet = diarize_module.diarize(audio * 0.01)
    assert quiet.speakers == result.speakers
    speech = sum(t.duration for t in result.exclusive)
    assert sum(t.duration for t in quiet.exclusive) == pytest.approx(speech, rel=0.05)
    # A fixed count is honoured.
    assert len(diarize_module.diarize(audio, DiarizeOptions(speakers=SpeakerCount(num=1))).speakers) == 1


@pytest.mark.slow
def test_models_load_strictly():
    seg = segmentation.load_segmentation_model()
    emb = embedding.load_embedding_model()
    with torch.inference_mode():
        assert seg(torch.zeros(1, 1, 160_000)).shape == (1, 589, 7)
        assert emb(torch.zeros(2, 200, 80)).shape == (2, 192)
    vectors = embedding.embed(_tone_speech(4.0), [(0.0, 2.0), (2.0, 4.0), (3.99, 4.0)])
    assert vectors.shape == (3, 192)
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert not vectors[2].any()  # no full frame in that span


@pytest.mark.slow
@pytest.mark.parametrize("second", ["flite:rms", "flite:awb"])
def test_two_similar_voices_in_one_window_stay_two(second: str) -> None:
    """Under 10 s, two flite voices whose fingerprints look alike (cosine ~0.44, above the
    clustering threshold): the segmentation tells them apart, so they stay two speakers."""
    import shutil

    if shutil.which("flite") is None:
        pytest.skip("needs flite")
    from saywho.evaluation.synth import SENTENCES, conversation

    conv = conversation([("flite:slt", SENTENCES[0]), (second, SENTENCES[1])])
    d = diarize_module.diarize(conv.samples)
    assert d.speakers == ("Speaker_0", "Speaker_1")
    first, other = conv.turns
    def mid(a, b):
        return (a + b) / 2
    def owner(t):
        return next(x.speaker for x in d.exclusive if x.start <= t <= x.end)
    assert owner(mid(first.start, first.end)) != owner(mid(other.start, other.end))
